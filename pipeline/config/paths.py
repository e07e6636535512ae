"""Where stages read and write, relative to the project root. The single source of these names."""

from __future__ import annotations

from pathlib import Path

#: the folder holding params.yaml, dvc.yaml and pipeline/
PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_PARAMS = PROJECT_ROOT / "params.yaml"


def backbone_dir(name: str, root: Path = PROJECT_ROOT) -> Path:
    """``models/backbones/<name>``: the backbone stage's output."""
    return root / "models" / "backbones" / name


def prepared_dir(task: str, root: Path = PROJECT_ROOT) -> Path:
    """``data/prepared/<task>``: canonical records per split, written by the prepare stage."""
    return root / "data" / "prepared" / task


def task_model_dir(task: str, root: Path = PROJECT_ROOT) -> Path:
    """``models/tasks/<task>``: the fine-tuned weights and what prediction needs beside them."""
    return root / "models" / "tasks" / task


def seeds_dir(task: str, root: Path = PROJECT_ROOT) -> Path:
    """``models/seeds/<task>``: one trained bundle per seed (``<seed>/``); the train stage keeps those
    whose training is unchanged, so adding a seed trains only that seed."""
    return root / "models" / "seeds" / task


def reports_dir(task: str, root: Path = PROJECT_ROOT) -> Path:
    """``reports/<task>``: metrics, per-epoch history, plots and predictions."""
    return root / "reports" / task

"""The one MLflow helper: a run per task per pipeline execution, shared by train and evaluate.

DVC owns caching and the DAG; MLflow only records. The train stage opens the run and
writes its id into the task's model directory; the evaluate stage re-opens that run
to add final metrics and artifacts.
"""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from pipeline.config import PROJECT_ROOT, Params


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level with dotted keys: ``{"data": {"dir": "x"}} -> {"data.dir": "x"}``."""
    if not isinstance(data, dict):
        return {prefix: data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def git_commit(root: Path = PROJECT_ROOT) -> str | None:
    """The checked-out commit of the project, if it is a git work tree."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def run_params(params: Params, task: str) -> dict[str, Any]:
    """The params a task's run records: its own block plus its backbone's, flattened."""
    cfg = params.task(task)
    values = {"task": task, **cfg.model_dump(), "backbone_config": params.backbone(cfg.backbone).model_dump()}
    return {key: ("null" if value is None else value) for key, value in flatten(values).items()}


def run_tags(params: Params, task: str) -> dict[str, str]:
    """Tags that find a run again: task, kind, git commit, DVC experiment name."""
    tags = {"task": task, "kind": params.task(task).kind}
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_exp_name"] = os.environ["DVC_EXP_NAME"]
    return tags


@contextmanager
def task_run(params: Params, task: str, run_id: str | None = None) -> Iterator[Any]:
    """Open the task's MLflow run: resume ``run_id`` when it exists in the store, else start one."""
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = params.tracking_uri()
    mlflow.set_tracking_uri(uri)
    experiment = params.tracking.experiment
    if uri.startswith("sqlite:") and mlflow.get_experiment_by_name(experiment) is None:
        # keep a local store's artifacts beside its database, wherever the stage runs from
        database = Path(uri.removeprefix("sqlite:///"))
        mlflow.create_experiment(experiment, artifact_location=(database.parent / "mlartifacts").as_uri())
    mlflow.set_experiment(experiment)
    if run_id:
        try:
            mlflow.get_run(run_id)
        except MlflowException:
            run_id = None
    tags = run_tags(params, task)
    name = f"{task}@{tags['dvc_exp_name']}" if "dvc_exp_name" in tags else task
    with mlflow.start_run(run_id=run_id, run_name=None if run_id else name) as run:
        if not run_id:
            mlflow.set_tags(tags)
            mlflow.log_params(run_params(params, task))
        yield run


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    """Log numeric metrics to the active run (dotted keys for nesting)."""
    import mlflow

    flat = {key: float(value) for key, value in flatten(metrics).items() if isinstance(value, (int, float))}
    mlflow.log_metrics(flat, step=step)


def log_artifacts(paths: list[Path], artifact_path: str | None = None) -> None:
    """Attach files or directories to the active run."""
    import mlflow

    for path in paths:
        if path.is_dir():
            mlflow.log_artifacts(str(path), artifact_path=f"{artifact_path}/{path.name}" if artifact_path else path.name)
        elif path.exists():
            mlflow.log_artifact(str(path), artifact_path=artifact_path)

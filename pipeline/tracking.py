"""The one MLflow helper: a run per task per pipeline execution, shared by train and evaluate.

DVC owns caching and the DAG; MLflow only records. The train stage opens the run and
writes its id into the task's model directory; the evaluate stage re-opens that run
to add final metrics and artifacts.
"""

from __future__ import annotations

import hashlib
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


def _git(args: list[str], root: Path) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip()


def git_commit(root: Path = PROJECT_ROOT) -> str | None:
    """The checked-out commit of the project, if it is a git work tree."""
    return _git(["rev-parse", "HEAD"], root) or None


#: what the pipeline itself rewrites while it runs: not a sign of uncommitted work
PIPELINE_WRITES = (":(exclude)dvc.lock", ":(exclude,glob)**/.gitignore", ":(exclude)reports")


def git_dirty(root: Path = PROJECT_ROOT) -> bool | None:
    """Whether tracked code, params or data differ from the commit (None outside a git work tree);
    the files the pipeline writes as it runs (dvc.lock, .gitignore, reports/) do not count."""
    status = _git(["status", "--porcelain", "--untracked-files=no", "--", ".", *PIPELINE_WRITES], root)
    return None if status is None else bool(status)


def pipeline_run_id(params: Params, root: Path = PROJECT_ROOT) -> str:
    """The id shared by the runs of one pipeline execution (tag ``pipeline_run``).

    ``PIPELINE_RUN`` when set; else the DVC experiment name under ``dvc exp run``; else the commit
    and a hash of all params, which is the same for every stage of one ``dvc repro``.
    """
    if os.environ.get("PIPELINE_RUN"):
        return os.environ["PIPELINE_RUN"]
    if os.environ.get("DVC_EXP_NAME"):
        return os.environ["DVC_EXP_NAME"]
    digest = hashlib.sha256(params.model_dump_json().encode()).hexdigest()[:10]
    commit = (git_commit(root) or "nogit")[:10]
    return f"repro-{commit}{'-dirty' if git_dirty(root) else ''}-{digest}"


def lock_hashes(stage: str, lock_file: Path = PROJECT_ROOT / "dvc.lock") -> dict[str, dict]:
    """``{path: {"md5", "size", "kind"}}`` of a stage's deps and outs as ``dvc.lock`` records them."""
    if not lock_file.is_file():
        return {}
    from ruamel.yaml import YAML

    entry = (YAML(typ="safe").load(lock_file.read_text(encoding="utf-8")) or {}).get("stages", {}).get(stage, {})
    hashes = {}
    for kind in ("deps", "outs"):
        for item in entry.get(kind, []):
            if "md5" in item:
                hashes[item["path"]] = {"md5": item["md5"], "size": item.get("size"), "kind": kind}
    return hashes


def log_inputs_lineage(params: Params, task: str) -> None:
    """Log the task's raw data, prepared data and backbone as MLflow dataset inputs with their
    ``dvc.lock`` hashes as digests (inputs the lock does not list yet are left out)."""
    import warnings

    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    cfg = params.task(task)
    wanted = [
        (f"prepare@{task}", "deps", "raw data", "source"),
        (f"prepare@{task}", "outs", "prepared data", "training"),
        (f"backbone@{cfg.backbone}", "outs", "backbone", "backbone"),
    ]
    for stage, kind, label, context in wanted:
        for path, info in lock_hashes(stage).items():
            if info["kind"] != kind or path.startswith("pipeline"):
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "source can be interpreted in multiple ways": both local
                source = resolve_dataset_source(str((PROJECT_ROOT / path).resolve()))
            dataset = MetaDataset(source, name=f"{task} {label}", digest=info["md5"].removesuffix(".dir")[:36])
            mlflow.log_input(dataset, context=context, tags={"dvc.path": path, "dvc.md5": info["md5"]})


def run_params(params: Params, task: str) -> dict[str, Any]:
    """The params a task's run records: its own block plus its backbone's, flattened."""
    cfg = params.task(task)
    values = {"task": task, **cfg.model_dump(), "backbone_config": params.backbone(cfg.backbone).model_dump()}
    return {key: ("null" if value is None else value) for key, value in flatten(values).items()}


def run_tags(params: Params, task: str) -> dict[str, str]:
    """Tags that find a run again and say what made it: task, kind, pipeline execution, git commit
    and dirty flag, DVC experiment name, package versions."""
    from pipeline.mlflow_model import package_versions

    tags = {"task": task, "kind": params.task(task).kind, "pipeline_run": pipeline_run_id(params)}
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
        tags["git_dirty"] = str(git_dirty()).lower()
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_exp_name"] = os.environ["DVC_EXP_NAME"]
    tags.update({f"package.{name}": version for name, version in package_versions().items()})
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
            log_inputs_lineage(params, task)
        yield run


def run_record(run: Any) -> dict[str, str]:
    """Where a run lives: id, name, experiment, pipeline execution and tracking URI."""
    import mlflow

    return {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "experiment_id": run.info.experiment_id,
        "pipeline_run": run.data.tags.get("pipeline_run", ""),
        "tracking_uri": mlflow.get_tracking_uri(),
    }


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

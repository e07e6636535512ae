"""What a task's MLflow run records about its origin: params, tags (git, DVC experiment, packages)
and dataset lineage from ``dvc.lock``. The run itself is :class:`pipeline.tracking.run.TaskRun`.

DVC owns caching and the DAG; MLflow only records. The train stage opens the run and
writes its id into the task's model directory; the evaluate stage re-opens that run
to add final metrics and artifacts.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path
from urllib.parse import unquote, urlsplit
from typing import Any

from pipeline.config.paths import PROJECT_ROOT
from pipeline.config.schema import Params


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


def lineage_inputs(params: Params, task: str) -> list[dict]:
    """The task's raw data, prepared data and backbone as dataset inputs: path, name, ``dvc.lock``
    md5 and context (inputs the lock does not list yet are left out)."""
    cfg = params.task(task)
    wanted = [
        (f"prepare@{task}", "deps", "raw data", "source"),
        (f"prepare@{task}", "outs", "prepared data", "training"),
        (f"{backbone_stage(params, cfg.backbone)}@{cfg.backbone}", "outs", "backbone", "backbone"),
    ]
    inputs = []
    for stage, kind, label, context in wanted:
        for path, info in lock_hashes(stage).items():
            if info["kind"] == kind and not path.startswith("pipeline"):
                inputs.append({"path": path, "name": f"{task} {label}", "md5": info["md5"], "context": context})
    return inputs


def backbone_stage(params: Params, backbone: str) -> str:
    """The DVC stage that makes a backbone: ``pretrain`` for a pretraining entry, else ``backbone``."""
    return "pretrain" if backbone in params.pretraining else "backbone"


def log_lineage(inputs: list[dict]) -> None:
    """Log :func:`lineage_inputs` to the active run, the md5 as each dataset's digest."""
    import warnings

    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    for item in inputs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "source can be interpreted in multiple ways": both local
            # the path as dvc.lock names it (relative to the project): the store stays valid when the project moves
            source = resolve_dataset_source(item["path"])
        dataset = MetaDataset(source, name=item["name"], digest=item["md5"].removesuffix(".dir")[:36])
        mlflow.log_input(dataset, context=item["context"], tags={"dvc.path": item["path"], "dvc.md5": item["md5"]})


def run_params(params: Params, task: str, seed: int | None = None) -> dict[str, Any]:
    """The params a task's run records: its own block (as one ``seed`` of its group trains it) plus its
    backbone's, flattened."""
    cfg = params.task(task) if seed is None else params.task(task).for_seed(seed)
    values = {"task": task, **cfg.model_dump(), "backbone_config": params.backbone(cfg.backbone).model_dump()}
    return {key: ("null" if value is None else value) for key, value in flatten(values).items()}


def run_tags(params: Params, task: str) -> dict[str, str]:
    """Tags that find a run again and say what made it: task, kind, pipeline execution, git commit
    and dirty flag, DVC experiment name, package versions."""
    return {"task": task, "kind": params.task(task).kind, **common_tags(params)}


def common_tags(params: Params) -> dict[str, str]:
    """Tags of every run of the pipeline: its execution, git commit and dirty flag, DVC experiment name,
    package versions."""
    from pipeline.serving.mlflow_model import package_versions

    tags = {"pipeline_run": pipeline_run_id(params)}
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
        tags["git_dirty"] = str(git_dirty()).lower()
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_exp_name"] = os.environ["DVC_EXP_NAME"]
    tags.update({f"package.{name}": version for name, version in package_versions().items()})
    return tags



# --- a local sqlite store: its artifacts live beside its database -------------------------------------

#: the directory beside a local store's database that holds its artifacts and logged models
LOCAL_ARTIFACTS = "mlartifacts"
#: the columns of MLflow's schema that hold artifact locations (those a store lacks are skipped)
ARTIFACT_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
    ("trace_tags", "value"),
)


def sqlite_database(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI (None for any other store)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").partition("?")[0])


def local_artifact_location(uri: str) -> str | None:
    """``file://<directory of the database>/mlartifacts`` for a local sqlite store, None for any other."""
    database = sqlite_database(uri)
    return None if database is None else (database.resolve().parent / LOCAL_ARTIFACTS).as_uri()


def _file_uri_path(uri: str) -> Path:
    return Path(unquote(urlsplit(uri).path))


def relocate_local_store(uri: str) -> list[str]:
    """Point a local store's artifact locations at the ``mlartifacts/`` beside its database now.

    MLflow stores absolute locations (each experiment's, each run's, each logged model's). A project
    copied or moved with its ``mlflow.db`` keeps the old ones, and its new runs would write into the
    old directory. Every location under an earlier ``.../mlartifacts`` of this pipeline (an experiment
    whose location is such a directory other than the current one) is rewritten to the current one.
    Returns the earlier roots that were replaced (none for a store in place, or any other store).
    """
    database = sqlite_database(uri)
    if database is None or not database.is_file():
        return []
    current = local_artifact_location(uri)
    assert current is not None
    with closing(sqlite3.connect(database, timeout=60)) as db:
        columns = {
            (table, column)
            for table, column in ARTIFACT_COLUMNS
            if any(row[1] == column for row in db.execute(f"PRAGMA table_info({table})"))
        }
        if ("experiments", "artifact_location") not in columns:
            return []
        earlier = sorted({
            location.rstrip("/")
            for (location,) in db.execute("SELECT artifact_location FROM experiments")
            if location and location.startswith("file://") and location.rstrip("/").endswith("/" + LOCAL_ARTIFACTS)
            and location.rstrip("/") != current
            and _file_uri_path(location).resolve() != _file_uri_path(current)
        })
        with db:  # one transaction
            for old in earlier:
                for table, column in sorted(columns):
                    db.execute(
                        f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                        f"WHERE {column} = ? OR substr({column}, 1, ?) = ?",
                        (current, len(old) + 1, old, len(old) + 1, old + "/"),
                    )
    if earlier:
        _forget_artifact_repositories()
    return earlier


def _forget_artifact_repositories() -> None:
    """Drop MLflow's in-process cache of each run's artifact repository (it holds the old locations)."""
    try:
        from mlflow.tracking._tracking_service import utils

        utils._artifact_repos_cache.clear()
    except (ImportError, AttributeError):  # another MLflow: nothing cached this way
        pass


def open_store(uri: str, experiment: str | None = None) -> str | None:
    """Prepare the tracking store at ``uri`` for use by this process.

    A local sqlite store has its artifact locations made to point beside its database
    (:func:`relocate_local_store`), and ``experiment`` (when given) is created there with its
    artifacts in that ``mlartifacts/`` if it does not exist yet. Returns the experiment's id when
    it had to be created (None otherwise, and always for other stores).
    """
    if sqlite_database(uri) is None:
        return None
    relocate_local_store(uri)
    if experiment is None:
        return None
    import mlflow

    client = mlflow.MlflowClient(uri)
    if client.get_experiment_by_name(experiment) is not None:
        return None
    return client.create_experiment(experiment, artifact_location=local_artifact_location(uri))

"""The MLflow model registry: one registered model per task, named like the task, one version per evaluation.

The evaluate stage registers the model it has just logged (:func:`register_task_model`) and tags the
version with where it came from and how it scored: ``run_id``, ``seed``/``seed_group.parent_run_id`` (a
seed group registers its best-dev seed), ``git_commit``/``git_dirty``, ``test.<primary metric>`` and
``dev.<selection metric>``. The alias :data:`CHAMPION` marks the version to serve
(``models:/<task>@champion``): a task's first registered version gets it at once, and only
``python -m pipeline.commands.promote`` moves it. No TensorFlow.
"""

from __future__ import annotations

import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from pipeline.tracking.run import TaskRun

#: the alias of the version a task serves and new candidates are compared with
CHAMPION = "champion"
#: ``promotion.decision`` of the version that became champion because there was none: a task's first
#: registered version, crowned by the evaluate stage, so that ``models:/<task>@champion`` always answers
FIRST_CHAMPION = "first champion"
#: the pyfunc artifact that holds the task bundle (:func:`pipeline.serving.mlflow_model.log_task_model`)
BUNDLE_ARTIFACT = "bundle"


@contextmanager
def quiet_registry() -> Iterator[None]:
    """Silence MLflow's own lines around registry calls ("Successfully registered model ...",
    "Created version ..."): the stages and commands print one line of their own."""
    from mlflow.utils.logging_utils import MLFLOW_LOGGING_STREAM

    enabled = MLFLOW_LOGGING_STREAM.enabled
    MLFLOW_LOGGING_STREAM.enabled = False
    try:
        yield
    finally:
        MLFLOW_LOGGING_STREAM.enabled = enabled


def version_tags(run: TaskRun, meta: dict, scores: dict, metrics: tuple[str, str]) -> dict[str, str]:
    """The tags of a new version: its run, seed group, commit, its own test score of the primary metric
    and best dev score of the selection metric (``metrics``; ``scores`` as ``evaluation/scores.json``)."""
    primary, selection = metrics
    group = meta.get("seed_group") or {}
    tags = {
        "run_id": run.run_id or "",
        "seed_group.parent_run_id": (group.get("parent") or {}).get("run_id") or "",
        "seed": str(group.get("chosen", "")),
        "git_commit": run.tags.get("mlflow.source.git.commit", ""),
        "git_dirty": run.tags.get("git_dirty", ""),
        f"test.{primary}": str(scores["test"].get(primary, "")),
        f"dev.{selection}": str(scores["dev_best"].get(selection, "")),
    }
    return {key: value for key, value in tags.items() if value}


def register_task_model(run: TaskRun, model_uri: str | None, meta: dict, scores: dict,
                        metrics: tuple[str, str]) -> int | None:
    """Register the model ``run`` logged at ``model_uri`` as a new version of the registered model named
    like the task, tagged (:func:`version_tags`); its version number, or None when the model was kept
    in the outbox or the store refused (one line either way: the stage goes on)."""
    import mlflow

    from pipeline.tracking.redaction import scrub
    from pipeline.tracking.run import SYNC_COMMAND

    task = run.task
    if not model_uri:
        print(f"[evaluate] {task}: the model is kept in the outbox with its run: not registered (once "
              f"`{SYNC_COMMAND}` has pushed it, `dvc repro -f -s evaluate@{task}` registers it)")
        return None
    try:
        with quiet_registry():
            version = mlflow.register_model(model_uri, task, tags=version_tags(run, meta, scores, metrics))
    except Exception as exc:  # noqa: BLE001  (the model is logged: a registry failure does not fail the stage)
        reason = scrub(" ".join(f"{type(exc).__name__}: {exc}".split()))[:300]
        print(f"warning: {task}: could not register the model in {run.shown_uri} ({reason}); it stays logged "
              f"in run {run.run_id}", file=sys.stderr)
        return None
    crowned = crown_first(mlflow.MlflowClient(), task, str(version.version))
    print(f"[evaluate] {task}: registered as model {task!r} version {version.version}"
          + (" (the first: now its champion)" if crowned else ""))
    return int(version.version)


def crown_first(client: MlflowClient, task: str, version: str) -> bool:
    """Give ``version`` the alias :data:`CHAMPION` when no version of ``task`` has it (tagged
    ``promotion.decision`` :data:`FIRST_CHAMPION`); later versions take it only through ``promote``."""
    if client.get_registered_model(task).aliases.get(CHAMPION) is not None:
        return False
    client.set_model_version_tag(task, version, "promotion.decision", FIRST_CHAMPION)
    client.set_registered_model_alias(task, CHAMPION, version)
    return True


# --- reading the registry (the promote command) ----------------------------------------------------------


def task_versions(client: MlflowClient, task: str) -> list[ModelVersion]:
    """Every version of the registered model ``task``, oldest first (none when there is no such model)."""
    return sorted(client.search_model_versions(f"name = '{task}'"), key=lambda version: int(version.version))


def champion(client: MlflowClient, task: str) -> ModelVersion | None:
    """The version of ``task`` holding the alias :data:`CHAMPION`, or None."""
    version = client.get_registered_model(task).aliases.get(CHAMPION)
    return None if version is None else client.get_model_version(task, str(version))


def model_version_uri(task: str, version: int | str) -> str:
    """``models:/<task>/<version>``."""
    return f"models:/{task}/{version}"


def download_bundle(task: str, version: int | str, directory: Path | None = None) -> Path:
    """Download the task bundle inside version ``version`` of ``task`` (tracking URI already set);
    the bundle directory (``read_bundle`` opens it)."""
    import mlflow

    uri = model_version_uri(task, version)
    artifacts: dict[str, Any] = mlflow.models.get_model_info(uri).flavors["python_function"]["artifacts"]
    target = directory or Path(tempfile.mkdtemp(prefix=f"{task}-v{version}-"))
    path = artifacts[BUNDLE_ARTIFACT]["path"]
    return Path(mlflow.artifacts.download_artifacts(f"{uri}/{path}", dst_path=str(target)))

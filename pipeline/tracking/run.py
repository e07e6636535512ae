"""A task's MLflow run as the stages use it, robust to tracking outages and interruptions.

``with task_run(params, task) as run:`` starts (or, given the reference the train stage stored,
re-opens) the task's run. Logging goes to the tracking server while it answers; the first failure
(server unreachable at the start, or dying mid-run) switches the run to a local outbox entry
(:mod:`pipeline.tracking.outbox`) for the rest of the stage, with one warning, and the stage carries on.
``python -m pipeline.commands.sync_runs`` pushes the outbox later.

The run ends ``FINISHED`` when the block completes, ``KILLED`` on Ctrl-C or SIGTERM and ``FAILED``
on an error; a run whose process was killed outright is marked ``KILLED`` by the next attempt
(:func:`mark_killed`).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from pipeline.tracking import outbox
from pipeline.config.schema import Params
from pipeline.tracking.redaction import keep_mlflow_quiet, portable_path, scrub, shown_uri
from pipeline.tracking.sweeps import SWEEP_TAGS, sweep_tags

logger = logging.getLogger(__name__)

# Fail over to the outbox in seconds, not minutes: MLflow's defaults retry an unreachable server
# 7 times with exponential back-off. A user's own settings win.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")

SYNC_COMMAND = "python -m pipeline.commands.sync_runs"


class TaskRun:
    """One task's run: on the tracking server while it answers, else journalled in the outbox.

    A task that trains several seeds has one run per seed (``seed``: named ``<task> seed <n>``,
    recording that seed's params, nested under ``parent_run_id``) and one parent run for the group
    (``group``: ``<task>``, tagged ``seed_group``), which carries the aggregates."""

    def __init__(self, params: Params, task: str, seed: int | None = None, parent_run_id: str | None = None,
                 group: bool = False) -> None:
        self.params, self.task, self.seed = params, task, seed
        self.uri = params.tracking_uri()  # the real URI: used, never shown or stored (see shown_uri)
        self.shown_uri = shown_uri(self.uri)
        keep_mlflow_quiet(self.uri)
        self.experiment = params.tracking.experiment
        self.run_id: str | None = None
        self.run_name: str | None = None
        self.experiment_id: str | None = None
        self.entry: outbox.OutboxEntry | None = None
        self.tags = {**self.own_tags(), **sweep_tags(params)}
        if seed is not None:
            self.tags["seed"] = str(seed)
        if parent_run_id:
            self.tags["mlflow.parentRunId"] = parent_run_id
        if group:
            self.tags["seed_group"] = ",".join(map(str, params.task(task).training_seeds))
        self._described = False  # tags, params and inputs have reached the server

    # --- what the run records about itself (a pretraining run records its own: PretrainingRun) ---------

    def own_tags(self) -> dict[str, str]:
        """Tags that find the run again and say what made it."""
        from pipeline.tracking import store as tracking

        return tracking.run_tags(self.params, self.task)

    def own_params(self) -> dict[str, Any]:
        """The params the run records."""
        from pipeline.tracking import store as tracking

        return tracking.run_params(self.params, self.task, self.seed)

    def own_inputs(self) -> list[dict]:
        """The DVC-tracked inputs the run records as its datasets."""
        from pipeline.tracking import store as tracking

        return tracking.lineage_inputs(self.params, self.task)

    @property
    def label(self) -> str:
        """The run's name: the task (and seed), ``@<experiment>`` under ``dvc exp run``."""
        name = self.task if self.seed is None else f"{self.task} seed {self.seed}"
        return f"{name}@{self.tags['dvc_exp_name']}" if "dvc_exp_name" in self.tags else name

    @property
    def offline(self) -> bool:
        """Whether this run is being recorded in the outbox."""
        return self.entry is not None

    # --- opening and closing ----------------------------------------------------------------------

    def open(self, resume: dict | None = None) -> None:
        """Start the run, or re-open the one ``resume`` (a :meth:`reference`) names."""
        resume = resume or {}
        run_id = resume.get("run_id")
        if resume.get("outbox"):
            entry = outbox.open_entry(resume["outbox"])
            if entry is not None and entry.pending:
                self.entry, self.run_id, self._described = entry, entry.meta.get("server_run_id"), True
                self.run_name = self.label
                logger.info(f"[tracking] {self.task}: continuing the run kept locally in {entry.directory}")
                return
            if entry is not None:
                run_id = entry.meta["synced_run_id"]
        try:
            self._start_on_server(run_id)
        except Exception as exc:  # noqa: BLE001  (any failure to reach the store means: record locally)
            self._go_offline(exc)

    def _start_on_server(self, run_id: str | None) -> None:
        import mlflow
        from mlflow.exceptions import MlflowException

        from pipeline.tracking import store as tracking

        # a local store keeps its artifacts beside its database, wherever the stage runs from and
        # wherever the project has been copied or moved to since the store was created
        tracking.open_store(self.uri, self.experiment)
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_experiment(self.experiment)
        if run_id:
            try:
                mlflow.get_run(run_id)
            except MlflowException as exc:
                if "RESOURCE_DOES_NOT_EXIST" not in str(exc.error_code):
                    raise
                run_id = None
        name = self.label
        while mlflow.active_run() is not None:
            mlflow.end_run()
        active = mlflow.start_run(run_id=run_id, run_name=None if run_id else name)
        self.run_id, self.run_name = active.info.run_id, active.info.run_name
        self.experiment_id = active.info.experiment_id
        if run_id:
            self._described = True
            # a configuration trained before and kept (same params, data and code) is a point of this sweep too
            mlflow.set_tags({key: value for key, value in self.tags.items() if key in SWEEP_TAGS})
            return
        mlflow.set_tags(self.tags)
        mlflow.log_params(self.own_params())
        tracking.log_lineage(self.own_inputs())
        self._described = True

    def finish(self, status: str) -> None:
        """End the run with ``status`` (FINISHED, FAILED or KILLED)."""
        if not self.offline:
            try:
                import mlflow

                mlflow.end_run(status)
                return
            except Exception as exc:  # noqa: BLE001
                self._go_offline(exc)
        assert self.entry is not None
        self.entry.append("end", status=status)
        logger.warning(f"[tracking] {self.task}: run kept locally in {self.entry.directory}; "
                       f"push it with `{SYNC_COMMAND}` (make sync-runs) once {self.shown_uri} answers")

    def _go_offline(self, error: BaseException) -> None:
        """Switch to a new outbox entry; journal the run's description if the server never got it."""
        reason = scrub(f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")[:300]
        self.entry = outbox.create_entry(self.task, self.experiment, self.shown_uri, self.run_id, reason)
        logger.warning(f"warning: tracking server {self.shown_uri} failed ({reason}); training goes on and this run is "
                       f"recorded in {self.entry.directory}; push it later with `{SYNC_COMMAND}`")
        if not self._described:
            self.entry.append(
                "start", run_name=self.run_name or self.label, tags=self.tags,
                params=self.own_params(), inputs=self.own_inputs(),
            )
            self._described = True

    # --- logging ----------------------------------------------------------------------------------

    def _deliver(self, action: Callable[[], Any]) -> tuple[bool, Any]:
        """Run ``action`` against the server; ``(False, None)`` once the run is (or has just gone) offline."""
        if not self.offline:
            try:
                return True, action()
            except Exception as exc:  # noqa: BLE001
                self._go_offline(exc)
        return False, None

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """Log the numeric values of ``metrics`` (nested dicts become dotted keys)."""
        import mlflow

        from pipeline.tracking.store import flatten

        flat = {k: float(v) for k, v in flatten(metrics).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        delivered, _ = self._deliver(lambda: mlflow.log_metrics(flat, step=step))
        if not delivered:
            self.entry.append("metrics", metrics=flat, step=step)  # type: ignore[union-attr]

    def set_tags(self, tags: dict[str, str]) -> None:
        """Set tags on the run."""
        import mlflow

        delivered, _ = self._deliver(lambda: mlflow.set_tags(tags))
        if not delivered:
            self.entry.append("tags", tags=tags)  # type: ignore[union-attr]

    def log_artifacts(self, paths: list[Path], artifact_path: str | None = None) -> None:
        """Attach files or directories (those that exist) to the run."""
        import mlflow

        for path in (Path(p) for p in paths):
            if not path.exists():
                continue
            if path.is_dir():
                target = f"{artifact_path}/{path.name}" if artifact_path else path.name
                delivered, _ = self._deliver(lambda: mlflow.log_artifacts(str(path), artifact_path=target))
            else:
                target = artifact_path
                delivered, _ = self._deliver(lambda: mlflow.log_artifact(str(path), artifact_path=target))
            if not delivered:
                self.entry.append("artifact", path=self.entry.keep_copy(path), artifact_path=target)  # type: ignore[union-attr]

    def log_model(self, bundle_dir: Path, rows: list[dict], outputs: list[dict]) -> str | None:
        """Log the bundle as the run's pyfunc model; its model URI, or None when kept locally."""
        from pipeline.serving.mlflow_model import log_task_model

        delivered, info = self._deliver(lambda: log_task_model(bundle_dir, rows, outputs, self.task))
        if delivered:
            return info.model_uri
        self.entry.append("model", path=self.entry.keep_copy(bundle_dir), rows=rows, outputs=outputs)  # type: ignore[union-attr]
        return None

    # --- where the run lives ----------------------------------------------------------------------

    def reference(self) -> dict[str, Any]:
        """What a later stage needs to re-open this run (stored in the model bundle). The URI is only for
        people to read (redacted): a later stage re-opens the run in the store of its own environment."""
        return {"run_id": self.run_id, "outbox": self.entry.id if self.entry else None, "tracking_uri": self.shown_uri}

    def record(self) -> dict[str, Any]:
        """Where the run lives, for ``reports/<task>/mlflow_run.json`` (a committed file: the URI redacted,
        paths inside the project relative to it)."""
        return {
            "run_id": self.run_id,
            "run_name": self.run_name,
            "experiment_id": self.experiment_id,
            "pipeline_run": self.tags.get("pipeline_run", ""),
            "tracking_uri": self.shown_uri,
            "outbox": portable_path(self.entry.directory) if self.entry else None,
        }


class SilentRun:
    """Stands in for a :class:`TaskRun` where nothing may be recorded: a worker of a ``multi_worker``
    training that is not the chief (the chief's run records the training)."""

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """Records nothing."""

    def set_tags(self, tags: dict[str, str]) -> None:
        """Records nothing."""

    def log_artifacts(self, paths: list[Path], artifact_path: str | None = None) -> None:
        """Records nothing."""

    def reference(self) -> dict[str, Any]:
        return {"run_id": None, "outbox": None, "tracking_uri": None}

    def record(self) -> dict[str, Any]:
        return {"run_id": None, "recorded_by": "the chief worker"}


@contextmanager
def silent_run(*args: Any, **kwargs: Any) -> Iterator[SilentRun]:
    """:func:`task_run`'s stand-in on a worker that is not the chief."""
    yield SilentRun()


@contextmanager
def task_run(params: Params, task: str, resume: dict | None = None, run_class: type[TaskRun] = TaskRun,
             **role: Any) -> Iterator[TaskRun]:
    """The task's run for the duration of a block; ends FINISHED, KILLED (Ctrl-C, SIGTERM) or FAILED.
    ``role``: :class:`TaskRun`'s ``seed``, ``parent_run_id`` or ``group``; ``run_class``: a
    :class:`TaskRun` that records other things (a pretraining's run)."""
    run = run_class(params, task, **role)
    run.open(resume)
    with _sigterm_as_interrupt():
        try:
            yield run
        except KeyboardInterrupt:
            run.finish("KILLED")
            raise
        except BaseException:
            run.finish("FAILED")
            raise
    run.finish("FINISHED")


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C inside the block, so that a terminated stage still closes its run."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def mark_killed(params: Params, reference: dict) -> str | None:
    """Mark the run of an attempt that was killed outright (SIGKILL, power loss) as KILLED if it is
    still RUNNING; the run's id, if one was marked."""
    entry = outbox.open_entry(reference["outbox"]) if reference.get("outbox") else None
    if entry is not None and entry.pending:
        if not any(op["op"] == "end" for op in entry.ops()):
            entry.append("end", status="KILLED")
            return entry.id
        return None
    run_id = entry.meta["synced_run_id"] if entry is not None else reference.get("run_id")
    if not run_id:
        return None
    try:
        import mlflow

        client = mlflow.MlflowClient(params.tracking_uri())
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, "KILLED")
            return run_id
    except Exception as exc:  # noqa: BLE001  (the server may be down: the outbox sync marks it later)
        logger.warning(f"warning: could not mark the interrupted run {run_id} as KILLED: {scrub(str(exc))}")
    return None

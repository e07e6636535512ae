"""Push runs kept in the local outbox (recorded while the tracking server was unreachable) to it.

    python -m pipeline.commands.sync_runs            # or: make sync-runs
    python -m pipeline.commands.sync_runs --list     # what is pending, without pushing

Each pending entry becomes (or completes) an MLflow run on the tracking server of params.yaml
(``MLFLOW_TRACKING_URI`` wins): its tags, params, dataset inputs, every metric with its original
step and time, its artifacts and model, and its end status (``KILLED`` when the stage never ended).
Progress is saved after every operation, so an interrupted sync resumes without duplicates.
Entries whose stage is still running are left for later.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pipeline.tracking import outbox
from pipeline.config.paths import DEFAULT_PARAMS
from pipeline.config.errors import ConfigError
from pipeline.config.loading import load_params
from pipeline.tracking.redaction import keep_mlflow_quiet, scrub, shown_uri
from pipeline.runtime.log_setup import configure_logging


def sync_entry(entry: outbox.OutboxEntry, uri: str) -> str:
    """Replay one entry to the server at ``uri``; the run id it now has there. The entry stores no
    credentials: ``uri`` is the one of the current environment (with its password, if any)."""
    import mlflow

    from pipeline.tracking import store as tracking
    from pipeline.serving.mlflow_model import log_task_model

    meta, ops = entry.meta, entry.ops()
    keep_mlflow_quiet(uri)
    tracking.open_store(uri, meta["experiment"])  # a local store: its artifacts beside its database
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    run_id = meta.get("partial_run_id") or _existing_run(client, meta.get("server_run_id"))
    done = meta.get("synced_ops", 0)
    if run_id is None:
        start = next((op for op in ops if op["op"] == "start"), {})
        experiment = client.get_experiment_by_name(meta["experiment"])
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(meta["experiment"])
        run_id = client.create_run(
            experiment_id, start_time=start.get("time_ms"), run_name=start.get("run_name"),
            tags={**start.get("tags", {}), "synced_from_outbox": entry.id},
        ).info.run_id
        entry.update_meta(partial_run_id=run_id)
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.start_run(run_id=run_id)
    status = "KILLED"
    try:
        for index, op in enumerate(ops):
            if index < done:
                status = op.get("status", status)
                continue
            if op["op"] == "start":
                mlflow.log_params(op["params"])
                tracking.log_lineage(op["inputs"])
            elif op["op"] == "metrics":
                mlflow.log_metrics(op["metrics"], step=op["step"], timestamp=op["time_ms"])
            elif op["op"] == "tags":
                mlflow.set_tags(op["tags"])
            elif op["op"] == "artifact":
                _log_copy(entry.directory / op["path"], op["artifact_path"])
            elif op["op"] == "model":
                log_task_model(entry.directory / op["path"], op["rows"], op["outputs"], entry.meta["task"])
            elif op["op"] == "end":
                status = op["status"]
            entry.update_meta(synced_ops=index + 1)
    finally:
        mlflow.end_run(status)
    entry.update_meta(synced_run_id=run_id, synced_to=shown_uri(uri), synced_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
    return run_id


def _existing_run(client, run_id: str | None) -> str | None:
    """``run_id`` if the server has that run (it reached the server before the outage)."""
    if not run_id:
        return None
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id).info.run_id
    except MlflowException:
        return None


def _log_copy(path: Path, artifact_path: str | None) -> None:
    import mlflow

    if path.is_dir():
        mlflow.log_artifacts(str(path), artifact_path=artifact_path)
    else:
        mlflow.log_artifact(str(path), artifact_path=artifact_path)


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="params file (default: %(default)s)")
    parser.add_argument("--list", action="store_true", help="list pending entries; push nothing")
    args = parser.parse_args(argv)
    try:
        uri = load_params(args.params).tracking_uri()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    pending = [entry for entry in outbox.entries() if entry.pending]
    if not pending:
        print(f"nothing to push: {outbox.outbox_root()} holds no pending run")
        return 0
    failed = 0
    for entry in pending:
        meta = entry.meta
        label = f"{entry.id} ({meta['task']}, {len(entry.ops())} records; kept because: {meta.get('reason', '?')})"
        if args.list:
            print(label)
            continue
        if entry.writer_alive() and not any(op["op"] == "end" for op in entry.ops()):
            print(f"skipped {entry.id}: its stage is still running")
            continue
        try:
            run_id = sync_entry(entry, uri)
        except Exception as exc:  # noqa: BLE001  (report and go on with the next entry)
            failed += 1
            print(scrub(f"failed {entry.id}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"),
                  file=sys.stderr)
            continue
        print(f"pushed {entry.id} -> run {run_id} ({meta['task']}) on {shown_uri(uri)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

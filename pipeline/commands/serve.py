"""Serve a task's latest MLflow model over HTTP (MLflow's scoring server, in this environment).

    python -m pipeline.commands.serve sst2 --port 5001
    curl -s 127.0.0.1:5001/invocations -H 'Content-Type: application/json' \\
         -d '{"dataframe_records": [{"text": "a gripping, funny film"}]}'

The model is the one the task's last evaluate stage logged (``reports/<task>/model.json``);
``--model-uri`` serves any other: ``models:/sst2@champion`` (the version ``python -m
pipeline.commands.promote sst2`` made champion), ``models:/sst2/3``, ``runs:/<run id>/sst2``. A URI that
names no model is one line ``error: ...`` (exit status 2) before any server starts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from pipeline.config.errors import ConfigError
from pipeline.config.loading import load_params
from pipeline.config.paths import reports_dir
from pipeline.data.readers import DataError
from pipeline.runtime.log_setup import configure_logging


def model_uri(task: str) -> str:
    """The MLflow URI of the model the task's last evaluation logged."""
    record = reports_dir(task) / "model.json"
    if not record.is_file():
        raise FileNotFoundError(f"{record}: no logged model for task {task!r}; run `dvc repro evaluate@{task}` first")
    logged = json.loads(record.read_text(encoding="utf-8"))
    if logged.get("model_uri"):
        return logged["model_uri"]
    from pipeline.tracking import outbox

    entry = outbox.open_entry(Path(logged.get("outbox") or "-").name)
    if entry is not None and not entry.pending:
        from pipeline.serving.mlflow_model import run_model_uri

        return run_model_uri(entry.meta["synced_run_id"], task)
    raise FileNotFoundError(
        f"{record}: the model of task {task!r} was kept locally because the tracking server was unreachable; "
        f"push it with `python -m pipeline.commands.sync_runs` (make sync-runs), or predict without a server: "
        f"`python -m pipeline.commands.predict {task} \"some text\"`"
    )


def serve_command(uri: str, host: str, port: int) -> list[str]:
    """``mlflow models serve`` in the current environment (no conda/virtualenv of its own)."""
    mlflow = shutil.which("mlflow", path=os.path.dirname(sys.executable)) or "mlflow"
    return [mlflow, "models", "serve", "-m", uri, "--env-manager", "local", "--host", host, "--port", str(port)]


def main(argv: list[str] | None = None) -> None:
    configure_logging()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", nargs="?", help="a task of params.yaml whose model was logged by `dvc repro`")
    parser.add_argument("--model-uri", help="serve this MLflow model URI instead")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    args = parser.parse_args(argv)
    if not (args.task or args.model_uri):
        parser.error("name a task or give --model-uri")
    try:
        params = load_params()
        if args.task:
            params.task(args.task)  # an unknown task is named as such, with the defined ones
        uri = args.model_uri or model_uri(args.task)
        from pipeline.commands.predict import mlflow_model

        mlflow_model(uri)  # a URI naming no model (an alias not set yet): one line here, not the server's traceback
        tracking_uri = params.tracking_uri()
        from pipeline.tracking.store import open_store

        open_store(tracking_uri)  # a copied or moved project: its local store's artifacts are found where they are now
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri  # the real URI, for the server process only
    except (ConfigError, DataError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    command = serve_command(uri, args.host, args.port)
    print(f"serving {uri} on http://{args.host}:{args.port}/invocations", flush=True)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()

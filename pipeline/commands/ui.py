"""Open the MLflow UI on the project's local store (what ``make ui`` runs).

    python -m pipeline.commands.ui --host 127.0.0.1 --port 5000

A copied or moved project first has its store's artifact locations pointed at this copy
(:func:`pipeline.tracking.store.relocate_local_store`), then ``mlflow ui`` replaces this process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from pipeline.config.paths import PROJECT_ROOT
from pipeline.runtime.log_setup import configure_logging


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    parser = argparse.ArgumentParser(description="Open the MLflow UI on the project's local store.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    from pipeline.tracking.store import relocate_local_store

    uri = f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"
    relocate_local_store(uri)
    mlflow = shutil.which("mlflow", path=os.path.dirname(sys.executable)) or "mlflow"
    os.execv(mlflow, [mlflow, "ui", "--backend-store-uri", uri, "--host", args.host, "--port", str(args.port)])
    return 0  # not reached: execv replaces the process


if __name__ == "__main__":
    sys.exit(main())

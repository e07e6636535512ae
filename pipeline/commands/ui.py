"""Open the MLflow UI on the project's local store (what ``make ui`` runs).

    python -m pipeline.commands.ui --host 127.0.0.1 --port 5000
    python -m pipeline.commands.ui --screenshot reports/mlflow_ui.png    # headless Chromium, then stop

A copied or moved project first has its store's artifact locations pointed at this copy
(:func:`pipeline.tracking.store.relocate_local_store`), then ``mlflow ui`` replaces this process.
It prints the address of the experiment's table of training runs: MLflow 3 opens on its GenAI
pages unless the address asks for ``workflowType=machine_learning``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pipeline.config.loading import load_params
from pipeline.config.paths import PROJECT_ROOT
from pipeline.runtime.log_setup import configure_logging

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


def runs_page(base: str, uri: str, experiment: str) -> str:
    """The address of ``experiment``'s training runs in the UI at ``base`` (its list if it has none yet)."""
    import mlflow

    found = mlflow.MlflowClient(uri).get_experiment_by_name(experiment)
    if found is None:
        return f"{base}/#/experiments?workflowType=machine_learning"
    return f"{base}/#/experiments/{found.experiment_id}/runs?workflowType=machine_learning"


def screenshot(command: list[str], page: str, out: Path, wait_s: float = 20.0) -> None:
    """Serve the UI with ``command``, load ``page`` in headless Chromium, save ``out``, stop the UI."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        health = page.split("/#/")[0] + "/health"
        for _ in range(120):
            try:
                urllib.request.urlopen(health, timeout=2)
                break
            except OSError:
                time.sleep(1)
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--window-size=1600,900"):
            options.add_argument(flag)
        browser = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
        try:
            browser.get(page)
            time.sleep(wait_s)  # the React app renders the runs table after its own requests
            out.parent.mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(out))
        finally:
            browser.quit()
    finally:
        server.kill()


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    parser = argparse.ArgumentParser(description="Open the MLflow UI on the project's local store.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--screenshot", type=Path, help="save a PNG of the training runs table and stop")
    args = parser.parse_args(argv)
    from pipeline.tracking.store import relocate_local_store

    uri = f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"
    relocate_local_store(uri)
    mlflow = shutil.which("mlflow", path=os.path.dirname(sys.executable)) or "mlflow"
    command = [mlflow, "ui", "--backend-store-uri", uri, "--host", args.host, "--port", str(args.port)]
    shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    page = runs_page(f"http://{shown_host}:{args.port}", uri, load_params().tracking.experiment)
    if args.screenshot:
        screenshot(command, page, args.screenshot)
        print(f"saved {args.screenshot} ({page})")
        return 0
    print(f"training runs: {page}", flush=True)
    os.execv(mlflow, command)
    return 0  # not reached: execv replaces the process


if __name__ == "__main__":
    sys.exit(main())

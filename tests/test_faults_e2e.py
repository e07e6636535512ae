"""Faults on the real DAG (``dvc repro`` on a copy of the project, one Chinese classification task on a
tiny random BERT): training killed mid-epoch resumes; a tracking server that is down loses nothing; the
same params and seed give the same metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from ruamel.yaml import YAML

from pipeline.team_server import free_port, start_mlflow_server
from tests.tiny_project import build_project, run

pytestmark = pytest.mark.e2e
TASK = "zh_sentiment"


def _project(base: Path, shared_data: Path, zh_vocab: Path, **sizes) -> Path:
    project = build_project(base, shared_data, zh_vocab, {TASK: "text_classification"})
    yaml = YAML()
    params = yaml.load(project / "params.yaml")
    params["tasks"][TASK].update(sizes)
    yaml.dump(params, project / "params.yaml")
    return project


def _env(project: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return {**env, **extra}


def _epochs_done(project: Path) -> int:
    state = project / "models" / "checkpoints" / TASK / "state.json"
    try:
        return json.loads(state.read_text())["epochs_done"]
    except (OSError, ValueError, KeyError):
        return 0


def _interrupt_after(project: Path, epochs: int, sig: int) -> str:
    """Start ``dvc repro`` of the train stage and send ``sig`` to it and its stage as soon as ``epochs``
    epochs are saved (so mid-way through the next one); its output."""
    process = subprocess.Popen(["dvc", "repro", f"train@{TASK}"], cwd=project, env=_env(project), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 600
    while _epochs_done(project) < epochs:
        assert process.poll() is None, f"training ended before epoch {epochs}:\n{process.stdout.read()[-3000:]}"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(process.pid, sig)
    output, _ = process.communicate(timeout=120)
    assert process.returncode != 0, "the interrupted stage must not report success"
    return output


def _runs(project: Path) -> list:
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    return sorted(client.search_runs(experiments, filter_string=f"tags.task = '{TASK}'"), key=lambda r: r.info.start_time)


def test_training_killed_mid_epoch_resumes_from_the_last_epoch(tmp_path: Path, shared_data: Path, zh_vocab: Path) -> None:
    project = _project(tmp_path, shared_data, zh_vocab, max_train_samples=640, epochs=4)
    run(project, "dvc", "repro", f"prepare@{TASK}", f"validate@{TASK}")

    # Ctrl-C during epoch 2: the stage stops, its run is closed as KILLED, no output is taken as finished
    _interrupt_after(project, 1, signal.SIGINT)
    assert not (project / "models" / "tasks" / TASK).exists()
    status = run(project, "dvc", "status", f"train@{TASK}").stdout
    assert "changed" in status or "deleted" in status or "modified" in status, status
    (first,) = _runs(project)
    assert first.info.status == "KILLED"

    # SIGKILL during a later epoch: nothing can run in the process; the next attempt marks its run
    reached = _epochs_done(project)
    _interrupt_after(project, reached + 1, signal.SIGKILL)
    saved = _epochs_done(project)
    assert 1 <= reached < saved < 4
    assert _runs(project)[1].info.status == "RUNNING"

    output = run(project, "dvc", "repro", f"train@{TASK}").stdout
    assert f"resuming after epoch {saved} of 4" in output
    first, second, third = _runs(project)
    assert second.info.status == "KILLED" and third.info.status == "FINISHED"
    assert third.data.tags["resumed_from_run"] == second.info.run_id
    history = json.loads((project / "reports" / TASK / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    assert [m.step for m in client.get_metric_history(third.info.run_id, "dev_accuracy")] == [1, 2, 3, 4]
    assert third.data.metrics["resumed_epochs"] == saved
    assert not (project / "models" / "checkpoints" / TASK).exists(), "finished training leaves no resume state"
    assert (project / "models" / "tasks" / TASK / "task.json").is_file()


def test_tracking_server_down_the_pipeline_completes_and_sync_pushes_the_runs(
    tmp_path: Path, shared_data: Path, zh_vocab: Path
) -> None:
    project = _project(tmp_path, shared_data, zh_vocab)
    down = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run(["dvc", "repro"], cwd=project, env=_env(project, MLFLOW_TRACKING_URI=down),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"warning: tracking server {down} failed" in result.stderr + result.stdout
    metrics = json.loads((project / "reports" / TASK / "metrics.json").read_text())
    assert 0 <= metrics["test"]["accuracy"] <= 1
    recorded = json.loads((project / "reports" / TASK / "mlflow_run.json").read_text())
    assert recorded["run_id"] is None and Path(recorded["outbox"]).is_dir()
    assert json.loads((project / "reports" / TASK / "model.json").read_text())["model_uri"] is None

    listed = run(project, "python", "-m", "pipeline.sync_runs", "--list").stdout
    assert TASK in listed
    server = start_mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "artifacts")
    try:
        pushed = run(project, "python", "-m", "pipeline.sync_runs", env={"MLFLOW_TRACKING_URI": server.url}).stdout
        assert "pushed" in pushed
        client = mlflow.MlflowClient(server.url)
        (synced,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
        assert synced.info.status == "FINISHED"
        assert synced.data.metrics["test.accuracy"] == pytest.approx(metrics["test"]["accuracy"])
        assert [m.step for m in client.get_metric_history(synced.info.run_id, "dev_accuracy")] == [1, 2]
        assert synced.data.params["epochs"] == "2"
        # the model kept locally is now a served model of the run, and predicts
        code = ("import sys, mlflow; m = mlflow.pyfunc.load_model(sys.argv[1]); "
                "print(m.predict([{'text': '这部电影很好看'}])[0]['label'])")
        answer = run(project, "python", "-c", code, f"runs:/{synced.info.run_id}/model",
                     env={"MLFLOW_TRACKING_URI": server.url}).stdout.strip().splitlines()[-1]
        assert answer in {"positive", "negative"}
        again = run(project, "python", "-m", "pipeline.sync_runs", env={"MLFLOW_TRACKING_URI": server.url}).stdout
        assert "nothing to push" in again
    finally:
        server.stop()


def test_same_params_and_seed_give_identical_metrics(tmp_path: Path, shared_data: Path, zh_vocab: Path) -> None:
    project = _project(tmp_path, shared_data, zh_vocab)
    histories = []
    for attempt in range(2):
        # the second time, only the training itself is forced to run again
        run(project, "dvc", "repro", *(["--force", "--single-item"] if attempt else []), f"train@{TASK}")
        history = json.loads((project / "reports" / TASK / "history.json").read_text())
        histories.append([{k: v for k, v in row.items() if k != "seconds"} for row in history])
    assert histories[0] == histories[1]
    assert len(histories[0]) == 2 and all(row["loss"] > 0 for row in histories[0])

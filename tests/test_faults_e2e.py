"""Faults on the real DAG (``dvc repro`` on a copy of the project, tasks on a tiny random BERT): a stage
stopped at any point ends non-zero with its run KILLED and nothing recorded as finished, even when it
was started with SIGINT ignored; the resumed training ends with the history of an uninterrupted one;
a tracking server that is down loses nothing; the same params and seed give the same histories, also
beside a CPU-heavy process.

Interruptions at named points use ``PIPELINE_INTERRUPT_AT`` (the stage signals itself on reaching the
point), so no assertion depends on how fast the machine is."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from ruamel.yaml import YAML

from pipeline.commands.team_server import free_port, start_mlflow_server
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


def _ignore_sigint() -> None:
    """What a shell does to a background job (``make run &`` in a script): SIGINT ignored, inherited."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


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
    """Start ``dvc repro`` of the train stage (with SIGINT ignored, as in a background job) and send
    ``sig`` to it and its stage as soon as ``epochs`` epochs are saved (so mid-way through the next
    one); its output."""
    process = subprocess.Popen(["dvc", "repro", f"train@{TASK}"], cwd=project, env=_env(project), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                               preexec_fn=_ignore_sigint)
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
    assert recorded["run_id"] is None and (project / recorded["outbox"]).is_dir()
    assert json.loads((project / "reports" / TASK / "model.json").read_text())["model_uri"] is None

    listed = run(project, "python", "-m", "pipeline.commands.sync_runs", "--list").stdout
    assert TASK in listed
    server = start_mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "artifacts")
    try:
        pushed = run(project, "python", "-m", "pipeline.commands.sync_runs", env={"MLFLOW_TRACKING_URI": server.url}).stdout
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
        answer = run(project, "python", "-c", code, f"runs:/{synced.info.run_id}/{TASK}",
                     env={"MLFLOW_TRACKING_URI": server.url}).stdout.strip().splitlines()[-1]
        assert answer in {"positive", "negative"}
        again = run(project, "python", "-m", "pipeline.commands.sync_runs", env={"MLFLOW_TRACKING_URI": server.url}).stdout
        assert "nothing to push" in again
    finally:
        server.stop()


def _history(project: Path, task: str) -> list[dict]:
    history = json.loads((project / "reports" / task / "history.json").read_text())
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def _stopped_at(project: Path, point: str, sig: str, *stages: str) -> str:
    """Run ``dvc repro --force --single-item <stages>`` with the stage stopping itself at ``point``; assert
    it ended non-zero with the one-line message and no traceback; its output."""
    env = _env(project, PIPELINE_INTERRUPT_AT=point, PIPELINE_INTERRUPT_SIGNAL=sig)
    for stage in stages:  # a forced train stage keeps a seed trained with the same params: remove it
        kind, _, task = stage.partition("@")
        if kind == "train":
            shutil.rmtree(project / "models" / "seeds" / task, ignore_errors=True)
    result = subprocess.run(["dvc", "repro", "--force", "--single-item", *stages], cwd=project, env=env,
                            capture_output=True, text=True, timeout=900, preexec_fn=_ignore_sigint)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"stopped at {point} by SIG{sig}, the stage reported success:\n{output[-3000:]}"
    assert f"[fault] stopping at {point.partition(':')[0]}" in output, output[-3000:]
    assert f"interrupted (SIG{sig})" in output and "Traceback" not in output, output[-3000:]
    return output


def test_a_stage_stopped_at_any_point_fails_and_resumes_to_the_uninterrupted_history(
    tmp_path: Path, shared_data: Path, zh_vocab: Path
) -> None:
    # 96 examples in batches of 16: 6 steps per epoch, 3 epochs
    project = _project(tmp_path, shared_data, zh_vocab, max_train_samples=96, epochs=3)
    run(project, "dvc", "repro", f"train@{TASK}")
    uninterrupted = _history(project, TASK)
    assert [row["epoch"] for row in uninterrupted] == [1, 2, 3]
    train, evaluate = f"train@{TASK}", f"evaluate@{TASK}"

    _stopped_at(project, "loaded", "INT", train)  # data read, model not built: no run opened yet
    assert _epochs_done(project) == 0
    _stopped_at(project, "batch:8", "TERM", train)  # epoch 2, second batch
    assert _epochs_done(project) == 1
    _stopped_at(project, "dev_evaluation", "INT", train)  # the resumed attempt's first dev evaluation
    _stopped_at(project, "checkpoint_write", "TERM", train)  # epoch 2's checkpoint written, state.json not
    assert _epochs_done(project) == 1, "a checkpoint that state.json does not name is never taken"
    assert not (project / "models" / "tasks" / TASK).exists(), "an interrupted training left a model in place"
    assert not (project / "models" / "seeds" / TASK / "42").exists(), "an interrupted seed was kept as trained"
    status = run(project, "dvc", "status", train).stdout
    assert "changed" in status or "deleted" in status or "modified" in status, status

    output = run(project, "dvc", "repro", train).stdout
    assert "resuming after epoch 1 of 3" in output
    assert _history(project, TASK) == uninterrupted, "the resumed training must end with the uninterrupted history"

    _stopped_at(project, "model_logging", "INT", evaluate)
    status = run(project, "dvc", "status", evaluate).stdout
    assert evaluate in status, "an interrupted evaluation must not be recorded as finished"
    run(project, "dvc", "repro", evaluate)
    assert "up to date" in run(project, "dvc", "status", train, evaluate).stdout

    runs = _runs(project)
    # the reference run, three killed training attempts (the first stop came before any run was opened),
    # the finished resumed run (re-opened, killed and finished again by the evaluations)
    statuses = [r.info.status for r in runs]
    assert statuses[0] == "FINISHED" and statuses[1:4] == ["KILLED"] * 3, statuses
    assert statuses[-1] == "FINISHED" and len(runs) == 5, statuses


def _cpu_hog() -> subprocess.Popen:
    """Matrix products on every core, in another process: the busy machine the promises must hold on."""
    code = "import numpy as np\na = np.random.rand(600, 600)\nwhile True:\n    a = (a @ a) / 600.0"
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_same_params_and_seed_give_identical_histories_also_on_a_busy_machine(
    tmp_path: Path, shared_data: Path, zh_vocab: Path
) -> None:
    """Sequence labeling (CRF) and relation extraction, trained twice: alone, then beside a CPU hog."""
    tasks = {"cluener": "sequence_labeling", "duie": "relation_extraction"}
    project = build_project(tmp_path, shared_data, zh_vocab, tasks)
    stages = [f"train@{task}" for task in tasks]
    run(project, "dvc", "repro", *stages)
    first = {task: _history(project, task) for task in tasks}
    hogs = [_cpu_hog() for _ in range(2)]
    try:
        run(project, "dvc", "repro", "--force", "--single-item", *stages)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    for task in tasks:
        assert len(first[task]) == 2 and all(row["loss"] > 0 for row in first[task])
        assert _history(project, task) == first[task], f"{task}: a second training with the same seed differs"

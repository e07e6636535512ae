"""Data-parallel training through ``tf.distribute`` (``distribute:``), on this machine's CPU: the real train
stage with ``mirrored`` over two logical CPU devices, and with ``multi_worker`` as two worker processes on
127.0.0.1 (SIGKILLed and interrupted in their second epoch, then resumed), each giving the training of one
device with the same global batch. The tiny random BERT has no dropout, so the replicas' sums are the only
difference from one device."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.tiny_project import build_project, run

pytestmark = pytest.mark.e2e

TASK = "zh_sentiment"
#: 48 training examples in global batches of 16: 3 steps an epoch, 8 examples per replica; early stopping
#: (the workers decide together) never stops the reference, which learns at every epoch
SETTINGS = {"epochs": 3, "learning_rate": 2.0e-3, "dropout": 0.0, "batch_size": 16,
            "early_stopping": {"patience": 2, "min_delta": 0.0}}


def _set_task(project: Path, **values) -> None:
    yaml = YAML()
    params = yaml.load(project / "params.yaml")
    params["tasks"][TASK].update(values)
    yaml.dump(params, project / "params.yaml")


def _history(root: Path) -> list[dict]:
    return json.loads((root / "reports" / TASK / "history.json").read_text(encoding="utf-8"))


def _train_stage(project: Path) -> list[str]:
    return [sys.executable, "-m", "pipeline.stages.train", TASK]


def _env(project: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **extra}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def _assert_same_training(history: list[dict], reference: list[dict]) -> None:
    assert [row["epoch"] for row in history] == [row["epoch"] for row in reference]
    for row, expected in zip(history, reference):
        assert row["loss"] == pytest.approx(expected["loss"], rel=1e-3), (history, reference)
        assert row["dev_accuracy"] == pytest.approx(expected["dev_accuracy"], abs=0.05), (history, reference)


@pytest.fixture(scope="module")
def project(module_tmp: Path, shared_data: Path, zh_vocab: Path) -> dict:
    """The project with one Chinese task on a dropout-free tiny BERT, trained once on one device."""
    project = build_project(module_tmp, shared_data, zh_vocab, {TASK: "text_classification"})
    config_path = module_tmp / "tiny-zh" / "bert_config.json"
    config = json.loads(config_path.read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    config_path.write_text(json.dumps(config))
    _set_task(project, **SETTINGS)
    run(project, sys.executable, "-m", "pipeline.stages.backbone", "tiny-zh")
    run(project, sys.executable, "-m", "pipeline.stages.prepare", TASK)
    single = run(project, *_train_stage(project))
    assert "training on one device" in single.stdout
    reference = _history(project)
    assert reference[-1]["loss"] < reference[0]["loss"], "the reference training learnt nothing"
    return {"project": project, "reference": reference}


def test_mirrored_over_two_cpu_devices_trains_as_one_device(project: dict) -> None:
    root = project["project"]
    _set_task(root, distribute={"strategy": "mirrored", "cpu_replicas": 2})
    try:
        result = run(root, *_train_stage(root))
    finally:
        _set_task(root, distribute={"strategy": "none"})
    assert "training on mirrored: 2 replicas (device:CPU:0, device:CPU:1)" in result.stdout
    _assert_same_training(_history(root), project["reference"])


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _start_workers(root: Path, faults: dict[int, dict[str, str]]) -> list[subprocess.Popen]:
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    workers = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        workers.append(subprocess.Popen(
            _train_stage(root), cwd=root, env=_env(root, TF_CONFIG=tf_config, **faults.get(index, {})),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        ))
    return workers


def _finish(workers: list[subprocess.Popen]) -> list[tuple[int, str]]:
    results = []
    for worker in workers:
        try:
            output, _ = worker.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            worker.kill()
            output, _ = worker.communicate()
        results.append((worker.returncode, output))
    return results


def test_multi_worker_killed_then_resumed_trains_as_one_device(project: dict) -> None:
    root = project["project"]
    _set_task(root, distribute={"strategy": "multi_worker"})
    other = root / ".workers" / "worker-1"
    checkpoints = Path("models") / "checkpoints" / TASK / "state.json"
    # the second worker dies outright in epoch 2, the chief is interrupted at the same point
    interrupted = _finish(_start_workers(root, {
        0: {"PIPELINE_INTERRUPT_AT": "dev_evaluation:2"},
        1: {"PIPELINE_INTERRUPT_AT": "dev_evaluation:2", "PIPELINE_INTERRUPT_SIGNAL": "KILL"},
    }))
    (chief_code, chief_log), (worker_code, worker_log) = interrupted
    assert chief_code == 130, chief_log[-3000:]
    assert worker_code == -9, worker_log[-3000:]
    assert "training on multi_worker: 2 replicas on 2 workers (this one: chief 0" in chief_log
    for where in (root, other):  # each worker keeps its own checkpoints of the first epoch
        assert json.loads((where / checkpoints).read_text())["epochs_done"] == 1

    resumed = _finish(_start_workers(root, {}))
    for code, log in resumed:
        assert code == 0, log[-3000:]
        assert "resuming after epoch 1 of 3" in log
    _assert_same_training(_history(root), project["reference"])
    # the chief published the model and the reports; the other worker's copies stay under .workers/
    assert (root / "models" / "tasks" / TASK / "task.json").is_file()
    assert [row["loss"] for row in _history(other)] == [row["loss"] for row in _history(root)]
    assert (other / "reports" / "timings" / f"train@{TASK}.json").is_file()  # not over the chief's
    assert json.loads((other / "reports" / TASK / "mlflow_run.json").read_text())["run_id"] is None
    assert json.loads((root / "reports" / TASK / "mlflow_run.json").read_text())["run_id"]

"""Two sweep workers against the team server: its PostgreSQL keeps the Optuna study, its MLflow server the
runs. A 2-point grid on a tiny task; one worker is SIGKILLed in its first trial and the other, after the
grace period without heartbeats, runs that point again. Every point completes once, each as a DVC
experiment (``dvc exp run --temp``) and an MLflow run under the sweep's parent run."""

from __future__ import annotations

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

from pipeline.commands.sweep import PARENT, open_storage
from tests.test_team_server import public_tmpdir
from tests.tiny_project import build_project, git_commit_all, run

pytestmark = pytest.mark.e2e
TASK = "zh_sentiment"
NAME = "lr"
VALUES = [1e-4, 1e-3]


def _worker(project: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.commands.sweep", "worker", NAME, "--heartbeat", "1", "--grace", "5"],
        cwd=project, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def _study(url: str):
    import optuna

    return optuna.load_study(study_name=NAME, storage=open_storage(url, 1, 5))


def _running_trials(url: str) -> list:
    try:
        return [t for t in _study(url).get_trials(deepcopy=False) if t.state.name == "RUNNING"]
    except KeyError:  # the study is not created yet
        return []


def test_two_workers_share_a_grid_and_retry_a_killed_workers_trial(tmp_path: Path, shared_data: Path,
                                                                    zh_vocab: Path) -> None:
    from pipeline.commands.team_server import start_team_server

    project = build_project(tmp_path, shared_data, zh_vocab, {TASK: "text_classification"})
    yaml = YAML()
    params = yaml.load(project / "params.yaml")
    params["tasks"][TASK]["epochs"] = 1
    params["sweeps"] = {NAME: {"task": TASK, "sampler": "grid", "trials": 5,
                               "space": {f"tasks.{TASK}.learning_rate": {"choices": VALUES}}}}
    yaml.dump(params, project / "params.yaml")
    run(project, "dvc", "repro", f"validate@{TASK}")  # the baseline's data and backbone, from DVC's cache in trials
    git_commit_all(project, "sweep baseline")

    base = public_tmpdir()
    server = start_team_server(base)
    workers: list[subprocess.Popen] = []
    try:
        url = server.postgres.sweep_url
        env = {**os.environ, "MLFLOW_TRACKING_URI": server.url, "PIPELINE_SWEEP_STORAGE": url,
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        workers.append(_worker(project, env, tmp_path / "first.log"))
        deadline = time.monotonic() + 300
        while not _running_trials(url):  # the first worker has taken a point
            assert time.monotonic() < deadline and workers[0].poll() is None, (tmp_path / "first.log").read_text()
            time.sleep(0.5)
        workers.append(_worker(project, env, tmp_path / "second.log"))
        time.sleep(8)  # the first worker's experiment is under way
        killed = _running_trials(url)
        os.killpg(workers[0].pid, signal.SIGKILL)
        assert workers[1].wait(timeout=900) == 0, (tmp_path / "second.log").read_text()
        output = (tmp_path / "second.log").read_text()

        study = _study(url)
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state.name == "COMPLETE"]
        assert sorted(t.params[f"tasks.{TASK}.learning_rate"] for t in complete) == VALUES, "each point once"
        failed = [t for t in trials if t.state.name == "FAIL"]
        assert len(failed) == 1 and failed[0].number in {t.number for t in killed}, "the killed worker's trial"
        assert any(t.system_attrs.get("failed_trial") == failed[0].number for t in complete), "retried and done"
        assert "completed 2 trial(s)" in output, output[-2000:]

        client = mlflow.MlflowClient(server.url)
        parent = client.get_run(study.user_attrs[PARENT])
        assert parent.info.status == "FINISHED" and parent.data.tags["sweep"] == NAME
        experiment = [parent.info.experiment_id]
        trial_runs = client.search_runs(experiment, filter_string=f"tags.sweep_trial != '' and tags.sweep = '{NAME}'")
        finished = [r for r in trial_runs if r.info.status == "FINISHED"]
        assert len(finished) == 2 and all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in finished)
        scores = {r.data.params[f"tasks.{TASK}.learning_rate"]: r.data.metrics["dev_accuracy.mean"] for r in finished}
        assert scores == {str(t.params[f"tasks.{TASK}.learning_rate"]): pytest.approx(t.value) for t in complete}
        task_runs = client.search_runs(experiment, filter_string=f"tags.sweep = '{NAME}' and tags.task = '{TASK}'")
        assert {r.data.tags["dvc_exp_name"] for r in task_runs if r.info.status == "FINISHED"} == {
            r.data.tags["dvc_exp_name"] for r in finished}
        names = run(project, "dvc", "exp", "list", "--name-only").stdout.split()
        assert {r.data.tags["dvc_exp_name"] for r in finished} <= set(names)
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
        server.stop()
        shutil.rmtree(base, ignore_errors=True)

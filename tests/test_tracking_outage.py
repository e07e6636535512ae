"""A tracking server that is down, or dies mid-run, loses nothing: the run is kept in the local outbox and
``python -m pipeline.commands.sync_runs`` pushes it later. Against a real ``mlflow server`` process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import mlflow
import pytest

from pipeline.tracking import outbox
from pipeline.commands import sync_runs
from pipeline.config.loading import load_params
from pipeline.runtime.log_setup import configure_logging
from pipeline.tracking.run import mark_killed, task_run
from pipeline.commands.team_server import free_port, start_mlflow_server

pytestmark = pytest.mark.e2e

TASK = "sst2"


@pytest.fixture
def setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("PIPELINE_OUTBOX", str(tmp_path / "outbox"))
    monkeypatch.setenv("PIPELINE_RUN", "outage-test")
    servers = []

    def start():
        """The server over the same store; a restart takes a new port (the old one lingers in TIME_WAIT)."""
        server = start_mlflow_server(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts",
                                     port=None if servers else port)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        servers.append(server)
        return server

    yield {"uri": uri, "start": start, "params": load_params(), "dir": tmp_path}
    for server in servers:
        server.stop()
    while mlflow.active_run() is not None:
        mlflow.end_run()


def _history(client: mlflow.MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def test_server_down_from_the_start_keeps_the_run_locally_and_sync_pushes_it(setting: dict, capsys) -> None:
    artifact = setting["dir"] / "history.json"
    artifact.write_text('[{"epoch": 1}]')
    configure_logging()  # as every stage does: the warning reaches stderr
    with task_run(setting["params"], TASK) as run:
        assert run.offline and run.run_id is None
        for epoch in (1, 2):
            run.log_metrics({"dev_accuracy": 0.5 + epoch / 10, "loss": 1.0 / epoch}, step=epoch)
        run.set_tags({"note": "offline"})
        run.log_artifacts([artifact], "training")
        record = run.record()
    warning = capsys.readouterr().err
    assert "warning: tracking server" in warning and "pipeline.commands.sync_runs" in warning
    (entry,) = list(outbox.entries())
    assert record["outbox"] == str(entry.directory) and entry.pending
    assert [op["op"] for op in entry.ops()] == ["start", "metrics", "metrics", "tags", "artifact", "end"]

    server = setting["start"]()
    assert sync_runs.main([]) == 0
    run_id = outbox.open_entry(entry.id).meta["synced_run_id"]
    client = mlflow.MlflowClient(server.url)
    pushed = client.get_run(run_id)
    assert pushed.info.status == "FINISHED"
    assert pushed.data.params["learning_rate"] == str(setting["params"].task(TASK).learning_rate)
    assert pushed.data.tags["note"] == "offline" and pushed.data.tags["task"] == TASK
    assert _history(client, run_id, "dev_accuracy") == [(1, 0.6), (2, 0.7)]
    assert [a.path for a in client.list_artifacts(run_id, "training")] == ["training/history.json"]
    # a second sync has nothing left to push
    assert sync_runs.main([]) == 0
    assert len(client.search_runs([pushed.info.experiment_id])) == 1


def test_server_dying_mid_run_continues_the_same_run_after_sync(setting: dict) -> None:
    server = setting["start"]()
    with task_run(setting["params"], TASK) as run:
        assert not run.offline
        run.log_metrics({"loss": 1.0}, step=1)
        server.stop()
        run.log_metrics({"loss": 0.5}, step=2)  # the server is gone: kept locally, training goes on
        run.log_metrics({"loss": 0.25}, step=3)
        assert run.offline
        run_id = run.run_id
    (entry,) = list(outbox.entries())
    assert entry.meta["server_run_id"] == run_id

    server = setting["start"]()
    assert sync_runs.main([]) == 0
    client = mlflow.MlflowClient(server.url)
    assert outbox.open_entry(entry.id).meta["synced_run_id"] == run_id
    assert _history(client, run_id, "loss") == [(1, 1.0), (2, 0.5), (3, 0.25)]
    assert client.get_run(run_id).info.status == "FINISHED"


def test_interrupted_run_is_marked_killed_online_and_offline(setting: dict) -> None:
    server = setting["start"]()
    with pytest.raises(KeyboardInterrupt):
        with task_run(setting["params"], TASK) as run:
            interrupted = run.run_id
            raise KeyboardInterrupt
    client = mlflow.MlflowClient(server.url)
    assert client.get_run(interrupted).info.status == "KILLED"

    # a process killed outright leaves its run RUNNING; the next attempt marks it
    run = client.create_run(client.get_run(interrupted).info.experiment_id)
    assert mark_killed(setting["params"], {"run_id": run.info.run_id}) == run.info.run_id
    assert client.get_run(run.info.run_id).info.status == "KILLED"

    server.stop()
    with task_run(setting["params"], TASK) as offline_run:
        reference = offline_run.reference()
        # pretend the process died here: no end record yet
        entry = outbox.open_entry(reference["outbox"])
        ops_before = [op["op"] for op in entry.ops()]
        assert "end" not in ops_before
        assert mark_killed(setting["params"], reference) == entry.id
        last = entry.ops()[-1]
        assert (last["op"], last["status"]) == ("end", "KILLED")
        mlflow_run_json = json.dumps(offline_run.record())
    assert '"run_id": null' in mlflow_run_json

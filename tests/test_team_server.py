"""The pipeline against a team tracking server: ``mlflow server`` over PostgreSQL, artifacts proxied.

Starts PostgreSQL and ``mlflow server`` on free ports (pipeline.team_server), runs ``dvc repro`` on a
tiny two-task project with ``MLFLOW_TRACKING_URI=http://127.0.0.1:<port>``, then checks what the server
holds through its REST API with plain HTTP, and the rows in PostgreSQL.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from pipeline.team_server import TeamServer, TeamServerError, start_team_server
from tests.tiny_project import build_project, run

e2e = pytest.mark.e2e
TASKS = {"sst2": "text_classification", "cluener": "sequence_labeling"}
EXPERIMENT = "bert4keras-pipeline"


@pytest.fixture(scope="module")
def server() -> Iterator[TeamServer]:
    # not pytest's tmp_path: as root the cluster belongs to the postgres user, who cannot enter
    # pytest's private (0700) base directory
    base = Path(tempfile.mkdtemp(prefix="team-server-"))
    base.chmod(0o755)
    try:
        started = start_team_server(base)
    except TeamServerError as exc:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"cannot start the team server: {exc}")
    try:
        yield started
    finally:
        started.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, zh_vocab: Path, server: TeamServer) -> Path:
    project = build_project(tmp_path_factory.mktemp("team"), shared_data, zh_vocab, TASKS)
    run(project, "dvc", "repro", env={"MLFLOW_TRACKING_URI": server.url})
    return project


def api(server: TeamServer, path: str, body: dict | None = None, **query: str) -> Any:
    """GET (or POST ``body`` as JSON to) ``/api/2.0/<path>`` and return the decoded answer."""
    url = f"{server.url}/api/2.0/{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def runs(project: Path, server: TeamServer) -> dict[str, dict]:
    """The experiment's runs on the server, by their ``task`` tag."""
    experiment = api(server, "mlflow/experiments/get-by-name", experiment_name=EXPERIMENT)["experiment"]
    assert experiment["artifact_location"].startswith("mlflow-artifacts:"), "artifacts must go through the server"
    found = api(server, "mlflow/runs/search", {"experiment_ids": [experiment["experiment_id"]]}).get("runs", [])
    by_task = {next(t["value"] for t in r["data"]["tags"] if t["key"] == "task"): r for r in found}
    assert sorted(by_task) == sorted(TASKS) and len(found) == len(TASKS), [r["info"]["run_name"] for r in found]
    return by_task


@e2e
@pytest.mark.parametrize("task", list(TASKS))
def test_each_task_has_a_finished_run_with_params_and_metrics(project: Path, runs: dict, task: str) -> None:
    run_ = runs[task]
    assert run_["info"]["status"] == "FINISHED"
    params = {p["key"]: p["value"] for p in run_["data"]["params"]}
    assert params["epochs"] == "2" and params["kind"] == TASKS[task]
    metrics = {m["key"]: m["value"] for m in run_["data"]["metrics"]}
    report = json.loads((project / "reports" / task / "metrics.json").read_text())
    primary = next(iter(report["test"]))
    assert metrics[f"test.{primary}"] == pytest.approx(report["test"][primary])
    assert f"baseline.{primary}" in metrics and f"dev_{primary}" in metrics


@e2e
@pytest.mark.parametrize("task", list(TASKS))
def test_artifacts_and_model_are_stored_by_the_server(project: Path, server: TeamServer, runs: dict, task: str) -> None:
    run_id = runs[task]["info"]["run_id"]
    listed = {f["path"] for f in api(server, "mlflow/artifacts/list", run_id=run_id).get("files", [])}
    assert {"training", "evaluation"} <= listed, listed
    # MLflow 3: log_model(name="model") makes a logged model, the run's output, with its own artifacts
    outputs = runs[task].get("outputs", {}).get("model_outputs", [])
    assert len(outputs) == 1, f"{task}: expected one logged model as run output, got {outputs}"
    model = api(server, f"mlflow/logged-models/{outputs[0]['model_id']}")["model"]["info"]
    assert model["name"] == "model" and model["source_run_id"] == run_id
    assert model["status"] == "LOGGED_MODEL_READY"
    files = {f["path"] for f in api(server, f"mlflow/logged-models/{model['model_id']}/artifacts/directories")["files"]}
    assert "MLmodel" in files, files
    # nothing went to the project's local store
    assert not (project / "mlflow.db").exists() and not (project / "mlartifacts").exists()


@e2e
def test_a_teammate_fetches_the_model_by_its_run(project: Path, server: TeamServer, runs: dict,
                                                  tmp_path: Path) -> None:
    """``runs:/<run id>/model`` (what reports/<task>/model.json records) resolves through the server."""
    uri = f"runs:/{runs['sst2']['info']['run_id']}/model"
    run(project, "mlflow", "artifacts", "download", "-u", f"{uri}/MLmodel", "-d", str(tmp_path),
        env={"MLFLOW_TRACKING_URI": server.url})
    mlmodel = (tmp_path / "model" / "MLmodel").read_text()
    assert "python_function" in mlmodel and "bundle" in mlmodel, mlmodel


@e2e
def test_runs_and_models_are_rows_in_postgresql(runs: dict, server: TeamServer) -> None:
    import psycopg2

    pg = server.postgres
    connection = psycopg2.connect(host="127.0.0.1", port=pg.port, user=pg.user, password=pg.password,
                                  dbname=pg.database)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT run_uuid, status FROM runs")
            rows = dict(cursor.fetchall())
            cursor.execute("SELECT count(*) FROM logged_models WHERE name = 'model'")
            models = cursor.fetchone()[0]
    finally:
        connection.close()
    assert rows == {run_["info"]["run_id"]: "FINISHED" for run_ in runs.values()}
    assert models == len(TASKS)


def test_a_busy_port_is_a_one_line_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(TeamServerError, match=f"port {port} on 127.0.0.1 is already in use"):
            start_team_server(tmp_path, port=port)
    assert not (tmp_path / "postgres").exists(), "nothing is started when the MLflow port is taken"

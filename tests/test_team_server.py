"""The pipeline against a team tracking server: ``mlflow server`` over PostgreSQL, artifacts proxied.

Starts PostgreSQL and ``mlflow server`` on free ports (pipeline.commands.team_server), runs ``dvc repro`` on a
tiny two-task project with ``MLFLOW_TRACKING_URI=http://127.0.0.1:<port>``, then checks what the server
holds through its REST API with plain HTTP, and the rows in PostgreSQL. Also checks that the database
asks everyone for a password (another local user gets nowhere without it), that the password stays in
a private file and off command lines and logs, and that a cluster made by older versions, which
trusted local connections, is switched to passwords.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from pipeline.commands import team_server as ts
from pipeline.commands.team_server import TeamServer, TeamServerError, start_team_server
from tests.tiny_project import build_project, run

e2e = pytest.mark.e2e
TASKS = {"zh_sentiment": "text_classification", "cluener": "sequence_labeling"}
EXPERIMENT = "bert4keras-pipeline"


OTHER_USER = "nobody"


def public_tmpdir() -> Path:
    """Not pytest's tmp_path: as root the cluster belongs to the postgres user, who cannot enter
    pytest's private (0700) base directory."""
    base = Path(tempfile.mkdtemp(prefix="team-server-"))
    base.chmod(0o755)
    return base


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def as_other_user(*command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``command`` run as the unprivileged local user ``nobody`` (we are root), no PostgreSQL settings
    or password files inherited."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return subprocess.run(["runuser", "-u", OTHER_USER, "--", *command], capture_output=True, text=True,
                          timeout=60, cwd="/", env={**clean, **(env or {})})


needs_other_user = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("runuser"),
    reason="running commands as another local user needs root and runuser")


def other_user_exists() -> None:
    try:
        pwd.getpwnam(OTHER_USER)
    except KeyError:
        pytest.skip(f"no local user {OTHER_USER!r} to try the database as")


def psql_attempts(pg: ts.Postgres, *, password: str | None = None) -> dict[tuple[str, str], tuple[int, str]]:
    """(exit code, stderr) of ``psql`` run as another local user, by (host, role): the socket directory
    and 127.0.0.1, as the superuser and as the role ``mlflow``; ``-w`` never prompts for a password."""
    psql = str(pg.bin_dir / "psql") if (pg.bin_dir / "psql").is_file() else shutil.which("psql")
    assert psql, "psql not found"
    env = {"PGPASSWORD": password} if password else {"PGPASSFILE": "/dev/null"}
    results = {}
    for host in (str(pg.socket_dir), "127.0.0.1"):
        for role in ("postgres", pg.user):
            done = as_other_user(psql, "-w", "-h", host, "-p", str(pg.port), "-U", role, "-d", pg.database,
                                 "-tAc", "SELECT current_user", env=env)
            results[host, role] = (done.returncode, (done.stderr + done.stdout).strip())
    return results


@pytest.fixture(scope="module")
def server() -> Iterator[TeamServer]:
    base = public_tmpdir()
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
def project(module_tmp: Path, shared_data: Path, zh_vocab: Path, server: TeamServer) -> Path:
    project = build_project(module_tmp, shared_data, zh_vocab, TASKS)
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
    # MLflow 3: log_model(name=<task>) makes a logged model, the run's output, with its own artifacts
    outputs = runs[task].get("outputs", {}).get("model_outputs", [])
    assert len(outputs) == 1, f"{task}: expected one logged model as run output, got {outputs}"
    model = api(server, f"mlflow/logged-models/{outputs[0]['model_id']}")["model"]["info"]
    assert model["name"] == task and model["source_run_id"] == run_id, "a logged model is named after its task"
    assert model["status"] == "LOGGED_MODEL_READY"
    files = {f["path"] for f in api(server, f"mlflow/logged-models/{model['model_id']}/artifacts/directories")["files"]}
    assert "MLmodel" in files, files
    # nothing went to the project's local store
    assert not (project / "mlflow.db").exists() and not (project / "mlartifacts").exists()


@e2e
def test_a_teammate_fetches_the_model_by_its_run(project: Path, server: TeamServer, runs: dict,
                                                  tmp_path: Path) -> None:
    """``runs:/<run id>/<task>`` (what reports/<task>/model.json records) resolves through the server."""
    uri = f"runs:/{runs['zh_sentiment']['info']['run_id']}/zh_sentiment"
    run(project, "mlflow", "artifacts", "download", "-u", f"{uri}/MLmodel", "-d", str(tmp_path),
        env={"MLFLOW_TRACKING_URI": server.url})
    mlmodel = (tmp_path / "zh_sentiment" / "MLmodel").read_text()
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
            cursor.execute("SELECT name FROM logged_models")
            models = sorted(name for (name,) in cursor.fetchall())
    finally:
        connection.close()
    assert rows == {run_["info"]["run_id"]: "FINISHED" for run_ in runs.values()}
    assert models == sorted(TASKS), "one logged model per task, named after it"


@pytest.mark.unit
def test_a_busy_port_is_a_one_line_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(TeamServerError, match=f"port {port} on 127.0.0.1 is already in use"):
            start_team_server(tmp_path, port=port)
    assert not (tmp_path / "postgres").exists(), "nothing is started when the MLflow port is taken"


@e2e
@needs_other_user
def test_another_local_user_cannot_reach_the_database_without_the_password(server: TeamServer) -> None:
    other_user_exists()
    pg = server.postgres
    listing = as_other_user("ls", str(pg.socket_dir))
    assert listing.returncode != 0 and "Permission denied" in listing.stderr, listing
    for (host, role), (code, output) in psql_attempts(pg).items():
        assert code != 0, f"{OTHER_USER} connected to {host} as {role} without a password: {output}"
        if host == "127.0.0.1":
            assert "no password supplied" in output, (host, role, output)
        else:  # the socket lies in a directory only the cluster's owner may enter
            assert "Permission denied" in output, (host, role, output)
    # the control: the same user with the role's password gets in over TCP (so the refusals above are
    # the password's doing), and the superuser's password is not the role's
    allowed = psql_attempts(pg, password=pg.password)
    assert allowed["127.0.0.1", pg.user] == (0, pg.user), allowed
    assert allowed["127.0.0.1", "postgres"][0] != 0, allowed
    assert "password authentication failed" in allowed["127.0.0.1", "postgres"][1], allowed


@e2e
def test_the_passwords_are_private_files_and_stay_off_command_lines_and_logs(project: Path,
                                                                              server: TeamServer) -> None:
    pg = server.postgres
    base = pg.directory.parent
    role_file, superuser_file = base / ts.PASSWORD_FILE, pg.superuser_password_file
    assert role_file.read_text().strip() == pg.password and len(pg.password) >= 20
    superuser_password = superuser_file.read_text().strip()
    assert superuser_password and superuser_password != pg.password
    assert mode(role_file) == 0o600 and mode(superuser_file) == 0o600
    assert mode(pg.directory) == 0o700 and mode(pg.socket_dir) == 0o700 and mode(pg.data_dir) == 0o700
    if os.geteuid() == 0:  # the cluster runs as the postgres OS user, which owns its directories
        postgres_uid = pwd.getpwnam(ts.POSTGRES_OS_USER).pw_uid
        assert {p.stat().st_uid for p in (pg.directory, pg.socket_dir, pg.data_dir, superuser_file)} == {postgres_uid}
    hba = [line.split() for line in (pg.data_dir / "pg_hba.conf").read_text().splitlines()
           if line.strip() and not line.lstrip().startswith("#")]
    assert hba and {fields[-1] for fields in hba} == {"scram-sha-256"}, hba
    # while both servers run: no process shows either password, and mlflow server gets no store URI
    # (-ww: whole command lines, not cut at the terminal's width)
    processes = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert "mlflow server" in processes and "postgres" in processes
    assert pg.password not in processes and superuser_password not in processes
    mlflow_args = subprocess.run(["ps", "-ww", "-o", "args=", "-p", str(server.mlflow.process.pid)],
                                 capture_output=True, text=True, check=True).stdout
    assert f"--port {server.mlflow.port}" in mlflow_args and "postgresql" not in mlflow_args, mlflow_args
    # after the pipeline's runs, no log holds them either
    for log in (server.mlflow.log_file, pg.log_file):
        text = log.read_text(errors="replace")
        assert pg.password not in text and superuser_password not in text, log
    assert pg.password not in repr(pg) and pg.redacted_url.startswith(f"postgresql+psycopg2://{pg.user}:***@")


@e2e
def test_a_cluster_that_trusted_local_connections_is_switched_to_passwords() -> None:
    """What older versions made: ``initdb --auth-local=trust``. The next start asks for passwords."""
    import psycopg2

    base = public_tmpdir()
    directory = base / "postgres"
    try:
        (directory / "socket").mkdir(parents=True)
        owner = ts._cluster_owner()
        if owner is not None:
            for path in (directory, directory / "socket"):
                os.chown(path, *owner)
        subprocess.run(ts._as_postgres_user([str(ts.postgres_bin_dir() / "initdb"), "-D", str(directory / "data"),
                                             "-U", "postgres", "--locale=C", "--auth-local=trust",
                                             "--auth-host=scram-sha-256"]), check=True, capture_output=True)
        assert ts._hba_trust_lines(directory / "data" / "pg_hba.conf")
        pg = ts.start_postgres(directory, password="the-role-password")
        try:
            assert not ts._hba_trust_lines(pg.data_dir / "pg_hba.conf")
            assert mode(pg.superuser_password_file) == 0o600 and mode(pg.socket_dir) == 0o700
            with pytest.raises(psycopg2.OperationalError, match="no password supplied"):
                psycopg2.connect(host=str(pg.socket_dir), port=pg.port, user="postgres", dbname="postgres")
            connection = psycopg2.connect(host="127.0.0.1", port=pg.port, user=pg.user, password=pg.password,
                                          dbname=pg.database)
            connection.close()
            if os.geteuid() == 0 and shutil.which("runuser"):
                other_user_exists()
                assert all(code != 0 for code, _ in psql_attempts(pg).values())
        finally:
            pg.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.unit
def test_the_role_password_is_generated_kept_private_and_reused(tmp_path: Path) -> None:
    first = ts.role_password(tmp_path)
    path = tmp_path / ts.PASSWORD_FILE
    assert len(first) >= 20 and path.read_text() == f"{first}\n" and mode(path) == 0o600
    assert ts.role_password(tmp_path) == first, "a later start reuses the kept password"
    assert ts.role_password(tmp_path, "given-one") == "given-one"
    assert path.read_text() == "given-one\n" and mode(path) == 0o600, "a given password is kept for later starts"
    path.chmod(0o644)
    assert ts.role_password(tmp_path) == "given-one" and mode(path) == 0o600, "a loosened file is made private"


@pytest.mark.unit
def test_the_password_comes_from_a_file_or_the_environment(tmp_path: Path) -> None:
    given = tmp_path / "pw"
    given.write_text("from-file\n")
    assert ts.given_password(given, {ts.PASSWORD_ENV: "from-env"}) == "from-file"
    assert ts.given_password(None, {ts.PASSWORD_ENV: "from-env"}) == "from-env"
    assert ts.given_password(None, {}) is None
    given.write_text("")
    with pytest.raises(TeamServerError, match="must hold the password alone on its first line"):
        ts.given_password(given, {})


@pytest.mark.unit
def test_password_on_the_command_line_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert ts.main(["--dir", str(tmp_path), "--password", "s3cret"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ts.PASSWORD_ENV in err and "--password-file" in err and "s3cret" not in err
    assert not any(tmp_path.iterdir()), "nothing is started"


@pytest.mark.unit
def test_printed_uris_hide_the_password() -> None:
    uri = "postgresql+psycopg2://mlflow:p%40ss:word@127.0.0.1:5432/mlflow"
    assert ts.redact(uri) == "postgresql+psycopg2://mlflow:***@127.0.0.1:5432/mlflow"

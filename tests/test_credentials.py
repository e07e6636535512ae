"""A password or token in the tracking URI is never shown or written: URIs are redacted in every message,
report, bundle reference and outbox entry, and a later process takes the credentials from its own
environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from pipeline.tracking import outbox
from pipeline.config.paths import PROJECT_ROOT
from pipeline.config.loading import load_params
from pipeline.runtime.log_setup import configure_logging
from pipeline.tracking.redaction import portable_path, redact_uri, scrub, shown_uri
from pipeline.tracking.run import task_run
from pipeline.commands.team_server import free_port, start_mlflow_server
from tests.tiny_project import build_project, run

SECRET = "S3cretPassw0rd"
TASK = "zh_sentiment"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("http://someuser:S3cretPassw0rd@127.0.0.1:5000", "http://someuser:***@127.0.0.1:5000"),
        ("https://alice:pw@mlflow.example.com/prefix/api?x=1", "https://alice:***@mlflow.example.com/prefix/api?x=1"),
        ("postgresql+psycopg2://mlflow:pw@127.0.0.1:5432/mlflow",
         "postgresql+psycopg2://mlflow:***@127.0.0.1:5432/mlflow"),
        ("http://u:p%40ss%2Fw@host:1/", "http://u:***@host:1/"),
        ("http://u:p@ss@host/x", "http://u:***@host/x"),  # an unencoded @ in the password
        ("https://host/x?token=abc&a=1&password=p;api_key=k#top",
         "https://host/x?token=***&a=1&password=***;api_key=***#top"),
        ("s3://bucket/k?X-Amz-Signature=zz&X-Amz-Credential=cc&v=2",
         "s3://bucket/k?X-Amz-Signature=***&X-Amz-Credential=***&v=2"),
        ("databricks://profile", "databricks://profile"),
        ("http://user@host:5000", "http://user@host:5000"),  # a user name alone is no secret
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("sqlite:///mlflow.db", "sqlite:///mlflow.db"),
        ("file:///srv/mlflow/artifacts", "file:///srv/mlflow/artifacts"),
        ("mlflow.db", "mlflow.db"),
        ("", ""),
    ],
)
def test_redact_uri(uri: str, shown: str) -> None:
    assert redact_uri(uri) == shown
    assert redact_uri(shown) == shown


@pytest.mark.unit
def test_scrub_redacts_every_uri_in_a_text_and_the_environments_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    message = (
        "API request to http://someuser:S3cretPassw0rd@127.0.0.1:9/api/2.0/mlflow/runs/create failed with exception "
        "HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded (url='postgresql://m:pw2@db/x?token=t0k')"
    )
    scrubbed = scrub(message)
    assert SECRET not in scrubbed and "pw2" not in scrubbed and "t0k" not in scrubbed
    assert "http://someuser:***@127.0.0.1:9/api/2.0/mlflow/runs/create failed" in scrubbed
    assert "HTTPConnectionPool(host='127.0.0.1', port=9)" in scrubbed

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://someuser:S3cret%2FPass@127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "an0ther-secret")
    loose = scrub("auth failed for someuser with S3cret/Pass, S3cret%2FPass and an0ther-secret")
    assert loose == "auth failed for someuser with ***, *** and ***"


@pytest.mark.unit
def test_shown_uri_is_redacted_and_names_the_local_store_relative_to_the_project(tmp_path: Path) -> None:
    assert shown_uri(f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}") == "sqlite:///mlflow.db"
    assert shown_uri(f"sqlite:///{tmp_path / 'mlflow.db'}") == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert shown_uri("http://u:pw@h:1") == "http://u:***@h:1"
    assert portable_path(PROJECT_ROOT / "mlflow-outbox" / "x") == "mlflow-outbox/x"
    assert portable_path(tmp_path / "x") == str(tmp_path / "x")


@pytest.mark.unit
def test_an_outage_with_a_password_in_the_uri_stores_and_shows_it_nowhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    down = f"http://someuser:{SECRET}@127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", down)
    monkeypatch.setenv("PIPELINE_OUTBOX", str(tmp_path / "outbox"))
    monkeypatch.setenv("PIPELINE_RUN", "credentials-test")
    configure_logging()  # as every stage does: the warning reaches stderr
    with task_run(load_params(), "sst2") as run_:
        assert run_.offline
        run_.log_metrics({"loss": 1.0}, step=1)
        reference, record = run_.reference(), run_.record()
    while mlflow.active_run() is not None:
        mlflow.end_run()
    shown = capsys.readouterr()
    assert "warning: tracking server http://someuser:***@127.0.0.1:" in shown.err
    (entry,) = list(outbox.entries())
    assert entry.meta["tracking_uri"] == redact_uri(down)
    stored = [shown.out, shown.err, json.dumps(reference), json.dumps(record)]
    stored += [path.read_text(encoding="utf-8") for path in entry.directory.rglob("*") if path.is_file()]
    assert not [text for text in stored if SECRET in text]


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return {**env, **extra}


def _files_with(secret: bytes, directory: Path) -> list[str]:
    found = []
    for path in directory.rglob("*"):
        if path.is_file() and not path.is_symlink() and secret in path.read_bytes():
            found.append(str(path.relative_to(directory)))
    return found


@pytest.mark.e2e
def test_the_pipeline_with_a_password_in_the_uri_writes_and_prints_it_nowhere(
    tmp_path: Path, shared_data: Path, zh_vocab: Path
) -> None:
    """The real DAG against an unreachable server whose URI holds a password, a summary against it,
    then a sync to a server that answers: no file of the project and no output holds the password."""
    project = build_project(tmp_path, shared_data, zh_vocab, {TASK: "text_classification"})
    down = f"http://someuser:{SECRET}@127.0.0.1:{free_port()}"
    outputs = []

    repro = subprocess.run(["dvc", "repro"], cwd=project, env=_env(MLFLOW_TRACKING_URI=down),
                           capture_output=True, text=True, timeout=900)
    outputs.append(repro.stdout + repro.stderr)
    assert repro.returncode == 0, repro.stdout[-3000:] + repro.stderr[-3000:]
    assert f"warning: tracking server {redact_uri(down)} failed" in repro.stderr + repro.stdout
    recorded = json.loads((project / "reports" / TASK / "mlflow_run.json").read_text())
    assert recorded["tracking_uri"] == redact_uri(down)
    assert not Path(recorded["outbox"]).is_absolute() and (project / recorded["outbox"]).is_dir()

    summary = subprocess.run([sys.executable, "-m", "pipeline.commands.summary"], cwd=project,
                             env=_env(MLFLOW_TRACKING_URI=down), capture_output=True, text=True, timeout=300)
    outputs.append(summary.stdout + summary.stderr)
    assert summary.returncode == 1 and "someuser:***@" in summary.stderr
    outputs.append(run(project, "python", "-m", "pipeline.commands.sync_runs", "--list",
                       env={"MLFLOW_TRACKING_URI": down}).stdout)

    server = start_mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "artifacts")
    try:
        with_password = server.url.replace("http://", f"http://someuser:{SECRET}@")
        pushed = run(project, "python", "-m", "pipeline.commands.sync_runs", env={"MLFLOW_TRACKING_URI": with_password})
        outputs.append(pushed.stdout + pushed.stderr)
        assert "pushed" in pushed.stdout and "someuser:***@" in pushed.stdout
    finally:
        server.stop()

    assert not [text for text in outputs if SECRET in text]
    assert _files_with(SECRET.encode(), project) == []

"""A copied or moved project is self-contained: its runs log artifacts and models beside its own
``mlflow.db``, never into the directory it was copied from, and what it writes under ``reports/``
names no absolute path of the project."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

import mlflow
import pytest

from pipeline.config.loading import load_params
from pipeline.tracking.run import task_run
from pipeline.tracking.store import relocate_local_store
from tests.tiny_project import build_project, git_commit_all, run

pytestmark = pytest.mark.e2e

TASK = "zh_sentiment"


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    """Every file and link under ``directory``: its size and modification time."""
    return {
        str(path.relative_to(directory)): (path.lstat().st_size, path.lstat().st_mtime_ns)
        for path in directory.rglob("*")
        if path.is_file() or path.is_symlink()
    }


def _uri(directory: Path) -> str:
    return f"sqlite:///{directory / 'mlflow.db'}"


def _log_a_file(directory: Path, note: str, resume: dict | None = None) -> str:
    """A run of sst2 in the store of ``directory`` with one artifact; its run id."""
    artifact = directory.parent / f"{note}.txt"
    artifact.write_text(note)
    with task_run(load_params(), "sst2", resume) as run_:
        assert not run_.offline
        run_.log_artifacts([artifact], "notes")
        assert run_.record()["tracking_uri"] == _uri(directory), "a store outside the project is named as given"
    while mlflow.active_run() is not None:
        mlflow.end_run()
    return run_.run_id


def test_a_copied_store_logs_beside_its_own_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original, copy = tmp_path / "original", tmp_path / "moved" / "original"
    original.mkdir()
    monkeypatch.setenv("PIPELINE_RUN", "relocation-test")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", _uri(original))
    first = _log_a_file(original, "first")
    client = mlflow.MlflowClient(_uri(original))
    assert client.get_run(first).info.artifact_uri.startswith((original / "mlartifacts").as_uri() + "/")
    assert relocate_local_store(_uri(original)) == [], "a store in place is left alone"

    shutil.copytree(original, copy, symlinks=True)
    before = snapshot(original)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", _uri(copy))
    second = _log_a_file(copy, "second")
    again = _log_a_file(copy, "again", resume={"run_id": first})  # a run created before the copy, re-opened
    assert again == first

    assert snapshot(original) == before, "nothing of the original changed"
    client = mlflow.MlflowClient(_uri(copy))
    root = (copy / "mlartifacts").as_uri() + "/"
    experiment = client.get_experiment_by_name(load_params().tracking.experiment)
    assert experiment.artifact_location == (copy / "mlartifacts").as_uri()
    expected = {first: ["notes/again.txt", "notes/first.txt"], second: ["notes/second.txt"]}
    for run_id, notes in expected.items():
        assert client.get_run(run_id).info.artifact_uri.startswith(root)
        assert sorted(a.path for a in client.list_artifacts(run_id, "notes")) == notes
    assert len(list((copy / "mlartifacts").rglob("again.txt"))) == 1
    assert not list((original / "mlartifacts").rglob("again.txt"))
    assert relocate_local_store(_uri(copy)) == []


@pytest.fixture(scope="module")
def original(module_tmp: Path, shared_data: Path, zh_vocab: Path) -> Path:
    """A tiny project after its pipeline ran."""
    project = build_project(module_tmp, shared_data, zh_vocab, {TASK: "text_classification"})
    run(project, "dvc", "repro", f"evaluate@{TASK}")
    return project


def test_a_copied_project_runs_without_touching_the_original(original: Path, tmp_path: Path) -> None:
    first = json.loads((original / "reports" / TASK / "mlflow_run.json").read_text())["run_id"]

    copy = tmp_path / "moved" / "project"
    shutil.copytree(original, copy, symlinks=True)
    before = snapshot(original)
    shutil.rmtree(copy / "models" / "seeds" / TASK)  # else the forced stage keeps the unchanged seed's training
    run(copy, "dvc", "repro", "--force", "--single-item", f"train@{TASK}", f"evaluate@{TASK}")

    assert snapshot(original) == before, "running the copy changed files of the original"
    recorded = json.loads((copy / "reports" / TASK / "mlflow_run.json").read_text())
    assert recorded["run_id"] != first and recorded["tracking_uri"] == "sqlite:///mlflow.db"
    client = mlflow.MlflowClient(_uri(copy))
    root = (copy / "mlartifacts").as_uri() + "/"
    new_run = client.get_run(recorded["run_id"])
    assert new_run.info.artifact_uri.startswith(root)
    assert {a.path for a in client.list_artifacts(new_run.info.run_id)} >= {"training", "evaluation"}
    local = Path(unquote(urlsplit(new_run.info.artifact_uri).path))
    assert local.is_relative_to(copy / "mlartifacts") and (local / "evaluation").is_dir()
    logged = json.loads((copy / "reports" / TASK / "model.json").read_text())["logged_model_uri"]
    model = client.get_logged_model(logged.removeprefix("models:/"))
    assert model.artifact_location.startswith(root)
    assert client.get_run(first).info.artifact_uri.startswith(root), "earlier runs point into the copy too"

    for project in (original, copy):
        written = [p for p in [*(project / "reports").rglob("*"), project / "dvc.lock"] if p.is_file()]
        assert written
        leaking = [str(p) for p in written if any(str(d).encode() in p.read_bytes() for d in (original, copy))]
        assert leaking == [], "absolute paths of the project in what the pipeline wrote"


def test_a_clone_pulls_data_and_models_from_a_dvc_remote_and_has_nothing_to_run(original: Path, tmp_path: Path) -> None:
    remote = tmp_path / "dvc-remote"  # a directory here; an object store (s3://, gs://, ...) the same way
    run(original, "dvc", "remote", "add", "--default", "team", str(remote))
    pushed = run(original, "dvc", "push").stdout
    assert "pushed" in pushed and any(remote.rglob("*")), pushed
    git_commit_all(original, "results and the team's DVC remote")

    clone = tmp_path / "teammate"
    run(tmp_path, "git", "clone", "-q", str(original), str(clone))
    target = f"evaluate@{TASK}"  # what the original ran (its other backbone was never built)
    run(clone, "dvc", "pull", "--with-deps", target)
    for output in (f"models/tasks/{TASK}/model.weights.h5", f"data/prepared/{TASK}/train.jsonl"):
        assert (clone / output).read_bytes() == (original / output).read_bytes(), output
    assert "Data and pipelines are up to date." in run(clone, "dvc", "status", "--with-deps", target).stdout
    repro = run(clone, "dvc", "repro", target)
    assert "Running stage" not in repro.stdout and "Data and pipelines are up to date." in repro.stdout

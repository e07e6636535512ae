"""Sweeps without the real queue: where a temporary copy of DVC records (the owning project's store and
outbox), the links that let a copy reach data outside the project, the ``sweep`` / ``sweep_point``
tags, and the summary's ranking of a sweep's configurations (on a constructed MLflow store)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pytest

from pipeline.config.loading import load_params
from pipeline.config.paths import DEFAULT_PARAMS
from pipeline.config.workspace import link_outside_folders, outside_folder, owning_project
from pipeline.reporting.sweeps import Point, ranked, sweep_section
from pipeline.tracking.outbox import outbox_root
from pipeline.tracking.sweeps import changed_params, point_label, sweep_tags

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def no_tracking_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLFLOW_TRACKING_URI", "DVC_EXP_BASELINE_REV", "PIPELINE_OUTBOX"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("copy", [".dvc/tmp/exps/tmpab12", ".dvc/tmp/exps/standalone/tmpcd34"])
def test_a_temporary_copy_records_into_the_owning_project(tmp_path: Path, copy: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    (project / copy).mkdir(parents=True)
    params = load_params(DEFAULT_PARAMS)
    assert owning_project(project / copy) == project.resolve()
    assert owning_project(project) == project
    assert params.tracking_uri(project / copy) == f"sqlite:///{(project / 'mlflow.db').resolve()}"
    assert outbox_root(project / copy) == project.resolve() / "mlflow-outbox"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert params.tracking_uri(project / copy) == "http://127.0.0.1:5000", "a server URI is used as given"


def test_outside_folder_names_the_first_folder_out_of_the_project() -> None:
    assert outside_folder("../shared/data") == (1, "shared")
    assert outside_folder("../../corpora/zh") == (2, "corpora")
    assert outside_folder("data/raw") is None and outside_folder("/srv/data") is None and outside_folder("..") is None


def test_links_let_both_kinds_of_copy_reach_data_outside_the_project(tmp_path: Path) -> None:
    shared = tmp_path / "shared" / "data" / "en"
    shared.mkdir(parents=True)
    project = tmp_path / "project"
    project.mkdir()
    params = SimpleNamespace(data_root="../shared/data", backbones={})
    assert link_outside_folders(params, project) == []
    for copy in (".dvc/tmp/exps/tmp1", ".dvc/tmp/exps/standalone/tmp2"):
        (project / copy).mkdir(parents=True)
        assert (project / copy / "../shared/data/en").resolve() == shared.resolve()
    link = project / ".dvc/tmp/exps/shared"
    assert not Path(os.readlink(link)).is_absolute()
    moved = tmp_path / "moved"
    (tmp_path / "project").rename(moved)
    assert (moved / ".dvc/tmp/exps/tmp1/../shared/data/en").resolve() == shared.resolve(), "relative links survive a move"
    assert link_outside_folders(params, moved) == [], "creating them again is a no-op"


def test_paths_too_far_up_are_reported_not_linked(tmp_path: Path) -> None:
    params = SimpleNamespace(data_root="../../../far/data", backbones={})
    (problem,) = link_outside_folders(params, tmp_path / "a" / "b" / "project")
    assert "'../../../far/data' leaves the project by 3 folders" in problem and "hint:" in problem


def test_sweep_point_is_what_the_experiment_changes() -> None:
    before = {"sweep": None, "defaults": {"epochs": 2}, "tasks": {"sst2": {"maxlen": 64}}}
    now = {"sweep": "lr", "defaults": {"epochs": 2}, "tasks": {"sst2": {"maxlen": 64, "learning_rate": 2e-5}}}
    assert changed_params(now, before) == {"tasks.sst2.learning_rate": 2e-5}
    assert point_label(changed_params(now, before)) == "tasks.sst2.learning_rate=2e-05"
    assert point_label({}) == "baseline"


def test_sweep_tags_name_the_sweep_and_the_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "params.yaml").write_text(DEFAULT_PARAMS.read_text(encoding="utf-8"), encoding="utf-8")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "baseline"], cwd=project, check=True)
    baseline = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True).stdout.strip()
    text = (project / "params.yaml").read_text(encoding="utf-8")
    (project / "params.yaml").write_text(text.replace("  epochs: 2\n", "  epochs: 3\n", 1), encoding="utf-8")
    params = load_params(project / "params.yaml")
    assert sweep_tags(params, project / "params.yaml") == {}, "a plain dvc repro is in no sweep"
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", baseline)
    assert sweep_tags(params, project / "params.yaml") == {"sweep": f"exp-{baseline[:7]}", "sweep_point": "defaults.epochs=3"}
    named = params.model_copy(update={"sweep": "epochs-grid"})
    assert sweep_tags(named, project / "params.yaml")["sweep"] == "epochs-grid"


def _point(label: str, dev: float, seeds: int = 3, std: float = 0.01) -> Point:
    return Point("mrpc", label, seeds, dev, std, dev - 0.02, 0.01, f"{label}-id-0000", label)


def test_points_rank_by_dev_mean_with_a_t_interval_over_seeds() -> None:
    order = ranked([_point("lr=1e-4", 0.80), _point("lr=2e-5", 0.84), _point("lr=1e-4", 0.70)])
    assert [p.label for p in order] == ["lr=2e-5", "lr=1e-4"], "best first, the newest run of a configuration"
    assert order[1].dev_mean == 0.80
    low, high = order[0].interval()  # type: ignore[misc]
    assert low == pytest.approx(0.84 - 4.302653 * 0.01 / 3 ** 0.5, abs=1e-5) and high > 0.84
    assert _point("one", 0.8, seeds=1).interval() is None


def test_the_summary_section_ranks_a_sweep_from_the_store(tmp_path: Path) -> None:
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("e", artifact_location=(tmp_path / "a").as_uri())
    for point, dev in (("tasks.mrpc.learning_rate=0.0001", 0.70), ("tasks.mrpc.learning_rate=2e-05", 0.75)):
        parent = client.create_run(experiment, run_name="mrpc", tags={
            "task": "mrpc", "sweep": "lr", "sweep_point": point, "seed_group": "42,43,44"})
        for name, value in (("dev_accuracy.mean", dev), ("dev_accuracy.std", 0.01), ("test.accuracy", dev - 0.03),
                            ("test_spread.accuracy.std", 0.02)):
            client.log_metric(parent.info.run_id, name, value)
        child = client.create_run(experiment, run_name="mrpc seed 42", tags={
            "task": "mrpc", "sweep": "lr", "sweep_point": point, "seed": "42", "mlflow.parentRunId": parent.info.run_id})
        client.log_metric(child.info.run_id, "best_dev_accuracy", 0.99)
    client.create_run(experiment, run_name="sst2", tags={"task": "sst2"})  # in no sweep
    section = sweep_section(client, [experiment], {"mrpc": "accuracy", "sst2": "accuracy"})
    rows = [line for line in section.splitlines() if line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert "### `lr`: `mrpc` (accuracy)" in section
    assert len(rows) == 2, "child runs are not configurations"
    assert "learning_rate=2e-05 | 3 | 0.7500 |" in rows[0] and "0.7200 ± 0.0200" in rows[0]
    assert sweep_section(client, [experiment], {"sst2": "accuracy"}) == ""

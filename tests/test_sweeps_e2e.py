"""A 2-point sweep through DVC's own queue on a tiny copy of the project: the queued experiments run in
DVC's temporary copies, read the data outside the project through ``data_root: ../shared/data``, record
into the project's own MLflow store (no ``MLFLOW_TRACKING_URI`` set), share the ``sweep`` tag, and the
summary ranks them."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from ruamel.yaml import YAML

from tests.tiny_project import build_project, git_commit_all, run

pytestmark = pytest.mark.e2e
TASK = "zh_sentiment"


def _relative_data_root(project: Path, shared_data: Path) -> None:
    """``data_root: ../shared/data``, the default layout, with ``shared`` beside the project."""
    (project.parent / "shared").symlink_to(shared_data.parent, target_is_directory=True)
    yaml = YAML()
    params = yaml.load(project / "params.yaml")
    params["data_root"] = "../shared/data"
    params["tasks"][TASK].update(seeds=[1, 2], epochs=1)
    yaml.dump(params, project / "params.yaml")


def test_a_queued_sweep_records_into_the_project_store_and_is_ranked(
    tmp_path: Path, shared_data: Path, zh_vocab: Path
) -> None:
    project = build_project(tmp_path, shared_data, zh_vocab, {TASK: "text_classification"})
    _relative_data_root(project, shared_data)
    git_commit_all(project, "relative data_root, two seeds")
    run(project, "dvc", "repro")
    git_commit_all(project, "baseline results")
    for copies in (".dvc/tmp/exps", ".dvc/tmp/exps/standalone"):
        link = project / copies / "shared"
        assert link.is_symlink() and not Path(link.readlink()).is_absolute(), "the link must survive a move"
        assert (link / "data").resolve() == shared_data.resolve()

    run(project, "dvc", "exp", "run", "--queue", "-S", "sweep=lr", "-S", f"++tasks.{TASK}.learning_rate=1e-4,3e-4")
    output = run(project, "dvc", "exp", "run", "--run-all").stdout
    assert output.count(f"Running stage 'train@{TASK}'") == 2, output[-3000:]

    assert not list((project / ".dvc").rglob("mlflow.db")), "an experiment recorded into its temporary copy"
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    swept = client.search_runs(experiments, filter_string="tags.sweep = 'lr'")
    parents = [r for r in swept if "seed_group" in r.data.tags]
    points = sorted(r.data.tags["sweep_point"] for r in parents)
    assert points == [f"tasks.{TASK}.learning_rate=0.0001", f"tasks.{TASK}.learning_rate=0.0003"], points
    children = [r for r in swept if "seed" in r.data.tags]
    assert len(children) == 4, "each point's seeds carry the sweep tag"
    for parent in parents:
        assert "dev_accuracy.mean" in parent.data.metrics and "test.accuracy" in parent.data.metrics
    for child in children:
        artifacts = Path(child.info.artifact_uri.removeprefix("file://"))
        assert artifacts.is_relative_to(project / "mlartifacts") and (artifacts / "evaluation").is_dir()

    run(project, "python", "-m", "pipeline.commands.summary")
    summary = (project / "reports" / "summary.md").read_text(encoding="utf-8")
    section = summary[summary.index("## Sweeps"):]
    assert f"`lr`: `{TASK}`" in section
    ranked = [line for line in section.splitlines() if "learning_rate=" in line]
    assert len(ranked) == 2 and ranked[0].startswith("| 1 |") and ranked[1].startswith("| 2 |")
    best = max(parents, key=lambda r: r.data.metrics["dev_accuracy.mean"])
    assert best.data.tags["sweep_point"] in ranked[0]
    assert "[" in ranked[0], "two seeds give an interval"

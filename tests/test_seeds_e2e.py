"""Seed groups on the real DAG (a tiny copy of the project, ``dvc repro``): each seed trains into its
own bundle and MLflow run, nested under one parent run of the configuration; metrics.json holds each
seed's figure and their mean and spread; adding a seed trains only that seed, and ``dvc repro`` is a
no-op afterwards."""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

import mlflow
import pytest
from ruamel.yaml import YAML

from tests.tiny_project import build_project, run

pytestmark = pytest.mark.e2e
TASK = "zh_sentiment"


def _set_seeds(project: Path, seeds: list[int]) -> None:
    yaml = YAML()
    params = yaml.load(project / "params.yaml")
    params["tasks"][TASK].update(seeds=seeds, epochs=1)
    yaml.dump(params, project / "params.yaml")


def _runs(project: Path) -> list:
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, filter_string=f"tags.task = '{TASK}'")


def test_seeds_train_once_each_nest_under_one_parent_and_report_their_spread(
    tmp_path: Path, shared_data: Path, zh_vocab: Path
) -> None:
    project = build_project(tmp_path, shared_data, zh_vocab, {TASK: "text_classification"})
    _set_seeds(project, [1, 2])
    run(project, "dvc", "repro", f"evaluate@{TASK}")

    seeds = project / "models" / "seeds" / TASK
    assert sorted(p.name for p in seeds.iterdir() if p.is_dir()) == ["1", "2"]
    metrics = json.loads((project / "reports" / TASK / "metrics.json").read_text())
    per_seed = [metrics["per_seed"][seed]["accuracy"] for seed in ("1", "2")]
    assert metrics["seeds"] == 2
    assert metrics["test"]["accuracy"] == pytest.approx(statistics.fmean(per_seed))
    assert metrics["test_spread"]["accuracy"]["std"] == pytest.approx(statistics.stdev(per_seed))
    served = json.loads((project / "models" / "tasks" / TASK / "task.json").read_text())
    assert served["seed_group"]["chosen"] in (1, 2)
    assert (project / "reports" / TASK / "evaluation" / "seeds").is_dir()

    runs = _runs(project)
    parents = [r for r in runs if "seed_group" in r.data.tags]
    children = [r for r in runs if "seed" in r.data.tags]
    assert len(parents) == 1 and parents[0].data.tags["seed_group"] == "1,2"
    assert sorted(r.data.tags["seed"] for r in children) == ["1", "2"]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert sorted(r.data.params["seed"] for r in children) == ["1", "2"], "each child records its own seed"
    assert all("test.accuracy" in r.data.metrics for r in children)
    assert parents[0].data.metrics["test.accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    assert "test_spread.accuracy.std" in parents[0].data.metrics
    weights = seeds / "1" / "model.weights.h5"
    trained_at = weights.stat().st_mtime_ns

    # one more seed: only seed 3 trains, under the same parent run
    _set_seeds(project, [1, 2, 3])
    output = run(project, "dvc", "repro", f"evaluate@{TASK}").stdout
    assert "seed 1 already trained" in output and "seed 2 already trained" in output
    assert "seed 3 already trained" not in output
    assert weights.stat().st_mtime_ns == trained_at, "a kept seed was trained again"
    runs = _runs(project)
    parents = [r for r in runs if "seed_group" in r.data.tags]
    children = [r for r in runs if "seed" in r.data.tags]
    assert len(parents) == 1 and parents[0].data.tags["seed_group"] == "1,2,3"
    assert sorted(r.data.tags["seed"] for r in children) == ["1", "2", "3"]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert json.loads((project / "reports" / TASK / "metrics.json").read_text())["seeds"] == 3

    status = run(project, "dvc", "status", "--with-deps", f"evaluate@{TASK}").stdout
    assert "up to date" in status, status

    # a parent run stands for its seeds in compare: the group against itself, example by example
    parent = parents[0].info.run_id
    shown = run(project, sys.executable, "-m", "pipeline.commands.compare", parent, parent, "--no-tags",
                "--resamples", "50").stdout
    print(shown)
    assert "no significant difference" in shown, shown
    assert re.search(r"^A\s.*\s3\s", shown, re.MULTILINE), shown

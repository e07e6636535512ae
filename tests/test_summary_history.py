"""The summary's seed spread over configurations: configurations read from a constructed MLflow store (seed-group
parents with their seed runs and predictions, single task runs), the seed-score plot, the latest configuration
against the best earlier one (compare's paired bootstrap) in the summary and as tags on the latest run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import pytest
from PIL import Image

from pipeline.config.loading import load_params
from pipeline.config.schema import Params
from tests.test_compare import predictions_at, sentiment_records, write_predictions

pytestmark = pytest.mark.unit

DAY_MS = 86_400_000
START_MS = 1_790_000_000_000
RESAMPLES = 100
BETTER = "latest better beyond noise (95% CI excludes 0)"
SAME = "no significant difference at 95% (CI includes 0)"


@pytest.fixture(autouse=True)
def quiet_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """No tracking URI from the caller's environment; no download bars."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


class Store:
    """A temporary sqlite MLflow store holding runs as the train and evaluate stages log them."""

    def __init__(self, tmp_path: Path, params: Params) -> None:
        from mlflow import MlflowClient

        self.tmp, self.uri = tmp_path, f"sqlite:///{tmp_path / 'mlflow.db'}"
        self.client = MlflowClient(self.uri)
        artifacts = (tmp_path / "mlartifacts").as_uri()
        self.experiment = self.client.create_experiment(params.tracking.experiment, artifact_location=artifacts)
        self.records = sentiment_records(200)

    def _run(self, name: str, day: int, tags: dict[str, str], predictions: list[dict] | None = None,
             params: dict[str, str] | None = None) -> str:  # fmt: skip
        """A finished run started ``day`` days after START_MS; with ``predictions``: its test accuracy and
        evaluation/predictions.jsonl (+ confusion.json)."""
        run = self.client.create_run(self.experiment, run_name=name, start_time=START_MS + day * DAY_MS, tags=tags)
        run_id = run.info.run_id
        for key, value in (params or {}).items():
            self.client.log_param(run_id, key, value)
        if predictions is not None:
            right = sum(r["label"] == p["label"] for r, p in zip(self.records, predictions))
            self.client.log_metric(run_id, "test.accuracy", right / len(self.records))
            folder = write_predictions(self.tmp / "logged" / run_id / "predictions.jsonl", self.records, predictions,
                                       labels=True).parent  # fmt: skip
            self.client.log_artifacts(run_id, str(folder), "evaluation")
        self.client.set_terminated(run_id)
        return run_id

    def seed_group(self, task: str, day: int, predictions: Sequence[list[dict]], learning_rate: str) -> str:
        """A parent run of the configuration and one child run per seed (42, 43, ...); the parent's id."""
        seeds = [str(42 + i) for i in range(len(predictions))]
        parent = self._run(task, day, {"task": task, "seed_group": ",".join(seeds)},
                           params={"task": task, "learning_rate": learning_rate, "seeds": str(seeds)})  # fmt: skip
        for seed, seed_predictions in zip(seeds, predictions):
            self._run(f"{task} seed {seed}", day, {"task": task, "seed": seed, "mlflow.parentRunId": parent},
                      seed_predictions, {"learning_rate": learning_rate, "seed": seed})  # fmt: skip
        return parent

    def single(self, task: str, day: int, predictions: list[dict]) -> str:
        """A task trained with one seed: its top-level run."""
        return self._run(task, day, {"task": task}, predictions, {"task": task, "seed": "42"})

    def at(self, accuracy: float, *seeds: int) -> list[list[dict]]:
        """One seed run's predictions at ``accuracy`` per ``seeds``."""
        return [predictions_at(self.records, accuracy, seed) for seed in seeds]


@pytest.fixture
def params() -> Params:
    return load_params()


@pytest.fixture
def store(tmp_path: Path, params: Params) -> Store:
    return Store(tmp_path, params)


def summarize(store: Store, params: Params) -> tuple[Path, str]:
    """Write the summary of the store for a project in ``<tmp>/project``; its folder and the page."""
    from pipeline.commands.summary import write_summary

    project = store.tmp / "project"
    path, error = write_summary(params, project, uri=store.uri, resamples=RESAMPLES)
    assert error is None
    return project, path.read_text(encoding="utf-8")


def task_line(text: str, task: str) -> str:
    """The task's line of the seed-spread section."""
    return next(line for line in text.split("## Seed spread")[1].splitlines() if line.startswith(f"- `{task}`"))


def interval(line: str) -> tuple[float, float]:
    low, high = re.search(r"95% CI \[([-+.\d]+), ([-+.\d]+)\]", line).groups()
    return float(low), float(high)


def test_a_clearly_better_latest_configuration_is_shown_plotted_and_tagged(store: Store, params: Params) -> None:
    from pipeline.reporting.seed_history import PLOT_NAME

    best = store.seed_group("sst2", 1, store.at(0.78, 1, 2, 3), "5e-05")
    worse = store.seed_group("sst2", 2, store.at(0.70, 4, 5, 6), "3e-05")
    latest = store.seed_group("sst2", 3, store.at(0.90, 7, 8, 9), "2e-05")
    single = store.single("zh_sentiment", 1, predictions_at(store.records, 0.8, 1))

    project, text = summarize(store, params)
    line = task_line(text, "sst2")
    assert line.startswith("- `sst2` (accuracy, 3 configurations, [seed_scores.png](sst2/seed_scores.png)): latest "
                           f"0.9000 ± 0.0000 (3 seeds; sst2 {latest[:8]}, ")  # fmt: skip
    assert f"vs best earlier 0.7800 ± 0.0000 (3 seeds; sst2 {best[:8]}, " in line and worse[:8] not in line
    assert "**+0.1200**" in line and line.endswith(f"**{BETTER}**")
    low, high = interval(line)
    assert 0 < low < 0.12 < high
    with Image.open(project / "reports" / "sst2" / PLOT_NAME) as image:
        assert image.format == "PNG" and image.width > 400

    tags = store.client.get_run(latest).data.tags
    assert tags["vs_best.run"] == best and tags["vs_best.metric"] == "accuracy"
    assert tags["vs_best.delta"] == "+0.1200" and 0 < float(tags["vs_best.ci_low"]) < float(tags["vs_best.ci_high"])
    assert float(tags["vs_best.p_value"]) < 0.05 and tags["vs_best.verdict"] == BETTER
    for other in (best, worse, single):
        assert not any(key.startswith("vs_best.") for key in store.client.get_run(other).data.tags)

    assert task_line(text, "zh_sentiment") == (
        f"- `zh_sentiment` (accuracy, 1 configuration, [seed_scores.png](zh_sentiment/seed_scores.png)): latest "
        f"0.8000 (zh_sentiment {single[:8]}, {_date(1)}); no earlier configuration"
    )
    assert (project / "reports" / "zh_sentiment" / PLOT_NAME).is_file()
    assert task_line(text, "tnews") == "- `tnews`: no configuration with `test.accuracy` in MLflow yet"
    assert not (project / "reports" / "tnews").exists()


def test_identical_predictions_give_an_interval_including_zero(store: Store, params: Params) -> None:
    same = store.at(0.8, 1, 2, 3)
    earlier = store.seed_group("sst2", 1, same, "5e-05")
    latest = store.seed_group("sst2", 2, same, "5e-05")

    _, text = summarize(store, params)
    line = task_line(text, "sst2")
    assert f"vs best earlier 0.8000 ± 0.0000 (3 seeds; sst2 {earlier[:8]}" in line
    assert "**+0.0000**" in line and line.endswith(f"**{SAME}**")
    low, high = interval(line)
    assert low <= 0 <= high
    tags = store.client.get_run(latest).data.tags
    assert tags["vs_best.run"] == earlier and tags["vs_best.delta"] == "+0.0000" and tags["vs_best.verdict"] == SAME


def test_configurations_are_parents_and_single_runs_oldest_first(store: Store, params: Params) -> None:
    from mlflow import MlflowClient

    from pipeline.reporting.seed_history import best_earlier, changes, configurations

    first = store.single("sst2", 1, predictions_at(store.records, 0.75, 1))
    group = store.seed_group("sst2", 2, store.at(0.80, 1, 2), "3e-05")
    store._run("sst2", 3, {"task": "sst2", "seed_group": "42,43"})  # trained, never evaluated: no seed scored
    store._run("sst2", 4, {"task": "sst2"})  # a single run without test metrics

    found = configurations(MlflowClient(store.uri), store.experiment, "sst2", "accuracy")
    assert [c.run_id for c in found] == [first, group]
    assert found[0].scores == {"42": 0.75} and found[1].scores == {"42": 0.8, "43": 0.8}
    assert best_earlier(found) == found[0] and best_earlier(found[:1]) is None
    assert changes(None, found[0]) == ["first"]
    assert changes(found[0], found[1]) == ["learning_rate: -→3e-05", "seed: 42→-", "+1 more"]


def test_the_plot_shows_the_last_configurations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.reporting import seed_history
    from pipeline.reporting.seed_history import Configuration, plot_seed_scores

    history = [
        Configuration(f"{i:08x}".ljust(32, "0"), "sst2", START_MS + i * DAY_MS, {"42": 0.8 + i / 100, "43": 0.81 + i / 100},
                      {"learning_rate": f"{i}e-05"})  # fmt: skip
        for i in range(7)
    ]
    shown: list[list[str]] = []
    save = seed_history._save

    def spy(fig, path: Path) -> Path:
        shown.append([label.get_text() for label in fig.axes[0].get_xticklabels()])
        return save(fig, path)

    monkeypatch.setattr(seed_history, "_save", spy)
    path = plot_seed_scores("sst2", "accuracy", history, tmp_path / "seed_scores.png")
    with Image.open(path) as image:
        assert image.format == "PNG"
    (labels,) = shown
    assert len(labels) == seed_history.LAST == 5
    assert labels[0].splitlines() == [f"sst2 {2:08x}", _date(2), "learning_rate: 1e-05→2e-05"]
    assert labels[-1].splitlines()[0] == f"sst2 {6:08x}"
    plot_seed_scores("sst2", "accuracy", history[:1], tmp_path / "one.png")
    assert len(shown[-1]) == 1 and shown[-1][0].endswith("first")


def test_an_unreachable_store_leaves_the_section_unavailable(tmp_path: Path, params: Params) -> None:
    from pipeline.commands.summary import write_summary

    (tmp_path / "mlflow.db").write_bytes(b"this is not a database" * 100)
    path, error = write_summary(params, tmp_path, uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert error is not None and error.count("\n") == 0
    assert "Unavailable: the tracking store could not be queried." in path.read_text(encoding="utf-8")
    assert not list(tmp_path.glob("reports/*/seed_scores.png"))


def _date(day: int) -> str:
    from datetime import datetime

    return datetime.fromtimestamp((START_MS + day * DAY_MS) / 1000).strftime("%Y-%m-%d %H:%M")

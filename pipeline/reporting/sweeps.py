"""The summary's "Sweeps" section: each sweep's configurations of each task, ranked.

A point of a sweep is a task's top-level MLflow run tagged ``sweep`` (:mod:`pipeline.tracking.sweeps`):
a seed group's parent run, or the single run of a task trained with one seed. Points are ranked by
the mean dev score of the metric that picks checkpoints, over seeds: tuning looks at dev, never at
test. Each shows that mean with the 95% interval of a mean over its seeds (Student's t; none for one
seed) and, for the record, the test mean +- standard deviation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

from pipeline.reporting.files import markdown_table

HEADER = ("rank", "configuration", "seeds", "dev mean", "dev 95% interval", "test mean ± std", "run")
#: most recent runs read per sweep search
MAX_RUNS = 2000


@dataclass(frozen=True)
class Point:
    """One configuration of a sweep: its label, seeds and dev / test figures of one metric."""

    task: str
    label: str
    seeds: int
    dev_mean: float
    dev_std: float
    test_mean: float | None
    test_std: float | None
    run_id: str
    run_name: str

    def interval(self, confidence: float = 0.95) -> tuple[float, float] | None:
        """The ``confidence`` interval of the dev mean over seeds (Student's t), None for one seed."""
        if self.seeds < 2:
            return None
        from scipy.stats import t

        half = t.ppf(0.5 + confidence / 2, self.seeds - 1) * self.dev_std / math.sqrt(self.seeds)
        return self.dev_mean - half, self.dev_mean + half


def point_of(run: Any, metric: str) -> Point | None:
    """The :class:`Point` of a top-level run for ``metric`` (None when it has no dev figure yet)."""
    figures, tags = run.data.metrics, run.data.tags
    if "seed_group" in tags:
        seeds = len(tags["seed_group"].split(","))
        dev_mean, dev_std = figures.get(f"dev_{metric}.mean"), figures.get(f"dev_{metric}.std", 0.0)
        test_std = figures.get(f"test_spread.{metric}.std")
    else:
        seeds, dev_mean, dev_std, test_std = 1, figures.get(f"best_dev_{metric}"), 0.0, None
    if dev_mean is None:
        return None
    return Point(tags.get("task", "?"), tags.get("sweep_point", "?"), seeds, dev_mean, dev_std,
                 figures.get(f"test.{metric}"), test_std, run.info.run_id, run.info.run_name or "")


def ranked(points: Iterable[Point]) -> list[Point]:
    """Best dev mean first; one point per configuration label (the most recent run of it)."""
    latest: dict[str, Point] = {}
    for point in points:
        latest.setdefault(point.label, point)  # runs come newest first
    return sorted(latest.values(), key=lambda p: -p.dev_mean)


def sweep_points(client: Any, experiment_ids: list[str], selection: dict[str, str]) -> dict[str, dict[str, list[Point]]]:
    """``{sweep: {task: ranked points}}`` for the tasks of ``selection`` (task -> metric)."""
    runs = client.search_runs(experiment_ids, filter_string="tags.sweep != ''", max_results=MAX_RUNS,
                              order_by=["attributes.start_time DESC"])
    found: dict[str, dict[str, list[Point]]] = {}
    for run in runs:
        tags = run.data.tags
        if "mlflow.parentRunId" in tags or tags.get("task") not in selection:
            continue
        point = point_of(run, selection[tags["task"]])
        if point is not None:
            found.setdefault(tags["sweep"], {}).setdefault(point.task, []).append(point)
    return {sweep: {task: ranked(points) for task, points in tasks.items()} for sweep, tasks in found.items()}


def _figure(value: float | None, std: float | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if std is None else f"{value:.4f} ± {std:.4f}"


def rows(points: list[Point]) -> list[list[str]]:
    """The table rows of one task's ranked points."""
    table = []
    for rank, point in enumerate(points, 1):
        interval = point.interval()
        table.append([
            str(rank), point.label, str(point.seeds), _figure(point.dev_mean),
            "one seed: none" if interval is None else f"[{interval[0]:.4f}, {interval[1]:.4f}]",
            _figure(point.test_mean, point.test_std), f"{point.run_name} `{point.run_id[:8]}`",
        ])
    return table


def sweep_section(client: Any, experiment_ids: list[str], selection: dict[str, str]) -> str:
    """The markdown section ranking every sweep's configurations per task ("" when there is no sweep)."""
    found = sweep_points(client, experiment_ids, selection)
    if not found:
        return ""
    lines = ["## Sweeps", "",
             "Configurations of each sweep (`dvc exp run --queue -S sweep=<name> -S ...`), best mean dev score "
             "over seeds first (the metric that picks checkpoints; tune on dev, report test). The interval is "
             "the 95% Student-t interval of that mean over the seeds; test is shown for the record.", ""]
    for sweep, tasks in sorted(found.items()):
        for task, points in sorted(tasks.items()):
            lines += [f"### `{sweep}`: `{task}` ({selection[task]})", "", markdown_table(HEADER, rows(points)), ""]
    return "\n".join(lines)

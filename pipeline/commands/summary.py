"""``python -m pipeline.commands.summary``: ``reports/summary.md``, a list of markdown sections.

* Results, one row per task of params.yaml: the task, its kind and primary metric, the latest test
  score and its baseline (from ``reports/<task>/metrics.json``), and the best MLflow run of the task so
  far (runs tagged ``task=<task>`` with the highest ``test.<primary metric>``). Tasks never evaluated
  show "not run yet".
* Seed spread over configurations, one line per task: its configurations in MLflow (seed-group parent
  runs, or single task runs; :mod:`pipeline.reporting.seed_history`), the latest one's mean ± std
  against the best earlier one's, their difference with the compare command's paired-bootstrap
  interval and p-value (:mod:`pipeline.commands.compare`; also set on the latest run as ``vs_best.*``
  tags), and a link to ``reports/<task>/seed_scores.png`` (each seed's score, last configurations).
* Sweeps (when the store has runs tagged ``sweep``): each sweep's configurations per task, ranked by
  mean dev score over seeds (:mod:`pipeline.reporting.sweeps`).

An unreachable tracking store is reported in one line (exit status 1) and the latest metrics are
still written.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from pipeline.config.paths import DEFAULT_PARAMS, PROJECT_ROOT
from pipeline.config.errors import ConfigError
from pipeline.config.schema import Params
from pipeline.config.loading import load_params
from pipeline.kinds.factory import build_kind
from pipeline.config.paths import reports_dir
from pipeline.tracking.redaction import fail_fast_commands, portable_text, scrub, shown_uri
from pipeline.reporting.files import markdown_table, write_text
from pipeline.runtime.log_setup import configure_logging

if TYPE_CHECKING:
    from pipeline.reporting.seed_history import Configuration
    from pipeline.significance.bootstrap import Comparison

logger = logging.getLogger(__name__)

NOT_RUN = "not run yet"
HEADER = ("task", "kind", "metric", "latest test", "baseline", "best in MLflow", "best run", "run id")
NO_EARLIER = "no earlier configuration"
TAG_PREFIX = "vs_best."


@dataclass(frozen=True)
class BestRun:
    """The run of a task with the highest primary test metric."""

    value: float
    name: str
    run_id: str


class TrackingUnavailable(RuntimeError):
    """The MLflow tracking store could not be queried; the message is one line."""


@dataclass(frozen=True)
class TaskHistory:
    """A task's configurations (oldest first), its seed-score plot and its latest against the best earlier."""

    configurations: list[Configuration]
    plot: str = ""  #: link to its seed_scores.png, relative to the summary
    best: Configuration | None = None  #: the best configuration before the latest
    comparison: Comparison | None = None  #: latest (B) against ``best`` (A)
    problem: str = ""  #: why the latest was not compared with ``best``


def primary_metrics(params: Params) -> dict[str, str]:
    """``{task: the metric that picks its checkpoint}`` (the kind's primary metric, or the task's
    ``head.select_by``) for every task in params, in params order."""
    return {task: build_kind(cfg).selection_metric(cfg) for task, cfg in params.tasks.items()}


def latest_metrics(task: str, root: Path = PROJECT_ROOT) -> dict | None:
    """The task's ``reports/<task>/metrics.json``, None if it was never evaluated."""
    path = reports_dir(task, root) / "metrics.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def best_runs(
    uri: str, experiment: str, primaries: dict[str, str], root: Path = PROJECT_ROOT
) -> dict[str, BestRun | None]:
    """Each task's best run in ``experiment`` of the store at ``uri`` (None: no run with the metric).

    A local sqlite store that does not exist yet holds no runs (it is not created). Raises
    :class:`TrackingUnavailable` when the store cannot be queried; its message names the store redacted
    (and a database inside the project ``root`` relative to it), as the committed summary shows it.
    """
    found: dict[str, BestRun | None] = dict.fromkeys(primaries)
    with _experiment(uri, experiment, root) as (client, experiment_id):
        if experiment_id is None:
            return found
        for task, metric in primaries.items():
            key = f"test.{metric}"
            runs = client.search_runs(
                [experiment_id],
                filter_string=f"tags.task = '{task}'",
                order_by=[f"metrics.`{key}` DESC"],
                max_results=1,
            )
            if runs and key in runs[0].data.metrics:
                run = runs[0]
                found[task] = BestRun(run.data.metrics[key], run.info.run_name or "", run.info.run_id)
    return found


def task_configurations(
    uri: str, experiment: str, primaries: dict[str, str], root: Path = PROJECT_ROOT
) -> dict[str, list[Configuration]]:
    """Each task's configurations in ``experiment``, oldest first (:func:`~pipeline.reporting.seed_history.
    configurations`); errors as :func:`best_runs`'."""
    from pipeline.reporting.seed_history import configurations

    found: dict[str, list[Configuration]] = {task: [] for task in primaries}
    with _experiment(uri, experiment, root) as (client, experiment_id):
        if experiment_id is None:
            return found
        for task, metric in primaries.items():
            found[task] = configurations(client, experiment_id, task, metric)
    return found


def sweep_rankings(uri: str, experiment: str, primaries: dict[str, str], root: Path = PROJECT_ROOT) -> str:
    """The "Sweeps" section (:func:`~pipeline.reporting.sweeps.sweep_section`; "" without sweeps); errors as
    :func:`best_runs`'."""
    from pipeline.reporting.sweeps import sweep_section

    with _experiment(uri, experiment, root) as (client, experiment_id):
        return "" if experiment_id is None else sweep_section(client, [experiment_id], primaries)


@contextmanager
def _experiment(uri: str, experiment: str, root: Path) -> Iterator[tuple[Any, str | None]]:
    """A client of the store at ``uri`` and the experiment's id (None: no such experiment, or a local sqlite
    store that does not exist, which is not created); any failure of the store a :class:`TrackingUnavailable`."""
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        yield None, None
        return
    try:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        known = client.get_experiment_by_name(experiment)
        yield client, None if known is None else known.experiment_id
    except Exception as exc:  # noqa: BLE001  (any failure of the store is reported, never a traceback)
        detail = portable_text(scrub(" ".join(str(exc).split())), root)[:200]
        raise TrackingUnavailable(
            f"MLflow tracking store {shown_uri(uri, root)} unreachable: {type(exc).__name__}: {detail}"
        ) from None


# --- the latest configuration against the best earlier one ---------------------------------------------------


#: resamples of each latest-vs-best comparison: every resample rescores every seed of both sides, and at the
#: compare command's 1000 one sst2 comparison of 3 seeds against 3 takes about 100 s on 2 cores
SUMMARY_RESAMPLES = 300


def compare_runs(params: Params, root: Path, uri: str, a: str, b: str, metric: str, resamples: int) -> Comparison:
    """The compare command's comparison of MLflow run ``b`` with run ``a`` (a seed group's parent: its seeds)
    in the store at ``uri``; a :class:`~pipeline.significance.sources.CompareError` when they cannot be."""
    from pipeline.commands.compare import build_parser, compare

    args = build_parser().parse_args(
        [a, b, "--metric", metric, "--resamples", str(resamples), "--params", str(root / DEFAULT_PARAMS.name)]
    )
    with _tracking_uri(uri):  # compare reads the store MLFLOW_TRACKING_URI names
        return compare(args, params)[2]


@contextmanager
def _tracking_uri(uri: str) -> Iterator[None]:
    """``MLFLOW_TRACKING_URI`` set to ``uri`` for the duration, then as it was."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        yield
    finally:
        if before is None:
            del os.environ["MLFLOW_TRACKING_URI"]
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before


def latest_vs_best(
    params: Params, root: Path, uri: str, history: list[Configuration], metric: str, resamples: int
) -> TaskHistory:
    """The task's history with its latest configuration compared with the best earlier one, if any."""
    from pipeline.config.errors import ConfigError
    from pipeline.data.readers.files import DataError
    from pipeline.reporting.seed_history import best_earlier
    from pipeline.significance.sources import CompareError

    best = best_earlier(history)
    if best is None:
        return TaskHistory(history)
    try:
        comparison = compare_runs(params, root, uri, best.run_id, history[-1].run_id, metric, resamples)
    except (CompareError, ConfigError, DataError) as exc:
        return TaskHistory(history, best=best, problem=str(exc))
    return TaskHistory(history, best=best, comparison=comparison)


def comparison_tags(best: Configuration, c: Comparison) -> dict[str, str]:
    """The ``vs_best.*`` tags of the latest configuration's run."""
    values = {"run": best.run_id, "metric": c.metric, "delta": f"{c.delta:+.4f}", "ci_low": f"{c.ci_low:+.4f}",
              "ci_high": f"{c.ci_high:+.4f}", "p_value": f"{c.p_value:.3g}", "verdict": _verdict(c)}  # fmt: skip
    return {TAG_PREFIX + key: value for key, value in values.items()}


def tag_latest(uri: str, history: TaskHistory, root: Path) -> None:
    """Set the comparison on the latest configuration's run as ``vs_best.*`` tags (a warning if it fails)."""
    if history.comparison is None or history.best is None:
        return
    run_id = history.configurations[-1].run_id
    try:
        from mlflow import MlflowClient
        from mlflow.entities import RunTag

        tags = comparison_tags(history.best, history.comparison)
        MlflowClient(uri).log_batch(run_id, tags=[RunTag(key, value) for key, value in tags.items()])
    except Exception as exc:  # noqa: BLE001  (tags are a courtesy: the summary is written all the same)
        detail = portable_text(scrub(" ".join(str(exc).split())), root)[:200]
        logger.warning(f"warning: could not tag MLflow run {run_id} in {shown_uri(uri, root)} "
                       f"({type(exc).__name__}: {detail})")  # fmt: skip


def task_histories(
    params: Params, root: Path, uri: str, configurations: dict[str, list[Configuration]], summary_dir: Path,
    resamples: int,
) -> dict[str, TaskHistory]:
    """Per task: its seed-score plot written (``reports/<task>/seed_scores.png``, tasks with a configuration),
    its latest configuration compared with the best earlier one and tagged with the result."""
    from pipeline.reporting.seed_history import PLOT_NAME, plot_seed_scores

    metrics = primary_metrics(params)
    histories = {}
    for task, history in configurations.items():
        if not history:
            histories[task] = TaskHistory(history)
            continue
        plot = plot_seed_scores(task, metrics[task], history, reports_dir(task, root) / PLOT_NAME)
        found = latest_vs_best(params, root, uri, history, metrics[task], resamples)
        tag_latest(uri, found, root)
        histories[task] = replace(found, plot=Path(os.path.relpath(plot, summary_dir)).as_posix())
    return histories


# --- the page -------------------------------------------------------------------------------------------------


def render_summary(
    params: Params, root: Path, best: dict[str, BestRun | None] | None, note: str = "",
    histories: dict[str, TaskHistory] | None = None, sweeps: str = "",
) -> str:
    """The markdown page, its sections in order; ``best`` and ``histories`` None when the tracking store was
    unavailable (``note`` says why)."""
    return "\n".join(summary_sections(params, root, best, note, histories, sweeps))


def summary_sections(
    params: Params, root: Path, best: dict[str, BestRun | None] | None, note: str = "",
    histories: dict[str, TaskHistory] | None = None, sweeps: str = "",
) -> list[str]:
    """The page's markdown sections, each ending in a newline: results, the seed spread over
    configurations, then the sweeps' rankings (when there is a sweep)."""
    return [results_section(params, root, best, note), history_section(params, histories), *([sweeps] if sweeps else [])]


def results_section(params: Params, root: Path, best: dict[str, BestRun | None] | None, note: str = "") -> str:
    """The title and one row per task: latest test score, baseline, best MLflow run."""
    rows = []
    for task, metric in primary_metrics(params).items():
        latest = latest_metrics(task, root)
        run = best.get(task) if best is not None else None
        if best is None:
            best_cells = ["unavailable", "", ""]
        elif run is None:
            best_cells = ["-", "", ""]
        else:
            best_cells = [_number(run.value), run.name, f"`{run.run_id}`"]
        if latest is None:
            scores = [NOT_RUN, ""]
        else:
            scores = [_with_spread(latest, metric), _number(latest.get("baseline", {}).get(metric))]
        rows.append([f"`{task}`", params.tasks[task].kind, metric, *scores, *best_cells])
    lines = [
        "# Results summary",
        "",
        "Latest test score per task (`reports/<task>/metrics.json`; over several seeds their mean ± standard "
        "deviation), its trivial baseline, and the best MLflow "
        f"run so far (experiment `{params.tracking.experiment}`, highest `test.<metric>`).",
        "",
        markdown_table(HEADER, rows),
    ]
    if note:
        lines += [f"**{note}**", ""]
    return "\n".join(lines)


def history_section(params: Params, histories: dict[str, TaskHistory] | None) -> str:
    """One line per task: its configurations, the latest against the best earlier one, its plot."""
    lines = [
        "## Seed spread over configurations",
        "",
        "A configuration is a seed group's parent MLflow run (a single run for a task with one seed). The latest "
        "configuration's mean ± std over its seeds against the best earlier one's (highest mean): latest − best, "
        "its paired-bootstrap 95% interval and p-value over the same test examples (as `python -m "
        "pipeline.commands.compare BEST LATEST` gives them; also on the latest run as `vs_best.*` tags). Each "
        "task's plot shows every seed's score in its last configurations.",
        "",
    ]
    if histories is None:
        return "\n".join([*lines, "Unavailable: the tracking store could not be queried.", ""])
    metrics = primary_metrics(params)
    tasks = [history_line(task, metric, histories.get(task, TaskHistory([]))) for task, metric in metrics.items()]
    return "\n".join([*lines, *tasks, ""])


def history_line(task: str, metric: str, history: TaskHistory) -> str:
    """``- `task` (metric, n configurations, plot): latest ... vs best earlier ...: delta, CI, p: verdict``."""
    configs = history.configurations
    if not configs:
        return f"- `{task}`: no configuration with `test.{metric}` in MLflow yet"
    count = f"{len(configs)} configuration{'s' if len(configs) > 1 else ''}"
    plot = f", [{Path(history.plot).name}]({history.plot})" if history.plot else ""
    head = f"- `{task}` ({metric}, {count}{plot}): latest {_configuration_text(configs[-1])}"
    if history.best is None:
        return f"{head}; {NO_EARLIER}"
    head += f" vs best earlier {_configuration_text(history.best)}"
    c = history.comparison
    if c is None:
        return f"{head}: not compared ({history.problem})"
    from pipeline.commands.compare import level

    return (f"{head}: **{c.delta:+.4f}**, {level(c)} CI [{c.ci_low:+.4f}, {c.ci_high:+.4f}], p = {c.p_value:.3g}: "
            f"**{_verdict(c)}**")  # fmt: skip


def _configuration_text(config: Configuration) -> str:
    """``0.8872 ± 0.0026 (3 seeds; sst2 21320fad, 2026-11-30 09:52)``; one seed: ``0.8167 (zh_sentiment ...)``."""
    n = len(config.scores)
    seeds = f"{n} seeds; " if n > 1 else ""
    value = _number(config.mean) + (f" ± {config.std:.4f}" if n > 1 else "")
    return f"{value} ({seeds}{config.short}, {config.date})"


def _verdict(c: Comparison) -> str:
    """Whether the latest (B) is better or worse than the best earlier (A) beyond noise."""
    from pipeline.commands.compare import level

    if c.better is None:
        return f"no significant difference at {level(c)} (CI includes 0)"
    return f"latest {'better' if c.better == 'B' else 'worse'} beyond noise ({level(c)} CI excludes 0)"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _with_spread(latest: dict, metric: str) -> str:
    """The test figure; over several seeds, their mean +- standard deviation and the number of seeds."""
    value = _number(latest.get("test", {}).get(metric))
    spread = latest.get("test_spread", {}).get(metric)
    return value if spread is None else f"{value} ± {spread['std']:.4f} ({latest['seeds']} seeds)"


def write_summary(
    params: Params, root: Path = PROJECT_ROOT, out: Path | None = None, uri: str | None = None,
    resamples: int | None = None,
) -> tuple[Path, str | None]:
    """Write the summary (default ``<root>/reports/summary.md``) and each task's seed-score plot against the
    store at ``uri`` (default: the params' tracking URI), comparing each task's latest configuration with
    its best earlier one (``resamples``: default :data:`SUMMARY_RESAMPLES`); return the summary's path and the
    tracking error, None when the store answered."""
    uri = uri or params.tracking_uri(root)
    path = out or root / "reports" / "summary.md"
    error, histories, sweeps = None, None, ""
    primaries = primary_metrics(params)
    try:
        best: dict[str, BestRun | None] | None = best_runs(uri, params.tracking.experiment, primaries, root)
        configurations = task_configurations(uri, params.tracking.experiment, primaries, root)
        sweeps = sweep_rankings(uri, params.tracking.experiment, primaries, root)
    except TrackingUnavailable as exc:
        best, error = None, str(exc)
    else:
        histories = task_histories(params, root, uri, configurations, path.resolve().parent,
                                   resamples or SUMMARY_RESAMPLES)  # fmt: skip
    return write_text(path, render_summary(params, root, best, error or "", histories, sweeps)), error


def main(argv: list[str] | None = None) -> int:
    """Command line: write the summary; exit status 1 if the tracking store was unreachable, 2 on bad params."""
    configure_logging()
    parser = argparse.ArgumentParser(description="Write reports/summary.md: latest and best result per task.")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="params file (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None, help="output file (default: reports/summary.md)")
    parser.add_argument("--resamples", type=int, default=None,
                        help=f"bootstrap resamples of each latest-vs-best comparison (default: {SUMMARY_RESAMPLES})")
    args = parser.parse_args(argv)
    fail_fast_commands()
    try:
        params = load_params(args.params)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    path, error = write_summary(params, args.params.resolve().parent, args.out, resamples=args.resamples)
    if error:
        print(f"error: {error} (wrote {path} without best runs)", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m pipeline.commands.summary``: ``reports/summary.md``, one row per task of params.yaml.

Each row: the task, its kind and primary metric, the latest test score and its baseline (from
``reports/<task>/metrics.json``), and the best MLflow run of the task so far (runs tagged
``task=<task>`` with the highest ``test.<primary metric>``). Tasks never evaluated show "not run
yet". An unreachable tracking store is reported in one line (exit status 1) and the latest
metrics are still written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from pipeline.config.paths import DEFAULT_PARAMS, PROJECT_ROOT
from pipeline.config.errors import ConfigError
from pipeline.config.schema import Params
from pipeline.config.loading import load_params
from pipeline.kinds.factory import build_kind
from pipeline.config.paths import reports_dir
from pipeline.tracking.redaction import portable_text, scrub, shown_uri
from pipeline.reporting.files import markdown_table, write_text
from pipeline.runtime.log_setup import configure_logging

NOT_RUN = "not run yet"
HEADER = ("task", "kind", "metric", "latest test", "baseline", "best in MLflow", "best run", "run id")


@dataclass(frozen=True)
class BestRun:
    """The run of a task with the highest primary test metric."""

    value: float
    name: str
    run_id: str


class TrackingUnavailable(RuntimeError):
    """The MLflow tracking store could not be queried; the message is one line."""


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
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return found
    try:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        known = client.get_experiment_by_name(experiment)
        if known is None:
            return found
        for task, metric in primaries.items():
            key = f"test.{metric}"
            runs = client.search_runs(
                [known.experiment_id],
                filter_string=f"tags.task = '{task}'",
                order_by=[f"metrics.`{key}` DESC"],
                max_results=1,
            )
            if runs and key in runs[0].data.metrics:
                run = runs[0]
                found[task] = BestRun(run.data.metrics[key], run.info.run_name or "", run.info.run_id)
    except Exception as exc:  # noqa: BLE001  (any failure of the store is reported, never a traceback)
        detail = portable_text(scrub(" ".join(str(exc).split())), root)[:200]
        raise TrackingUnavailable(
            f"MLflow tracking store {shown_uri(uri, root)} unreachable: {type(exc).__name__}: {detail}"
        ) from None
    return found


def render_summary(params: Params, root: Path, best: dict[str, BestRun | None] | None, note: str = "") -> str:
    """The markdown page; ``best`` None when the tracking store was unavailable (``note`` says why)."""
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


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _with_spread(latest: dict, metric: str) -> str:
    """The test figure; over several seeds, their mean +- standard deviation and the number of seeds."""
    value = _number(latest.get("test", {}).get(metric))
    spread = latest.get("test_spread", {}).get(metric)
    return value if spread is None else f"{value} ± {spread['std']:.4f} ({latest['seeds']} seeds)"


def write_summary(
    params: Params, root: Path = PROJECT_ROOT, out: Path | None = None, uri: str | None = None
) -> tuple[Path, str | None]:
    """Write the summary (default ``<root>/reports/summary.md``) against the store at ``uri`` (default:
    the params' tracking URI); return its path and the tracking error, None when the store answered."""
    uri = uri or params.tracking_uri(root)
    error = None
    try:
        best: dict[str, BestRun | None] | None = best_runs(uri, params.tracking.experiment, primary_metrics(params), root)
    except TrackingUnavailable as exc:
        best, error = None, str(exc)
    path = out or root / "reports" / "summary.md"
    return write_text(path, render_summary(params, root, best, error or "")), error


def main(argv: list[str] | None = None) -> int:
    """Command line: write the summary; exit status 1 if the tracking store was unreachable, 2 on bad params."""
    configure_logging()
    parser = argparse.ArgumentParser(description="Write reports/summary.md: latest and best result per task.")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="params file (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None, help="output file (default: reports/summary.md)")
    args = parser.parse_args(argv)
    # a remote store that does not answer fails fast instead of retrying for minutes
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    try:
        params = load_params(args.params)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    path, error = write_summary(params, args.params.resolve().parent, args.out)
    if error:
        print(f"error: {error} (wrote {path} without best runs)", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m pipeline.commands.compare A B``: is run B really better than run A, or is the gap noise?

Both sides are runs of one task evaluated on the same test examples: MLflow run ids, ``<task>@<rev>``
(a git revision or DVC experiment), ``<task>`` (the working tree) or predictions files, and a side may be
a group of runs joined by commas (seeds, compared by their mean; see :mod:`pipeline.significance.sources`).
Prints a table of both sides, delta = B - A of the task's selection metric (or ``--metric``), its paired
bootstrap confidence interval, a p-value and a verdict (:mod:`pipeline.significance.bootstrap`); writes
the same as markdown to ``reports/compare/<task>-<A>-vs-<B>.md`` and tags the compared MLflow runs
``compare.vs.<other>``. A bad side is one line ``error: ...; hint: ...`` and exit status 2.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from pipeline.config.errors import ConfigError, shown_path
from pipeline.config.loading import load_params
from pipeline.config.paths import DEFAULT_PARAMS
from pipeline.config.schema import Params, TaskConfig
from pipeline.data.readers.files import DataError
from pipeline.reporting.files import markdown_table, write_text
from pipeline.runtime.log_setup import configure_logging
from pipeline.tracking.redaction import fail_fast_commands
from pipeline.significance.bootstrap import Comparison, paired_difference, planned_steps
from pipeline.significance.sources import (
    CompareError,
    Side,
    Sources,
    check_comparable,
    gold_differences,
    label_space,
    read_side,
)

if TYPE_CHECKING:
    from pipeline.kinds.common.base import TaskKind

EPILOG = """\
sides (A and B): one run each, or several joined by commas (e.g. three seeds), compared by their mean:
  <32 hex digits>           an MLflow run: its evaluation/predictions.jsonl artifact (the store of
                            MLFLOW_TRACKING_URI, else params.yaml's tracking.uri)
  sst2@HEAD~3, sst2@<exp>   reports/sst2/evaluation/predictions.jsonl at a git revision or DVC experiment
  sst2, sst2@workspace      the working tree's reports/sst2/evaluation/predictions.jsonl
  path/predictions.jsonl    a predictions file (name its task with --task)

examples:
  python -m pipeline.commands.compare sst2@HEAD~1 sst2
  python -m pipeline.commands.compare 3f2a...e9 8c1d...04 --metric macro_f1
  python -m pipeline.commands.compare RUN1,RUN2,RUN3 RUN4,RUN5,RUN6      # three seeds against three
  python -m pipeline.commands.compare --task sst2 old/predictions.jsonl new/predictions.jsonl

Every run must hold the same test examples in the same order (the same max_test_samples). The interval
is a paired bootstrap over test examples; the p-value a paired approximate randomization test (runs
paired by position), or the paired bootstrap's when the sides have different numbers of runs.
Writes the result to reports/compare/<task>-<A>-vs-<B>.md (--out) and tags the compared MLflow runs
compare.vs.<other side> (--no-tags: not).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.commands.compare",
        description="Is run B really better than run A? The difference B - A of a task's metric on the same\n"
        "test examples, with a paired bootstrap confidence interval, a p-value and a verdict.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("a", metavar="A", help="the baseline side (see below)")
    parser.add_argument("b", metavar="B", help="the side that may be better")
    parser.add_argument("--task", help="the task of sides given as predictions files")
    parser.add_argument("--metric", help="a key of the task's scores (default: the task's selection metric)")
    parser.add_argument("--resamples", type=_positive, default=1000,
                        help="bootstrap and randomization resamples (default: %(default)s)")
    parser.add_argument("--confidence", type=confidence_level, default=0.95,
                        help="confidence level of the interval (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the resampling (default: %(default)s)")
    parser.add_argument("--out", type=Path,
                        help="markdown file to write (default: reports/compare/<task>-<A>-vs-<B>.md)")
    parser.add_argument("--no-tags", action="store_true", help="do not tag the compared MLflow runs")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="params file (default: params.yaml)")
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def confidence_level(text: str) -> float:
    """``--confidence``: a number strictly between 0 and 1 (argparse type, shared with promote)."""
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie between 0 and 1 (e.g. 0.95), got {value}")
    return value


# --- the comparison --------------------------------------------------------------------------------------


def compare(args: argparse.Namespace, params: Params) -> tuple[Side, Side, Comparison]:
    """Read both sides, check them and compare them on the metric."""
    from tqdm import tqdm

    from pipeline.kinds.factory import build_kind

    with tempfile.TemporaryDirectory(prefix="compare-") as workdir:
        sources = Sources(params, args.params, Path(workdir), args.task)
        a, b = read_side(args.a, "A", sources), read_side(args.b, "B", sources)
    check_comparable(a, b)
    cfg = params.task(a.task)
    kind = build_kind(cfg)
    metric = args.metric or kind.selection_metric(cfg)
    score = scorer(kind, cfg, metric, a, b)
    differing = gold_differences(a, b)
    if differing:
        print(f"warning: {differing} test examples carry other gold annotations in some run than in A's first run; "
              "every run is scored against A's", file=sys.stderr)  # fmt: skip
    records = a.runs[0].records
    total = planned_steps(len(records), len(a.runs), len(b.runs), args.resamples)
    # shown after 3 s, on a terminal only (disable=None)
    with tqdm(total=total, desc=f"resampling {len(records)} examples", unit="resample", file=sys.stderr, delay=3,
              leave=False, disable=None) as bar:  # fmt: skip
        comparison = paired_difference(
            records, [run.predictions for run in a.runs], [run.predictions for run in b.runs], score, metric,
            n_resamples=args.resamples, confidence=args.confidence, seed=args.seed, on_step=bar.update,
        )  # fmt: skip
    return a, b, comparison


def scorer(
    kind: TaskKind, cfg: TaskConfig, metric: str, a: Side, b: Side
) -> Callable[[Sequence[dict], Sequence[dict]], float]:
    """``metric`` of the task's ``kind``, scored with the runs' label space; a :class:`CompareError` when a
    run's predictions do not fit the kind or the kind has no such metric."""
    labels = label_space(cfg.kind, [*a.runs, *b.runs])
    records = a.runs[0].records
    for side in (a, b):
        for index, run in enumerate(side.runs):
            try:
                scores = kind.score(records, run.predictions, labels)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise CompareError(
                    f"{side.who(index)}: its predictions are not those of a {cfg.kind} task ({type(exc).__name__}: "
                    f"{exc}); hint: is it a predictions file of {a.task}?"
                ) from None
            if metric not in scores:
                raise CompareError(
                    f"no metric {metric!r} for task {a.task} ({cfg.kind}); its metrics: {', '.join(scores)}"
                )

    def score(chosen: Sequence[dict], predictions: Sequence[dict]) -> float:
        return kind.score(chosen, predictions, labels)[metric]

    return score


# --- what is shown -----------------------------------------------------------------------------------------


def level(c: Comparison) -> str:
    return f"{c.confidence * 100:g}%"


def verdict(c: Comparison) -> str:
    """One line: which side is better beyond noise, or that the interval includes 0."""
    if c.better:
        loser = "A" if c.better == "B" else "B"
        return f"{c.better} is better than {loser} beyond noise ({level(c)} CI excludes 0)"
    return f"no significant difference at {level(c)} (CI includes 0)"


def value_cell(mean: float, runs: tuple[float, ...]) -> str:
    """One run's value, or a group's mean and each run's."""
    if len(runs) == 1:
        return f"{mean:.4f}"
    return f"{mean:.4f} mean ({', '.join(f'{value:.4f}' for value in runs)})"


def side_rows(a: Side, b: Side, c: Comparison) -> list[list[str]]:
    return [
        [side.letter, side.what, str(len(side.runs)), value_cell(mean, runs)]
        for side, mean, runs in ((a, c.a, c.a_runs), (b, c.b, c.b_runs))
    ]


def result_lines(c: Comparison) -> list[str]:
    """delta, interval, p-value and verdict, one line each."""
    return [
        f"delta = B - A = {c.delta:+.4f} {c.metric}",
        (f"{level(c)} CI [{c.ci_low:+.4f}, {c.ci_high:+.4f}] (paired bootstrap over {c.n_examples} test examples, "
         f"{c.n_resamples} resamples, seed {c.seed})"),
        f"p = {c.p_value:.3g} ({c.p_test}, {c.n_resamples} resamples)",
        verdict(c),
    ]


def render_terminal(task: str, a: Side, b: Side, c: Comparison) -> str:
    header = ["side", "what", "runs", c.metric]
    table = [header, *side_rows(a, b, c)]
    widths = [max(len(row[column]) for row in table) for column in range(len(header))]
    lines = [f"{task}: {c.metric} on {c.n_examples} test examples", ""]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in table]
    return "\n".join([*lines, "", *result_lines(c)])


def render_markdown(task: str, a: Side, b: Side, c: Comparison, command: str) -> str:
    delta, interval, p_value, said = result_lines(c)
    return "\n".join([
        f"# Is B better than A? `{task}`, {c.metric}",
        "",
        f"Paired comparison on the same {c.n_examples} test examples.",
        "",
        markdown_table(["side", "what", "runs", c.metric], side_rows(a, b, c)),
        f"- **{delta}**",
        f"- {interval}",
        f"- {p_value}",
        f"- **{said}**",
        "",
        f"`{command}`",
        "",
    ])  # fmt: skip


def safe_name(text: str, limit: int = 48) -> str:
    """``text`` as a file-name or tag-key part: letters, digits, ``.``, ``_`` and ``-`` only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:limit] or "side"


def default_out(root: Path, task: str, a: Side, b: Side) -> Path:
    return root / "reports" / "compare" / f"{safe_name(task)}-{safe_name(a.short)}-vs-{safe_name(b.short)}.md"


# --- MLflow tags ---------------------------------------------------------------------------------------------


def tag_value(a: Side, b: Side, c: Comparison) -> str:
    """``f1 B-A +0.0123 [-0.0031, +0.0270] p=0.11 (3453 examples, 1000 resamples; A=..., B=...)``."""
    return (
        f"{c.metric} B-A {c.delta:+.4f} [{c.ci_low:+.4f}, {c.ci_high:+.4f}] p={c.p_value:.2g} "
        f"({c.n_examples} examples, {c.n_resamples} resamples; A={a.short}, B={b.short})"
    )


def tag_runs(a: Side, b: Side, c: Comparison, uri: str, root: Path) -> str:
    """Tag every MLflow run of both sides ``compare.vs.<the other side>``; one line saying what was done."""
    from pipeline.tracking.redaction import portable_text, scrub, shown_uri

    targets = [(run.run_id, other) for side, other in ((a, b), (b, a)) for run in side.runs if run.run_id]
    if not targets:
        return ""
    value = tag_value(a, b, c)
    done = []
    try:
        from mlflow import MlflowClient

        client = MlflowClient(uri)
        for run_id, other in targets:
            key = f"compare.vs.{safe_name(other.short)}"
            client.set_tag(run_id, key, value)
            done.append(f"{run_id[:8]} {key}")
    except Exception as exc:  # noqa: BLE001  (tags are a courtesy: an unreachable store is a warning)
        detail = portable_text(scrub(" ".join(str(exc).split())), root)[:200]
        return f"warning: could not tag the MLflow runs in {shown_uri(uri, root)} ({type(exc).__name__}: {detail})"
    return f"tagged MLflow run {', '.join(done)}"


def main(argv: list[str] | None = None) -> int:
    """Command line: compare, print, write the markdown, tag the runs; exit status 2 on a bad side."""
    configure_logging()
    args = build_parser().parse_args(argv)
    fail_fast_commands()
    try:
        params = load_params(args.params)
        a, b, comparison = compare(args, params)
    except (CompareError, ConfigError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    root = args.params.resolve().parent
    task = a.task
    print(render_terminal(task, a, b, comparison))
    command = "python -m pipeline.commands.compare " + shlex.join(sys.argv[1:] if argv is None else argv)
    out = write_text(args.out or default_out(root, task, a, b), render_markdown(task, a, b, comparison, command))
    print(f"\nwrote {shown_path(out)}")
    if not args.no_tags:
        note = tag_runs(a, b, comparison, params.tracking_uri(root), root)
        if note:
            print(note, file=sys.stderr if note.startswith("warning") else sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

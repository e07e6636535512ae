"""Side-by-side comparisons run as DVC experiments: one row per variant and task, resumable, as a table.

A :class:`Comparison` names its tasks and its variants (each a list of ``-S`` overrides, ``{task}``
standing for the task's name). Every row is ``dvc exp run evaluate@<task> -S sweep=<name>
-S '++tasks.<task>.seeds=[...]'`` plus the variant's overrides, run in ``--project`` (a clone set apart for
the measurement, so that its workspace may change): the very command a user would type, and only the
task's own chain runs. Before each row ``params.yaml`` is reset, so each row differs from the first
variant in its overrides only. A row's test score (mean and std over the seeds), dev score and seconds per
epoch are appended to the results file (JSON lines) as soon as it ends: an interrupted measurement resumes
with the missing rows. Run it alone on the machine: a row that shared the CPU has no meaningful time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Comparison:
    """What one benchmark compares: ``variants`` maps a row name to its overrides; the first is the base."""

    name: str
    tasks: tuple[str, ...]
    variants: dict[str, list[str]]
    results: Path
    seeds: str = "[42,43,44]"
    #: per task, seeds other than ``seeds`` (e.g. one seed where three would not fit the machine's time)
    task_seeds: tuple[tuple[str, str], ...] = ()

    @property
    def base(self) -> str:
        return next(iter(self.variants))

    def seeds_of(self, task: str) -> str:
        return dict(self.task_seeds).get(task, self.seeds)

    def command(self, task: str, variant: str) -> list[str]:
        """The ``dvc exp run`` of one row."""
        options = [f"++tasks.{task}.seeds={self.seeds_of(task)}",
                   *(option.replace("{task}", task) for option in self.variants[variant])]
        return ["dvc", "exp", "run", f"evaluate@{task}", "-S", f"sweep={self.name}",
                *(arg for option in options for arg in ("-S", option))]


def shown(argv: list[str]) -> str:
    """A command line to copy into a shell."""
    return " ".join(f"'{arg}'" if any(c in arg for c in "{}[]= ") and arg != "-S" else arg for arg in argv)


def measure(comparison: Comparison, project: Path, task: str, variant: str) -> dict:
    """Run one row in ``project``; its figures."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["git", "checkout", "--", "params.yaml"], cwd=project, check=True)
    argv = comparison.command(task, variant)
    started = time.monotonic()
    result = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{shown(argv)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    metrics = json.loads((project / "reports" / task / "metrics.json").read_text())
    history = json.loads((project / "reports" / task / "history.json").read_text())
    primary = next(iter(metrics["test"]))
    return {
        "task": task, "variant": variant, "command": shown(argv), "metric": primary,
        "test_mean": metrics["test"][primary], "test_std": metrics.get("test_spread", {}).get(primary, {}).get("std"),
        "per_seed": metrics.get("per_seed"), "dev": metrics["dev"][primary],
        "seconds_per_epoch": history[-1]["seconds"] / len(history), "wall_seconds": round(time.monotonic() - started),
    }


def read_results(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def run_missing(comparison: Comparison, project: Path, tasks: tuple[str, ...], variants: list[str]) -> None:
    """Run every (variant, task) row not yet in the results file, variant by variant."""
    done = {(row["task"], row["variant"]) for row in read_results(comparison.results)}
    comparison.results.parent.mkdir(parents=True, exist_ok=True)
    for variant in variants:
        for task in tasks:
            if (task, variant) in done:
                continue
            print(f"[{comparison.name}] {task} / {variant}: {shown(comparison.command(task, variant))}", flush=True)
            row = measure(comparison, project, task, variant)
            with comparison.results.open("a") as out:
                out.write(json.dumps(row) + "\n")
            print(f"[{comparison.name}] {task} / {variant}: test {row['metric']} {row['test_mean']:.4f} +- "
                  f"{row['test_std'] or 0:.4f}, {row['seconds_per_epoch']:.0f} s/epoch", flush=True)


def table(comparison: Comparison, rows: list[dict], tasks: tuple[str, ...], label: str = "variant") -> str:
    """Markdown: one line per measured variant, per task the test mean +- std (difference to the base
    variant) and s/epoch."""
    by = {(row["task"], row["variant"]): row for row in rows}
    base = comparison.base
    header = f"| {label} | " + " | ".join(
        f"{task} ({by[(task, base)]['metric'] if (task, base) in by else ''}) | s/epoch" for task in tasks) + " |"
    lines = [header, "|---" * (1 + 2 * len(tasks)) + "|"]
    for variant in (v for v in comparison.variants if any((task, v) in by for task in tasks)):
        cells = []
        for task in tasks:
            row, first = by.get((task, variant)), by.get((task, base))
            if row is None:
                cells += ["not measured", ""]
                continue
            delta = "" if variant == base or first is None else f" ({row['test_mean'] - first['test_mean']:+.3f})"
            spread = "" if row["test_std"] is None else f" ± {row['test_std']:.3f}"
            cells += [f"{row['test_mean']:.3f}{spread}{delta}", f"{row['seconds_per_epoch']:.0f}"]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def arguments(comparison: Comparison, description: str) -> argparse.ArgumentParser:
    """The command line every comparison shares: --project, --tasks, --variants, --table."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--project", type=Path, help="the clone to run the experiments in")
    parser.add_argument("--tasks", nargs="+", default=list(comparison.tasks))
    parser.add_argument("--variants", nargs="+", default=list(comparison.variants), choices=list(comparison.variants))
    parser.add_argument("--table", action="store_true", help="print the table of the results so far")
    return parser


def main(comparison: Comparison, description: str, label: str = "variant") -> None:
    """Run the missing rows in ``--project`` and/or print the table with every row's command."""
    args = arguments(comparison, description).parse_args()
    if args.project is not None:
        run_missing(comparison, args.project.resolve(), tuple(args.tasks), args.variants)
    if args.table or args.project is None:
        rows = read_results(comparison.results)
        print(table(comparison, rows, tuple(args.tasks), label))
        for row in rows:
            print(f"- {row['task']} / {row['variant']}: `{row['command']}`")

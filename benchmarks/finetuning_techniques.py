"""Each fine-tuning technique against plain full fine-tuning, on the same data and budget, over 3 seeds.

    .venv/bin/python -m benchmarks.finetuning_techniques --project ../techniques   # runs what is missing
    .venv/bin/python -m benchmarks.finetuning_techniques --table                   # the README table

Every row is one DVC experiment in ``--project`` (a clone of this project set apart for the measurement,
so that its workspace may change): ``dvc exp run evaluate@<task> -S sweep=techniques -S
'++tasks.<task>.seeds=[42,43,44]'`` plus the row's own ``-S`` options, the very command a user would type
(only the task's own chain runs). Before each row ``params.yaml`` is
reset, so each row differs from plain in its options only. A row's test score (mean and std over the 3
seeds), dev score and seconds per epoch (of the chosen seed's training, dev evaluation included) are
appended to ``--results`` (JSON lines) as soon as it ends: an interrupted measurement resumes with the
missing rows. Run it alone on the machine: a row that shared the CPU has no meaningful time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from pipeline.config.paths import PROJECT_ROOT

RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "finetuning_techniques.jsonl"
TASKS = ("sst2", "conll03", "zh_sentiment")
SEEDS = "[42,43,44]"
#: row name -> its options (``-S key=value`` under ``tasks.<task>.``); plain first
VARIANTS: dict[str, list[str]] = {
    "plain": [],
    "frozen + BiLSTM features": ["backbone_training=frozen",
                                 "features={last_layers:4,combine:concat,bilstm_units:128}", "learning_rate=1e-3"],
    "top_layers: 2": ["backbone_training={top_layers:2}"],
    "unfreeze_after_epochs: 1": ["unfreeze_after_epochs=1"],
    "layerwise_lr_decay: 0.8": ["layerwise_lr_decay=0.8"],
    "ema: 0.99": ["ema={decay:0.99}"],
    "fgm: 0.5": ["adversarial={method:fgm,epsilon:0.5}"],
    "extend_vocab": ["tokenizer={extend_vocab:{min_count:5,max_new:98}}"],
}


def command(task: str, variant: str) -> list[str]:
    """The ``dvc exp run`` of one row."""
    options = [f"++tasks.{task}.seeds={SEEDS}", *(f"++tasks.{task}.{option}" for option in VARIANTS[variant])]
    return ["dvc", "exp", "run", f"evaluate@{task}", "-S", "sweep=techniques",
            *(arg for option in options for arg in ("-S", option))]


def shown(argv: list[str]) -> str:
    return " ".join(f"'{arg}'" if any(c in arg for c in "{}[]= ") and arg != "-S" else arg for arg in argv)


def measure(project: Path, task: str, variant: str) -> dict:
    """Run one row in ``project``; its figures."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["git", "checkout", "--", "params.yaml"], cwd=project, check=True)
    argv = command(task, variant)
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


def run_missing(project: Path, path: Path, tasks: tuple[str, ...], variants: list[str]) -> None:
    done = {(row["task"], row["variant"]) for row in read_results(path)}
    path.parent.mkdir(parents=True, exist_ok=True)
    for variant in variants:
        for task in tasks:
            if (task, variant) in done:
                continue
            print(f"[techniques] {task} / {variant}: {shown(command(task, variant))}", flush=True)
            row = measure(project, task, variant)
            with path.open("a") as out:
                out.write(json.dumps(row) + "\n")
            print(f"[techniques] {task} / {variant}: test {row['metric']} {row['test_mean']:.4f} +- "
                  f"{row['test_std'] or 0:.4f}, {row['seconds_per_epoch']:.0f} s/epoch", flush=True)


def table(rows: list[dict], tasks: tuple[str, ...]) -> str:
    """Markdown: one line per measured variant, per task the test mean +- std (difference to plain) and
    s/epoch."""
    by = {(row["task"], row["variant"]): row for row in rows}
    header = "| technique | " + " | ".join(f"{task} ({by[(task, 'plain')]['metric'] if (task, 'plain') in by else ''})"
                                          f" | s/epoch" for task in tasks) + " |"
    lines = [header, "|---" * (1 + 2 * len(tasks)) + "|"]
    for variant in (v for v in VARIANTS if any((task, v) in by for task in tasks)):
        cells = []
        for task in tasks:
            row, plain = by.get((task, variant)), by.get((task, "plain"))
            if row is None:
                cells += ["not measured yet", ""]
                continue
            delta = "" if variant == "plain" or plain is None else f" ({row['test_mean'] - plain['test_mean']:+.3f})"
            cells += [f"{row['test_mean']:.3f} ± {row['test_std'] or 0:.3f}{delta}", f"{row['seconds_per_epoch']:.0f}"]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="the clone to run the experiments in")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--table", action="store_true", help="print the table of the results so far")
    args = parser.parse_args()
    if args.project is not None:
        run_missing(args.project.resolve(), args.results, tuple(args.tasks), args.variants)
    if args.table or args.project is None:
        print(table(read_results(args.results), tuple(args.tasks)))
        for row in read_results(args.results):
            print(f"- {row['task']} / {row['variant']}: `{row['command']}`")


if __name__ == "__main__":
    main()

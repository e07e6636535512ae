"""Projected wall time of the default run, per task, from throughput measured on this machine.

For each task, trains and predicts on a small sample of its prepared data, then scales the measured
rates to the task's params (train samples x epochs, dev scored after each epoch, one test pass)::

    python -m benchmarks.run_budget --samples 256            # every task in params.yaml
    python -m benchmarks.run_budget sst2 duie --samples 128

Run ``dvc repro prepare backbone`` first. Prints one line per task and the projected total.
"""

from __future__ import annotations

import argparse

from benchmarks.throughput import measure
from pipeline.config.loading import load_params
from pipeline.config.paths import prepared_dir


def count_lines(path) -> int:
    """Number of records in a prepared JSON-lines file."""
    with open(path, encoding="utf-8") as handle:
        return sum(1 for _ in handle)


def capped(limit: int | None, available: int) -> int:
    """Records a split contributes after its ``max_*_samples`` cap."""
    return available if limit is None else min(limit, available)


def project(task: str, samples: int) -> dict[str, float]:
    """Projected training and evaluation seconds of one task under its params."""
    cfg = load_params().task(task)
    folder = prepared_dir(task)
    train = capped(cfg.max_train_samples, count_lines(folder / "train.jsonl"))
    dev = capped(cfg.max_dev_samples, count_lines(folder / "dev.jsonl"))
    test = capped(cfg.max_test_samples, count_lines(folder / "test.jsonl"))
    rates = measure(task, samples, cfg.precision)
    train_s = cfg.epochs * (train / rates["train_per_s"] + dev / rates["predict_per_s"])
    return {"train_records": train, "epochs": cfg.epochs, "mean_tokens": rates["mean_tokens"],
            "train_per_s": rates["train_per_s"], "train_s": train_s, "test_s": test / rates["predict_per_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="*", help="tasks to project (default: every task in params.yaml)")
    parser.add_argument("--samples", type=int, default=256, help="records measured per task")
    args = parser.parse_args()
    tasks = args.tasks or list(load_params().tasks)
    total = 0.0
    for task in tasks:
        figures = project(task, args.samples)
        seconds = figures["train_s"] + figures["test_s"]
        total += seconds
        print(f"{task:14s} {figures['train_records']:6d} x {figures['epochs']} epochs, "
              f"{figures['mean_tokens']:5.1f} tokens, {figures['train_per_s']:5.1f} train/s: "
              f"train+dev {figures['train_s'] / 60:5.1f} min, test {figures['test_s'] / 60:4.1f} min", flush=True)
    print(f"projected total (training and evaluation only) {total / 60:.1f} min")


if __name__ == "__main__":
    main()

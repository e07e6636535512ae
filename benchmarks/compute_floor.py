"""The compute floor of the default run: how fast it could be on this machine, doing the same work.

    .venv/bin/python -m benchmarks.compute_floor            # after `make run` (prepared data, backbones, timings)

For every task of params.yaml it draws the very batches training draws (each of its seeds, length
buckets, epochs) and prediction draws (dev after each epoch, test once, for every seed), adds up their FLOPs (the formula of
:mod:`benchmarks.side_by_side`, at each batch's padded length), and divides by

* the machine's matmul peak, measured now (2048 x 2048, float32 and, where the CPU has it, bfloat16):
  no run of this work can be faster;
* the rate of the model's own matmuls at the task's typical padded length (Q/K/V/output and
  feed-forward projections, attention scores and context), measured now: the floor if nothing but
  these matmuls cost time (no softmax, LayerNorm, GELU, dropout, optimizer, Python).

Beside the floors it prints the time the committed run spent on the same work
(``reports/timings/``: training steps, first step, dev evaluation, test prediction) and the share of
the peak that time reached.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from benchmarks.side_by_side import flops_per_sample, local_peaks, machine
from pipeline.config.loading import load_params
from pipeline.config.paths import PROJECT_ROOT, backbone_dir, prepared_dir
from pipeline.training.batching import bucketed_batches

#: the phases of a stage's timing record that are this work (the rest is start-up and bookkeeping)
WORK_PHASES = {"train": ("train: first step (tracing)", "train: steps", "train: dev evaluation"),
               "evaluate": ("predict test", "predict test with the other seeds")}


@dataclass
class TaskWork:
    """FLOPs of one task's training and prediction in the default run."""

    task: str
    precision: str  # float32 or bfloat16: the peak it is held against
    train_flops: float
    predict_flops: float
    mean_padded: float  # FLOP-weighted mean padded length of the training batches
    config: dict  # the backbone's bert config
    batch_size: int


def batch_flops(config: dict, lengths: Sequence[int], batches: list[list[int]], mode: str) -> tuple[float, float]:
    """FLOPs of ``batches`` (index lists into ``lengths``) and their FLOP-weighted mean padded length."""
    flops = weighted = 0.0
    for batch in batches:
        padded = max(lengths[i] for i in batch)
        cost = len(batch) * flops_per_sample(config, mode, padded)
        flops, weighted = flops + cost, weighted + cost * padded
    return flops, weighted / flops if flops else 0.0


def task_work(task: str, bf16: bool) -> TaskWork:
    """Draw the task's training and prediction batches as the stages do, and count their FLOPs."""
    from pipeline.backbone.manifest import read_manifest
    from pipeline.kinds.factory import build_kind
    from pipeline.reporting.files import read_jsonl
    from pipeline.text.tokenization import build_tokenizer
    from pipeline.training.trainer import encode_all, subsample

    cfg = load_params().task(task)
    kind, files = build_kind(cfg), read_manifest(backbone_dir(cfg.backbone))
    config = json.loads(Path(files.config).read_text(encoding="utf-8"))
    folder = prepared_dir(task)
    train = subsample(read_jsonl(folder / "train.jsonl"), cfg.max_train_samples, cfg.seed)
    dev = read_jsonl(folder / "dev.jsonl")[: cfg.max_dev_samples]
    test = read_jsonl(folder / "test.jsonl")[: cfg.max_test_samples]
    labels = kind.label_space(train, cfg)
    tokenizer = build_tokenizer(cfg.language, files.vocab, files.lowercase)

    def lengths(records: list[dict]) -> list[int]:
        return [len(f["token_ids"]) for f in encode_all(kind, records, tokenizer, labels, cfg.maxlen, task)]

    train_len, dev_len, test_len = lengths(train), lengths(dev), lengths(test)
    drawn = []  # every seed draws its own batch order
    for seed in cfg.training_seeds:
        rng = random.Random(seed)
        drawn += [b for _ in range(cfg.epochs) for b in bucketed_batches(train_len, cfg.batch_size, rng)]
    train_flops, mean_padded = batch_flops(config, train_len, drawn, "train")
    dev_flops, _ = batch_flops(config, dev_len, bucketed_batches(dev_len, cfg.batch_size * 2, None), "predict")
    test_flops, _ = batch_flops(config, test_len, bucketed_batches(test_len, cfg.batch_size * 2, None), "predict")
    precision = "bfloat16" if bf16 and cfg.precision in ("auto", "mixed_bfloat16") else "float32"
    predict_flops = len(cfg.training_seeds) * (cfg.epochs * dev_flops + test_flops)
    return TaskWork(task, precision, train_flops, predict_flops, mean_padded, config, cfg.batch_size)


def model_matmul_rate(config: dict, batch: int, length: int, dtype: str, repeats: int = 15) -> float:
    """GFLOP/s of one encoder layer's matmuls at ``batch`` x ``length`` tokens (their FLOP-weighted rate)."""
    from pipeline.runtime.tf_runtime import tf

    d, f, heads = config["hidden_size"], config["intermediate_size"], config["num_attention_heads"]
    tokens, head = batch * length, d // heads
    shapes = [((tokens, d), (d, d))] * 4 + [((tokens, d), (d, f)), ((tokens, f), (f, d)),
              ((batch * heads, length, head), (batch * heads, head, length)),
              ((batch * heads, length, length), (batch * heads, length, head))]
    flops = seconds = 0.0
    for a_shape, b_shape in shapes:
        a = tf.cast(tf.random.normal(a_shape, seed=1), dtype)
        b = tf.cast(tf.random.normal(b_shape, seed=2), dtype)
        call = tf.function(lambda a=a, b=b: tf.linalg.matmul(a, b))
        call()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call().numpy()
            times.append(time.perf_counter() - start)
        count = 2 * a_shape[-2] * a_shape[-1] * b_shape[-1] * (a_shape[0] if len(a_shape) == 3 else 1)
        flops, seconds = flops + count, seconds + statistics.median(times)
    return flops / seconds / 1e9


def committed_seconds(task: str) -> float | None:
    """Seconds the committed run spent on this work (training steps, dev and test prediction)."""
    total = 0.0
    for stage, phases in WORK_PHASES.items():
        path = PROJECT_ROOT / "reports" / "timings" / f"{stage}@{task}.json"
        if not path.exists():
            return None
        recorded = json.loads(path.read_text(encoding="utf-8"))["phases"]
        total += sum(recorded.get(name, 0.0) for name in phases)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="*", help="tasks (default: every task of params.yaml)")
    args = parser.parse_args()
    box = machine()
    peaks = local_peaks(box["bf16"])
    peak = {"float32": max(v for k, v in peaks.items() if k.endswith("float32")),
            "bfloat16": peaks.get("tensorflow bfloat16", 0.0)}
    print(f"{box['cpu']}, {box['cores']} cores, bfloat16 hardware: {', '.join(box['bf16_flags']) or 'none'}")
    print("matmul peak 2048x2048 GFLOP/s: " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()), flush=True)
    params = load_params()
    header = (f"{'task':13s} {'precision':9s} {'train TFLOP':>11s} {'pred TFLOP':>10s} {'tokens':>6s} "
              f"{'at peak s':>9s} {'at model matmuls s':>18s} {'committed s':>11s} {'% of peak':>9s}")
    print(header)
    rates: dict[tuple[int, str], float] = {}
    totals = {"peak": 0.0, "matmuls": 0.0, "committed": 0.0, "floor_of_committed": 0.0}
    for task in args.tasks or list(params.tasks):
        work = task_work(task, box["bf16"])
        length = max(16, 16 * round(work.mean_padded / 16))
        key = (length, work.precision)
        if key not in rates:
            rates[key] = model_matmul_rate(work.config, work.batch_size, length, work.precision)
        flops = work.train_flops + work.predict_flops
        at_peak, at_matmuls = flops / peak[work.precision] / 1e9, flops / rates[key] / 1e9
        spent = committed_seconds(task)
        share = f"{100 * at_peak / spent:8.0f}%" if spent else f"{'-':>9s}"
        print(f"{task:13s} {work.precision:9s} {work.train_flops / 1e12:11.1f} {work.predict_flops / 1e12:10.1f} "
              f"{work.mean_padded:6.0f} {at_peak:9.0f} {at_matmuls:18.0f} {spent or 0:11.0f} {share}", flush=True)
        totals["peak"] += at_peak
        totals["matmuls"] += at_matmuls
        if spent:
            totals["committed"] += spent
            totals["floor_of_committed"] += at_peak
    print(f"total: {totals['peak'] / 60:.1f} min at the matmul peak, {totals['matmuls'] / 60:.1f} min at the rate of "
          f"the model's own matmuls; the committed run spent {totals['committed'] / 60:.1f} min on this work "
          f"({100 * totals['floor_of_committed'] / max(totals['committed'], 1e-9):.0f}% of the peak)")


if __name__ == "__main__":
    main()

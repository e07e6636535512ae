"""Evaluate stage: score the fine-tuned model on the test split against a trivial baseline.

``python -m pipeline.stages.evaluate <task>`` writes ``reports/<task>/metrics.json`` (DVC
metrics: the headline figures only) and ``reports/<task>/evaluation/`` (every score in
``scores.json``, predictions, per-class tables, plots, the worst mistakes, the kind's model reports
such as saliency maps), and adds them to the MLflow run the train stage opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config.schema import Params, TaskConfig
from pipeline.config.paths import prepared_dir, reports_dir, seeds_dir, task_model_dir

if TYPE_CHECKING:
    from pipeline.kinds.common.base import TaskKind


def evaluate(params: Params, task: str) -> dict:
    """Predict the test split, score it, write reports; return every score (``evaluation/scores.json``)."""
    from pipeline.runtime.stage_timing import phase

    with phase("import TensorFlow, bert4keras, MLflow"):
        from pipeline.runtime import tf_runtime  # noqa: F401
        from pipeline.tracking.run import task_run
    from pipeline.runtime import interrupts
    from pipeline.serving.bundle import read_bundle
    from pipeline.reporting.files import read_jsonl, write_json, write_jsonl
    from pipeline.reporting.mistakes import write_mistakes
    from pipeline.serving.mlflow_model import run_model_uri
    from pipeline.tracking.registry import register_task_model
    from pipeline.data.splits import subsample
    from pipeline.training.trainer import encode_all

    cfg = params.task(task)
    trained = read_bundle(task_model_dir(task))
    kind, labels = trained.kind, trained.labels
    data = prepared_dir(task)
    test_records = read_jsonl(data / "test.jsonl")[: cfg.max_test_samples]
    train_records = subsample(read_jsonl(data / "train.jsonl"), cfg.max_train_samples, cfg.seed)
    with phase("build model, load weights"):
        tokenizer, model = trained.tokenizer(), trained.load_model()
    with phase("tokenize"):
        features = encode_all(kind, test_records, tokenizer, labels, cfg.maxlen, "test")
    with phase("predict test"):
        predictions = kind.predict(model, test_records, features, labels, cfg.batch_size * 2)

    out = reports_dir(task)
    details = out / "evaluation"
    with phase("reports (tables, plots, mistakes)"):
        files = kind.write_reports(test_records, predictions, labels, details)
        files += write_mistakes(kind.mistakes(test_records, predictions, labels), details, f"{task}: worst test mistakes")
        write_jsonl(details / "predictions.jsonl", [{**r, "predicted": p} for r, p in zip(test_records, predictions)])
    with phase("model reports (saliency)"):
        files += kind.write_model_reports(model, tokenizer, test_records, predictions, labels, cfg.maxlen, details)
    best = trained.meta.get("best", {})
    scores = {
        "test": kind.score(test_records, predictions, labels),
        "test_detail": kind.detailed_scores(test_records, predictions, labels),
        "baseline": kind.baseline(train_records, test_records, labels),
        "dev_best": {key.removeprefix("dev_"): value for key, value in best.items() if key.startswith("dev_")},
        "best_epoch": best.get("epoch"),
        "test_records": len(test_records),
    }
    group = trained.meta.get("seed_group")
    if group:
        with phase("predict test with the other seeds"):
            scores["seeds"] = seed_scores(params, task, group, test_records, features, scores["test"], details)
    write_json(details / "scores.json", scores)
    metrics = headline(scores, kind, cfg)
    write_json(out / "metrics.json", metrics)
    print(f"[evaluate] {task}: test {scores['test']} | baseline {scores['baseline']}")
    if group:
        print(f"[evaluate] {task}: over seeds {', '.join(scores['seeds'])}: "
              + ", ".join(f"{name} {metrics['test'][name]:.4f} +- {row['std']:.4f}" for name, row in metrics["test_spread"].items()))
        with task_run(params, task, group["parent"], group=True) as parent:
            parent.log_metrics({"test": metrics["test"], "test_spread": metrics["test_spread"]})
            parent.log_artifacts([out / "metrics.json"], "evaluation")

    with task_run(params, task, trained.run_reference()) as run:
        with phase("log metrics and reports to MLflow"):
            run.log_metrics({key: scores[key] for key in ("test", "test_detail", "baseline")})
            run.log_artifacts([out / "metrics.json", details / "scores.json", *files, details / "predictions.jsonl"],
                              "evaluation")
        rows, outputs = model_examples(kind, cfg, test_records, predictions)
        interrupts.reached("model_logging")
        with phase("log the model to MLflow"):
            logged_model_uri = run.log_model(trained.directory, rows, outputs)
            registered = register_task_model(run, logged_model_uri, trained.meta, scores,
                                             (kind.primary_metric, kind.selection_metric(cfg)))
        # not cached by DVC (cache: false): keeps DVC's run cache from restoring an evaluation without a run
        write_json(out / "model.json", {
            "model_uri": run_model_uri(run.run_id, task) if logged_model_uri else None,
            "logged_model_uri": logged_model_uri,
            "registered_version": registered,
            "outbox": run.record()["outbox"],
            "inputs": list(kind.input_columns(cfg)),
            "example": rows[:1],
        })
    return scores


def seed_scores(params: Params, task: str, group: dict, records: list[dict], features: list, chosen_scores: dict,
                details: Path) -> dict[str, dict]:
    """Test scores of every seed of the group (the chosen seed's are ``chosen_scores``): each other
    seed's model predicts the test split, its predictions go to ``evaluation/seeds/<seed>/`` and its
    scores and predictions to its own MLflow run."""
    from pipeline.runtime import tf_runtime
    from pipeline.reporting.files import write_jsonl
    from pipeline.serving.bundle import read_bundle
    from pipeline.tracking.run import task_run

    scores = {}
    for seed in group["seeds"]:
        if int(seed) == group["chosen"]:
            scores[seed] = chosen_scores
            continue
        trained = read_bundle(seeds_dir(task) / seed)
        predictions = trained.kind.predict(trained.load_model(), records, features, trained.labels,
                                           trained.cfg.batch_size * 2)
        scores[seed] = trained.kind.score(records, predictions, trained.labels)
        path = write_jsonl(details / "seeds" / seed / "predictions.jsonl",
                           [{**r, "predicted": p} for r, p in zip(records, predictions)])
        with task_run(params, task, trained.run_reference(), seed=int(seed)) as run:
            run.log_metrics({"test": scores[seed]})
            run.log_artifacts([path], "evaluation")
        tf_runtime.keras.backend.clear_session()
    return scores


def headline(scores: dict, kind: TaskKind, cfg: TaskConfig) -> dict:
    """The DVC metrics: the task's headline metrics (the kind's primary one and the one that picks the
    checkpoint) on test, for the trivial baseline and on dev, and the epoch kept. With several seeds,
    ``test`` is their mean, ``test_spread`` its standard deviation, min and max, and ``per_seed`` each
    seed's (``baseline``, ``dev`` and ``best_epoch`` are the served seed's). Everything else (precision,
    recall, per-class and per-type figures) is in ``evaluation/scores.json`` and MLflow, so
    ``dvc metrics show`` stays a table a terminal can hold."""
    from pipeline.reporting.spread import spread

    names = list(dict.fromkeys([kind.primary_metric, kind.selection_metric(cfg)]))

    def pick(section: dict) -> dict:
        return {name: section[name] for name in names if name in section}

    metrics = {"test": pick(scores["test"]), "baseline": pick(scores["baseline"]), "dev": pick(scores["dev_best"]),
               "best_epoch": scores["best_epoch"]}
    if "seeds" in scores:
        per_seed = {seed: pick(row) for seed, row in scores["seeds"].items()}
        rows = {name: spread([row[name] for row in per_seed.values()]) for name in metrics["test"]}
        metrics["test"] = {name: row["mean"] for name, row in rows.items()}
        metrics["test_spread"] = {name: {k: v for k, v in row.items() if k != "mean"} for name, row in rows.items()}
        metrics["seeds"] = len(per_seed)
        metrics["per_seed"] = per_seed
    return metrics


def model_examples(kind: TaskKind, cfg: TaskConfig, records: list[dict], predictions: list[dict], n: int = 3):
    """Input rows and outputs of up to ``n`` test records with a non-empty prediction (an entity, an
    answer, a triple), the served model's input example; the first records if none has one."""
    informative = [
        i for i, prediction in enumerate(predictions)
        if any(value not in (None, "", [], {}) for value in kind.public_output(prediction).values())
    ]
    chosen = (informative or list(range(len(records))))[:n]
    rows = [{column: records[i][column] for column in kind.input_columns(cfg)} for i in chosen]
    return rows, [kind.public_output(predictions[i]) for i in chosen]


if __name__ == "__main__":
    from pipeline.stages.cli import run_stage

    run_stage("Evaluate one task's fine-tuned model on its test split.", "task", evaluate)

"""Train stage: fine-tune a task's model on its prepared data, keeping the best dev checkpoint.

``python -m pipeline.stages.train <task>`` writes the bundle ``models/tasks/<task>/`` and the
per-epoch history ``reports/<task>/history.json`` (+ ``training_curves.png``), and records
params and per-epoch metrics in the task's MLflow run.
"""

from __future__ import annotations

import os
import shutil

from pipeline.config.schema import Params
from pipeline.config.paths import backbone_dir, prepared_dir, reports_dir, task_model_dir


def train(params: Params, task: str) -> dict:
    """Fine-tune one task; return its best dev row."""
    from pipeline.runtime.stage_timing import phase

    with phase("import TensorFlow, bert4keras, MLflow"):
        from pipeline.runtime import tf_runtime
        from pipeline.tracking.run import mark_killed, task_run
    from pipeline.serving import bundle
    from pipeline.runtime import interrupts
    from pipeline.backbone.manifest import MANIFEST, read_manifest
    from pipeline.data_health.report import health_metrics
    from pipeline.kinds.factory import build_kind
    from pipeline.training.modeling import build_task_model
    from pipeline.reporting.plots import plot_history
    from pipeline.reporting.files import read_json, read_jsonl, write_json
    from pipeline.text.tokenization import build_tokenizer
    from pipeline.training.checkpoints import TrainingCheckpoints, checkpoint_dir, fingerprint
    from pipeline.training.trainer import DevEvaluation, encode_all, fit, subsample

    cfg = params.task(task)
    kind = build_kind(cfg)
    files = read_manifest(backbone_dir(cfg.backbone))
    data = prepared_dir(task)
    train_records = subsample(read_jsonl(data / "train.jsonl"), cfg.max_train_samples, cfg.seed)
    dev_records = read_jsonl(data / "dev.jsonl")[: cfg.max_dev_samples]
    labels = kind.label_space(train_records, cfg)
    print(f"[train] {task}: {len(train_records)} train / {len(dev_records)} dev records, {len(labels)} labels")

    tf_runtime.set_seed(cfg.seed)
    precision, why = tf_runtime.set_precision(cfg.precision)
    print(f"[train] {task}: precision {precision} ({why})", flush=True)
    with phase("tokenize"):
        tokenizer = build_tokenizer(cfg.language, files.vocab, files.lowercase)
        train_features = encode_all(kind, train_records, tokenizer, labels, cfg.maxlen, "train")
        dev_features = encode_all(kind, dev_records, tokenizer, labels, cfg.maxlen, "dev")
    interrupts.reached("loaded")
    with phase("build model, load backbone"):
        model = build_task_model(kind, files.config, files.checkpoint, files.model_type, labels, cfg)

    final_dir = task_model_dir(task)
    work_dir = final_dir.with_name(final_dir.name + ".partial")
    bundle.start_bundle(work_dir, files.config, files.vocab)
    reports = reports_dir(task)
    reports.mkdir(parents=True, exist_ok=True)
    checkpoints = TrainingCheckpoints(
        checkpoint_dir(task),
        fingerprint(cfg, labels, [data / "train.jsonl", data / "dev.jsonl", files.config, backbone_dir(cfg.backbone) / MANIFEST]),
    )
    previous = checkpoints.previous_attempt()
    if previous and mark_killed(params, previous):
        print(f"[train] {task}: the interrupted attempt's run is marked KILLED", flush=True)

    with task_run(params, task) as run:
        checkpoints.record_attempt(run.reference())
        run.set_tags({"precision": precision})
        if previous:
            run.set_tags({"resumed_from_run": previous.get("run_id") or previous.get("outbox") or ""})
        health = reports / "data_health.json"
        if health.is_file():
            run.log_metrics(health_metrics(read_json(health)))
            run.log_artifacts([health], "data")

        def record_epoch(row: dict) -> None:
            run.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])
            write_json(reports / "history.json", evaluation.history)
            checkpoints.record_attempt(run.reference())

        evaluation = DevEvaluation(
            kind, dev_records, dev_features, labels, cfg.batch_size, work_dir / bundle.WEIGHTS, record_epoch,
            metric=kind.selection_metric(cfg),
        )
        resumed = fit(kind, model, cfg, train_features, evaluation, checkpoints)
        best = evaluation.best or {}
        with phase("plot, log to MLflow"):
            plot_history(evaluation.history, reports / "training_curves.png", f"{task} ({cfg.kind})")
            run.log_metrics({f"best_{k}": v for k, v in best.items() if k.startswith("dev_")})
            run.log_metrics({"best_epoch": best.get("epoch", 0), "train_records": len(train_records),
                             "resumed_epochs": resumed, "epochs_trained": len(evaluation.history)})
            run.log_artifacts([reports / "history.json", reports / "training_curves.png"], "training")
        bundle.write_meta(
            work_dir,
            {
                "task": task,
                "labels": labels,
                "model_type": files.model_type,
                "lowercase": files.lowercase,
                "backbone": cfg.backbone,
                "precision": precision,
                "config": cfg.model_dump(),
                "best": best,
            },
        )
        bundle.write_run(work_dir, run.reference())
        # not cached by DVC (cache: false), which keeps DVC's run cache from restoring a training without a run
        write_json(reports / "mlflow_run.json", run.record())
        # inside the run: an interruption up to here leaves the run KILLED, never FINISHED without a model
        if final_dir.exists():
            shutil.rmtree(final_dir)
        os.replace(work_dir, final_dir)
        checkpoints.clear()
    return best


if __name__ == "__main__":
    from pipeline.stages.cli import run_stage

    run_stage("Fine-tune one task's model.", "task", train)

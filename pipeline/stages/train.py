"""Train stage: fine-tune a task's model on its prepared data, once per seed, keeping the best dev checkpoint.

``python -m pipeline.stages.train <task>`` trains each seed of the task (``seeds``, else ``seed``)
into ``models/seeds/<task>/<seed>/`` (a bundle of one training; a seed whose training is unchanged,
same params, data, backbone and code, is kept, not trained again), then publishes the seed with the
best dev score as the task's bundle ``models/tasks/<task>/``, with its per-epoch history
``reports/<task>/history.json`` (+ ``training_curves.png``). Each seed's params and per-epoch
metrics go to its MLflow run; with several seeds these runs are nested under one parent run of the
task and configuration, which the evaluate stage gives the aggregates.

With ``tokenizer.extend_vocab`` the frequent out-of-vocabulary units of the training records take free
``[unusedN]`` slots (:mod:`pipeline.text.vocab_extension`): the extended vocabulary
(``models/seeds/<task>/vocab.extended.txt``, recorded in ``vocab_extension.json``) encodes the data and is
the ``vocab.txt`` of every seed's bundle, so prediction maps the new units the same way; the bundle's
``task.json`` and the MLflow run (metrics ``vocab_extension.*``, artifact ``tokenizer/``) record it.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config.schema import Params, TaskConfig
from pipeline.config.paths import backbone_dir, prepared_dir, reports_dir, seeds_dir, task_model_dir

if TYPE_CHECKING:
    from pipeline.training.distribution import Placement

GROUP = "group.json"  # in models/seeds/<task>/: the parent MLflow run of this configuration's seeds
#: in models/seeds/<task>/ with ``tokenizer.extend_vocab``: the backbone's vocabulary with the added units
#: (each seed's bundle holds a copy) and the record of the extension
EXTENDED_VOCAB = "vocab.extended.txt"
EXTENSION = "vocab_extension.json"


def train(params: Params, task: str) -> dict:
    """Fine-tune every seed of one task; publish the best; return its best dev row."""
    from pipeline.runtime import stage_timing
    from pipeline.runtime.stage_timing import phase

    with phase("import TensorFlow, bert4keras, MLflow"):
        from pipeline.runtime import tf_runtime
        from pipeline.tracking.run import task_run
    from pipeline.serving import bundle
    from pipeline.runtime import interrupts
    from pipeline.backbone.manifest import MANIFEST, read_manifest, weight_files
    from pipeline.kinds.factory import build_kind
    from pipeline.reporting.files import read_json, read_jsonl, write_json
    from pipeline.reporting.spread import spread
    from pipeline.text.tokenization import build_tokenizer
    from pipeline.text.vocab_extension import extension_for, write_extended_vocab
    from pipeline.training.checkpoints import fingerprint
    from pipeline.training.distribution import fingerprint_tokens, place
    from pipeline.data.splits import subsample
    from pipeline.training.trainer import encode_all
    from pipeline.config.errors import ConfigError
    from pipeline.config.paths import PROJECT_ROOT

    cfg = params.task(task)
    placement = place(cfg.distribute)  # before TensorFlow runs anything (logical devices, a cluster)
    root = placement.output_root(PROJECT_ROOT)
    stage_timing.write_under(root)
    kind = build_kind(cfg)
    files = read_manifest(backbone_dir(cfg.backbone))
    data = prepared_dir(task)
    train_records = subsample(read_jsonl(data / "train.jsonl"), cfg.max_train_samples, cfg.seed)
    dev_records = read_jsonl(data / "dev.jsonl")[: cfg.max_dev_samples]
    labels = kind.label_space(train_records, cfg)
    seeds = cfg.training_seeds
    print(f"[train] {task}: {len(train_records)} train / {len(dev_records)} dev records, {len(labels)} labels"
          + (f", seeds {', '.join(map(str, seeds))}" if len(seeds) > 1 else ""))

    tf_runtime.set_seed(cfg.seed)
    precision, why = tf_runtime.set_precision(cfg.precision)
    print(f"[train] {task}: precision {precision} ({why}); training on {placement.describe()}", flush=True)
    store = seeds_dir(task, root)
    store.mkdir(parents=True, exist_ok=True)
    vocab, extension = Path(files.vocab), None
    if (plan := extension_for(cfg, train_records, files.vocab, files.lowercase)) is not None:
        vocab = store / EXTENDED_VOCAB
        extension = {**plan.summary(), "units": write_extended_vocab(files.vocab, plan, vocab)}
        write_json(store / EXTENSION, extension)
        print(f"[train] {task}: {plan.describe()}", flush=True)
    else:  # an earlier configuration's
        for name in (EXTENDED_VOCAB, EXTENSION):
            (store / name).unlink(missing_ok=True)
    with phase("tokenize"):
        tokenizer = build_tokenizer(cfg.language, vocab, files.lowercase)
        train_features = encode_all(kind, train_records, tokenizer, labels, cfg.maxlen, "train")
        dev_features = encode_all(kind, dev_records, tokenizer, labels, cfg.maxlen, "dev")
    interrupts.reached("loaded")

    inputs = [data / "train.jsonl", data / "dev.jsonl", files.config, backbone_dir(cfg.backbone) / MANIFEST,
              *weight_files(files)]
    for stale in store.iterdir():  # seeds no longer asked for, and trainings cut short
        if stale.is_dir() and stale.name not in {str(seed) for seed in seeds}:
            shutil.rmtree(stale)
    if placement.workers > 1 and not placement.all_agree(fingerprint_tokens(fingerprint(cfg, labels, inputs,
                                                                                        precision=precision))):
        raise ConfigError(f"tasks.{task}.distribute: the workers of this multi_worker training differ in params, "
                          "data, backbone, code or resolved precision (their training fingerprints differ); hint: "
                          "run the same commit with the same data on every worker, and set 'precision' explicitly "
                          "when their hardware differs")
    parent = None
    if len(seeds) > 1 and placement.chief:
        parent = group_run(params, task, fingerprint(cfg.model_copy(update={"seeds": None}), labels, inputs), store)
    job = SeedTraining(params, task, kind, files, labels, precision, train_records, dev_records, train_features,
                       dev_features, parent, vocab, extension, placement)
    trained = {}
    for seed in seeds:
        seed_cfg = cfg.for_seed(seed)
        key = fingerprint(seed_cfg, labels, inputs, precision=precision)
        folder = store / str(seed)
        kept = folder.is_dir() and read_json(folder / bundle.META).get("fingerprint") == key
        if placement.all_agree([int(kept)]) and kept:  # every worker keeps it, or every worker trains it
            print(f"[train] {task}: seed {seed} already trained with these params, data and code: kept", flush=True)
            job.adopt(folder)
        else:
            job.run(seed_cfg, key, folder)
        trained[seed] = bundle.read_bundle(folder)

    metric = kind.selection_metric(cfg)
    chosen = max(seeds, key=lambda s: (dev_score(trained[s].meta, metric), -seeds.index(s)))
    publish(task, trained, chosen, parent, metric, root)
    if parent is not None:
        with task_run(params, task, parent, group=True) as run:
            run.log_metrics({f"dev_{metric}": spread([dev_score(trained[s].meta, metric) for s in seeds])})
            run.set_tags({"seed_group": ",".join(map(str, seeds)), "chosen_seed": str(chosen)})
    write_json(reports_dir(task, root) / "mlflow_run.json", {
        **read_json(trained[chosen].directory / "mlflow_run.json"),
        **({"parent": parent, "seeds": {str(s): trained[s].run_reference() for s in seeds}} if parent else {}),
    })
    return trained[chosen].meta.get("best", {})


def dev_score(meta: dict, metric: str) -> float:
    """The best dev value of ``metric`` a bundle's training reached (-inf when it has none)."""
    value = meta.get("best", {}).get(f"dev_{metric}")
    return -math.inf if value is None else float(value)


def group_run(params: Params, task: str, key: str, store: Path) -> dict:
    """The parent MLflow run of this task's configuration (its params without ``seeds``): the one
    recorded in ``store`` when the configuration is the same, else a new one."""
    from pipeline.reporting.files import read_json, write_json
    from pipeline.tracking.run import task_run

    recorded = read_json(store / GROUP) if (store / GROUP).is_file() else {}
    if recorded.get("fingerprint") == key:
        return recorded["run"]
    with task_run(params, task, group=True) as run:
        reference = run.reference()
    write_json(store / GROUP, {"fingerprint": key, "run": reference})
    return reference


def publish(task: str, trained: dict[int, Any], chosen: int, parent: dict | None, metric: str,
            root: Path | None = None) -> None:
    """Copy the chosen seed's bundle to ``models/tasks/<task>`` (atomically) with what the evaluate
    stage needs of the group, and its history and curves to ``reports/<task>`` (under ``root``: the
    project's, or a worker's own)."""
    from pipeline.config.paths import PROJECT_ROOT
    from pipeline.serving import bundle

    root = root or PROJECT_ROOT
    final = task_model_dir(task, root)
    work = final.with_name(final.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(trained[chosen].directory, work)
    meta = dict(trained[chosen].meta)
    if parent is not None:
        meta["seed_group"] = {"parent": parent, "chosen": chosen, "metric": metric,
                              "seeds": {str(seed): {"dev": dev_score(b.meta, metric)} for seed, b in trained.items()}}
    bundle.write_meta(work, meta)
    reports = reports_dir(task, root)
    reports.mkdir(parents=True, exist_ok=True)
    for name in ("history.json", "training_curves.png"):
        shutil.copyfile(work / name, reports / name)
    if final.exists():
        shutil.rmtree(final)
    os.replace(work, final)


class SeedTraining:
    """Trains one seed of a task into its own bundle and MLflow run (what the train stage did for a
    task before seeds): resumable per epoch, the run KILLED on an interruption."""

    def __init__(self, params: Params, task: str, kind: Any, files: Any, labels: list[str], precision: str,
                 train_records: list[dict], dev_records: list[dict], train_features: list, dev_features: list,
                 parent: dict | None, vocab: Path | None = None, extension: dict | None = None,
                 placement: "Placement | None" = None) -> None:
        from pipeline.training.distribution import Placement

        self.params, self.task, self.kind, self.files, self.labels = params, task, kind, files, labels
        self.precision, self.parent = precision, parent
        #: the vocabulary the features were encoded with (the backbone's, or the extended one), copied
        #: into the bundle; the ``tokenizer.extend_vocab`` record (None without it)
        self.vocab, self.extension = Path(vocab or files.vocab), extension
        self.train_records, self.dev_records = train_records, dev_records
        self.train_features, self.dev_features = train_features, dev_features
        #: where the training runs (pipeline.training.distribution); only the chief records to MLflow
        self.placement = placement or Placement()

    def role(self, seed: int) -> dict:
        """The seed's run: the task's own run when it trains one seed, else a child of the group run."""
        if self.parent is None:
            return {}
        return {"seed": seed, "parent_run_id": self.parent.get("run_id")}

    def adopt(self, folder: Path) -> None:
        """Nest a kept seed's run under the group run (a new group for the same seed, e.g. a seed added)."""
        from pipeline.serving.bundle import read_bundle
        from pipeline.tracking.run import task_run

        if self.parent is None or not self.parent.get("run_id"):
            return
        reference = read_bundle(folder).run_reference()
        if reference.get("run_id"):
            with task_run(self.params, self.task, reference) as run:
                run.set_tags({"mlflow.parentRunId": self.parent["run_id"]})

    def run(self, cfg: TaskConfig, key: str, folder: Path) -> None:
        from pipeline.runtime import interrupts, tf_runtime
        from pipeline.runtime.stage_timing import phase
        from pipeline.data_health.report import health_metrics
        from pipeline.reporting.files import read_json, write_json
        from pipeline.reporting.plots import plot_history
        from pipeline.serving import bundle
        from pipeline.config.paths import PROJECT_ROOT
        from pipeline.tracking.run import mark_killed, silent_run, task_run
        from pipeline.training.checkpoints import TrainingCheckpoints, checkpoint_dir
        from pipeline.training.modeling import build_task_model
        from pipeline.training.trainer import DevEvaluation, fit

        task, kind, files, labels = self.task, self.kind, self.files, self.labels
        tf_runtime.set_seed(cfg.seed)
        placement = self.placement
        with phase("build model, load backbone"), placement.scope():
            model = build_task_model(kind, files.config, files.checkpoint, files.model_type, labels, cfg)
        work_dir = folder.with_name(f".{folder.name}.partial")
        bundle.start_bundle(work_dir, files.config, self.vocab)
        checkpoints = TrainingCheckpoints(checkpoint_dir(task, placement.output_root(PROJECT_ROOT)), key)
        previous = checkpoints.previous_attempt()
        if previous and placement.chief and mark_killed(self.params, previous):
            print(f"[train] {task}: the interrupted attempt's run is marked KILLED", flush=True)
        health = reports_dir(task) / "data_health.json"
        title = f"{task} ({cfg.kind})" + (f", seed {cfg.seed}" if self.parent else "")

        with (task_run if placement.chief else silent_run)(self.params, task, **self.role(cfg.seed)) as run:
            checkpoints.record_attempt(run.reference())
            run.set_tags({"precision": self.precision, "distribute": placement.describe()})
            if previous:
                run.set_tags({"resumed_from_run": previous.get("run_id") or previous.get("outbox") or ""})
            if health.is_file():
                run.log_metrics(health_metrics(read_json(health)))
                run.log_artifacts([health], "data")
            if self.extension is not None:
                run.log_metrics({f"vocab_extension.{name}": self.extension[name]
                                 for name in ("added", "candidates", "wanted", "free_slots")})
                run.log_artifacts([folder.parent / EXTENSION], "tokenizer")

            def record_epoch(row: dict) -> None:
                run.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])
                write_json(work_dir / "history.json", evaluation.history)
                checkpoints.record_attempt(run.reference())

            evaluation = DevEvaluation(
                kind, self.dev_records, self.dev_features, labels, cfg.batch_size, work_dir / bundle.WEIGHTS,
                record_epoch, metric=kind.selection_metric(cfg),
            )
            resumed = fit(kind, model, cfg, self.train_features, evaluation, checkpoints, placement)
            best = evaluation.best or {}
            with phase("plot, log to MLflow"):
                write_json(work_dir / "history.json", evaluation.history)
                plot_history(evaluation.history, work_dir / "training_curves.png", title)
                run.log_metrics({f"best_{k}": v for k, v in best.items() if k.startswith("dev_")})
                run.log_metrics({"best_epoch": best.get("epoch", 0), "train_records": len(self.train_records),
                                 "resumed_epochs": resumed, "epochs_trained": len(evaluation.history)})
                run.log_artifacts([work_dir / "history.json", work_dir / "training_curves.png"], "training")
            bundle.write_meta(work_dir, {
                "task": task, "labels": labels, "model_type": files.model_type, "lowercase": files.lowercase,
                "backbone": cfg.backbone, "precision": self.precision, "config": cfg.model_dump(), "best": best,
                "fingerprint": key, **({"vocab_extension": self.extension} if self.extension is not None else {}),
            })
            bundle.write_run(work_dir, run.reference())
            # the task's mlflow_run.json is written from this once the seeds are done (train())
            write_json(work_dir / "mlflow_run.json", run.record())
            # inside the run: an interruption up to here leaves the run KILLED, never FINISHED without a model
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(work_dir, folder)
            checkpoints.clear()
        interrupts.reached("seed_trained")


if __name__ == "__main__":
    from pipeline.stages.cli import run_stage

    run_stage("Fine-tune one task's model.", "task", train)

"""Pretrain stage: continue masked-LM training of a backbone on in-domain text; the result is a backbone.

``python -m pipeline.stages.pretrain <name>`` reads ``pretraining.<name>`` (pipeline/config/pretraining.py),
builds its corpus (the training texts of ``corpus.tasks``, never their dev or test texts, and the lines of
``corpus.files``; blanks and duplicates dropped and counted; a seeded share held out), masks it as BERT
does (15%: 80% [MASK], 10% a random token, 10% unchanged; per token or per whole word) and trains
the source backbone with its MLM head for ``steps`` steps. It writes:

* ``models/backbones/<name>/``: a backbone in the format of every other (``backbone.json``, Google config
  and checkpoint, vocabulary; the MLM head included, so a later pretraining continues it), with
  ``pretraining.json`` (corpus counts, steps, held-out perplexity before and after, the fingerprint);
* ``reports/pretraining/<name>/``: ``history.json`` (per block: loss, masked-token accuracy, held-out
  loss, perplexity and accuracy), ``curves.png`` and ``corpus.json``;
* its own MLflow run (tags ``pretraining``, ``kind: masked_lm``) with the same figures per block.

Resumable: a block's state goes to ``models/checkpoints/pretraining/<name>/``, and a killed run resumes
after its last complete block. Kept: the output is a persistent DVC output holding the fingerprint of
everything that shapes it (the entry, the corpus, the source backbone, the code), so a re-run whose
fingerprint is unchanged (another task's params edited, say) keeps the backbone instead of training again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

from pipeline.backbone.manifest import BackboneFiles, read_manifest, weight_files
from pipeline.config.paths import PROJECT_ROOT, backbone_dir, prepared_dir
from pipeline.config.pretraining import PretrainingConfig
from pipeline.config.schema import Params

logger = logging.getLogger(__name__)

PRETRAINING_JSON = "pretraining.json"
PRESET = "pretraining"


def reports_of(name: str, root: Path = PROJECT_ROOT) -> Path:
    """``reports/pretraining/<name>``."""
    return root / "reports" / "pretraining" / name


def checkpoints_of(name: str, root: Path = PROJECT_ROOT) -> Path:
    """``models/checkpoints/pretraining/<name>``: the block state of a run in progress."""
    return root / "models" / "checkpoints" / "pretraining" / name


def read_corpus(cfg: PretrainingConfig, root: Path = PROJECT_ROOT):
    """The entry's corpus (:class:`pipeline.pretraining.corpus.Corpus`)."""
    from pipeline.pretraining.corpus import build_corpus, file_texts, task_texts

    sources = [(f"task:{task}", task_texts(prepared_dir(task, root))) for task in cfg.corpus.tasks]
    sources += [(f"file:{file}", file_texts(root / file)) for file in cfg.corpus.files]
    return build_corpus(sources, cfg.heldout_fraction, cfg.seed)


def fingerprint(cfg: PretrainingConfig, texts: list[str], files: BackboneFiles) -> str:
    """A hash of the entry, the corpus, the source backbone's files (config, vocabulary, weights, wherever
    they live: a ``path`` backbone's are outside the project) and the stage's code."""
    from pipeline.runtime.code_closure import code_digest, stage_code

    digest = hashlib.sha256(json.dumps(cfg.dump(), sort_keys=True).encode())
    digest.update(code_digest(stage_code("pretrain")).encode())
    for text in texts:
        digest.update(text.encode() + b"\0")
    for path in [files.config, files.vocab, *weight_files(files)]:
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def pretrain(params: Params, name: str) -> dict:
    """Run ``pretraining.<name>`` (or keep its unchanged output); return its summary."""
    cfg = params.pretraining[name]
    corpus = read_corpus(cfg)
    source = backbone_dir(cfg.source)
    print(f"[pretrain] {name}: corpus {corpus.stats['train']} documents, {corpus.stats['heldout']} held out "
          f"({corpus.stats['duplicates']} duplicates and {corpus.stats['blank']} blank lines dropped)", flush=True)
    files = read_manifest(source)
    key = fingerprint(cfg, corpus.train + ["\0heldout"] + corpus.heldout, files)
    kept_file = backbone_dir(name) / PRETRAINING_JSON
    kept = json.loads(kept_file.read_text(encoding="utf-8")) if kept_file.is_file() else {}
    if kept.get("fingerprint") == key:
        print(f"[pretrain] {name}: unchanged (same entry, corpus, source backbone and code): kept", flush=True)
        return kept
    return _train(params, name, cfg, corpus, files, key)


def _train(params: Params, name: str, cfg: PretrainingConfig, corpus, files, key: str) -> dict:
    from tqdm import tqdm

    from pipeline.runtime.stage_timing import phase

    with phase("import TensorFlow, bert4keras, MLflow"):
        from pipeline.runtime import tf_runtime
        from pipeline.pretraining.encoding import encode_corpus, random_ids
        from pipeline.pretraining.loop import BlockCheckpoints, StepBatches, heldout_batches, pretrain as run_blocks
        from pipeline.pretraining.masking import MaskingRule
        from pipeline.pretraining.mlm import NO_DECAY, build_mlm_model
        from pipeline.pretraining.tracking import PretrainingRun
        from pipeline.reporting.files import write_json
        from pipeline.text.tokenization import build_tokenizer
        from pipeline.tracking.run import mark_killed, task_run
        from pipeline.training.optimizer import build_optimizer

    tf_runtime.set_seed(cfg.seed)
    precision, why = tf_runtime.set_precision(cfg.precision)
    print(f"[pretrain] {name}: precision {precision} ({why})", flush=True)
    tokenizer = build_tokenizer(cfg.language, files.vocab, files.lowercase)
    with phase("tokenize"):
        train = encode_corpus(corpus.train, tokenizer, cfg.maxlen, cfg.language, cfg.masking.whole_word)
        heldout = encode_corpus(corpus.heldout, tokenizer, cfg.maxlen, cfg.language, cfg.masking.whole_word)
    rule = MaskingRule(rate=cfg.masking.rate)
    mask_id, choices = tokenizer.token_to_id("[MASK]"), random_ids(files.vocab)
    batches = StepBatches(train, cfg.batch_size, cfg.seed, rule, mask_id, choices)
    held = heldout_batches(StepBatches(heldout, cfg.batch_size, cfg.seed, rule, mask_id, choices), cfg.seed)
    with phase("build model, load weights"):
        model, bert, fresh = build_mlm_model(files.config, files.checkpoint, files.model_type)
    if fresh:
        print(f"[pretrain] {name}: {cfg.source} has no MLM head ({', '.join(fresh)}): it starts fresh", flush=True)
    optimizer = build_optimizer(cfg.learning_rate, cfg.weight_decay, cfg.steps, cfg.warmup_proportion,
                                no_decay=NO_DECAY)
    checkpoints = BlockCheckpoints(checkpoints_of(name), key)
    reports = reports_of(name)
    reports.mkdir(parents=True, exist_ok=True)
    write_json(reports / "corpus.json", corpus.stats)
    # an attempt killed outright: its run is marked KILLED, and continued only when its blocks are resumed
    attempt = checkpoints.directory / "attempt.json"
    previous = json.loads(attempt.read_text(encoding="utf-8")) if attempt.is_file() else None
    if previous:
        mark_killed(params, previous)
    resume = previous if checkpoints.state() is not None else None
    with task_run(params, name, resume=resume, run_class=PretrainingRun) as run:
        write_json(attempt, run.reference())
        run.log_metrics({f"corpus.{k.replace(':', '.')}": v for k, v in corpus.stats.items()})
        run.set_tags({"head_started_fresh": str(bool(fresh)).lower()})

        def on_block(row: dict) -> None:
            run.log_metrics({k: v for k, v in row.items() if k != "step"}, step=row["step"])
            write_json(attempt, run.reference())  # it changes when the run goes to the outbox

        with phase("pretrain: steps"), tqdm(total=cfg.steps, desc=f"pretrain {name}", unit="step",
                                             mininterval=5, dynamic_ncols=True) as progress:
            history = run_blocks(model, optimizer, batches, held, cfg.steps, cfg.log_every, checkpoints,
                                 on_block, progress)
        summary = {
            "name": name, "source": cfg.source, "steps": cfg.steps, "precision": precision,
            "head_started_fresh": fresh, "corpus": corpus.stats,
            "heldout_perplexity": {"before": history[0]["heldout_perplexity"], "after": history[-1]["heldout_perplexity"]},
            "seconds": round(sum(row["seconds"] for row in history), 1), "fingerprint": key,
        }
        with phase("write the backbone"):
            _write_backbone(name, bert, files, summary)
        write_json(reports / "history.json", history)
        _plot(history, reports / "curves.png", f"continued pretraining: {name}")
        run.log_artifacts([reports / "history.json", reports / "curves.png", reports / "corpus.json"])
        run.log_metrics({"seconds": summary["seconds"]})
    checkpoints.clear()
    print(f"[pretrain] {name}: held-out perplexity {summary['heldout_perplexity']['before']:.1f} -> "
          f"{summary['heldout_perplexity']['after']:.1f} after {cfg.steps} steps", flush=True)
    return summary


def _write_backbone(name: str, bert, files, summary: dict) -> None:
    """The source checkpoint's arrays, those the model trained replaced, as ``models/backbones/<name>``."""
    from pipeline.backbone.checkpoint import staged_dir, write_tf_checkpoint
    from pipeline.backbone.manifest import BackboneFiles, write_manifest
    from pipeline.pretraining.mlm import checkpoint_arrays
    from pipeline.runtime.tf_runtime import tf

    reader = tf.train.load_checkpoint(str(files.checkpoint))
    arrays = {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()}
    arrays.update(checkpoint_arrays(bert))
    with staged_dir(backbone_dir(name)) as stage:
        shutil.copyfile(files.config, stage / "bert_config.json")
        shutil.copyfile(files.vocab, stage / "vocab.txt")
        write_tf_checkpoint(arrays, stage / "bert_model.ckpt")
        (stage / PRETRAINING_JSON).write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        write_manifest(stage, BackboneFiles(files.model_type, stage / "bert_config.json", stage / "bert_model.ckpt",
                                            stage / "vocab.txt", files.lowercase, PRESET))


def _plot(history: list[dict], path: Path, title: str) -> Path:
    """Training loss and held-out perplexity per step."""
    from pipeline.reporting.plots import plot_curves

    trained = [row for row in history if "loss" in row]
    return plot_curves(path, title, "step", {
        "masked-LM loss": {"train": ([r["step"] for r in trained], [r["loss"] for r in trained]),
                           "held-out": ([r["step"] for r in history], [r["heldout_loss"] for r in history])},
        "masked-token accuracy": {"train": ([r["step"] for r in trained], [r["accuracy"] for r in trained]),
                                  "held-out": ([r["step"] for r in history], [r["heldout_accuracy"] for r in history])},
    })


if __name__ == "__main__":
    from pipeline.stages.cli import run_stage

    run_stage("Continue masked-LM pretraining of a backbone on in-domain text.", "pretraining", pretrain)

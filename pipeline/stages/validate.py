"""Validate stage: the health of a task's prepared data, before any training.

``python -m pipeline.stages.validate <task>`` reads ``data/prepared/<task>/`` and writes
``reports/<task>/data_health.json``; fatal problems stop it (exit status 2) with
``error: <file>:<line>: field '<field>': <what>``, or, for a split without records,
``error: <file>: split '<split>' of task '<task>' is empty (...); hint: ...``. The report::

    {"task", "kind", "language", "maxlen", "tokenizer", "label_field",   # label | entity type | query type | predicate
     "splits": {"train" | "dev" | "test": {
         "examples": int,
         "labels": {label: count},                       # classes, entity types, query types or predicates
         "empty_texts": {"skipped_by_reader": int, "in_prepared_data": int},
         "reader_skips": {reason: count},                # summary.json "skipped" (rows skipped, repaired, merged)
         "bio_repairs": {"i_without_b": int, "type_change": int},
         "encoding_problems": {"texts": int, "by_kind": {kind: count}, "example_ids": [...]},
         "duplicates": {"same_input", "exact", "conflicting_inputs", "conflicting_examples": int,
                        "example_ids": [...], "conflicting_ids": [[...]]},
         "truncation": {"maxlen", "texts": int, "share": float, "example_ids": [...],
                        # kinds with labelled spans:
                        "unit": "entities" | "answers" | "triples", "units": int, "units_lost": int, "lost_ids": [...]},
         "tokens": {"tokens", "space_placeholders", "unknown": int, "space_share", "unknown_share": float,
                    "most_spaced_ids": [...]},     # input tokens of the task's tokenizer ([unused1], [UNK])
         "unseen_labels": {label: count},                # dev and test only: labels train never has
         # with tokenizer.extend_vocab: [UNK] among the input tokens before / after the extension
         "vocab_extension": {"unknown_before", "unknown_after", "tokens_before", "tokens_after": int,
                             "unknown_share_before", "unknown_share_after": float}}},
     # with tokenizer.extend_vocab: the units the train stage adds (computed from its training records)
     "vocab_extension": {"min_count", "max_new", "candidates", "wanted", "free_slots", "added": int,
                         "note": str | null,                       # fewer free [unusedN] slots than wanted
                         "units": {unit: {"id", "count"}}},        # the first 20, most frequent first
     "overlap": {"dev_in_train" | "test_in_train" | "test_in_dev": {
         "examples", "distinct_inputs", "conflicting_labels": int, "example_ids": [...], "conflicting_ids": [...]}},
     "dedupe": {"mode", "found_before_dedupe": {"exact_duplicates": {split: int}, "overlap": {pair: int}},
                "removed": {split: {reason: int}}, "removed_ids": {split: [...]}},
     "notes": [...], "warnings": [sentence, ...], "fatal": [message, ...]}

Besides bad records, signs of a misread file are fatal (``pipeline.data_health.misread``): whitespace
placeholders above ``data.max_space_share`` of all tokens, labels holding a quote or the delimiter,
many once-only train labels (``data.allow_suspicious_labels`` accepts the last two).
"""

from __future__ import annotations

import json

from pipeline.config.paths import PROJECT_ROOT
from pipeline.config.schema import Params
from pipeline.config.paths import backbone_dir, prepared_dir, reports_dir
from pipeline.data.readers import SPLITS

REPORT = "data_health.json"


def validate(params: Params, task: str) -> dict:
    """Check one task's prepared data; write and return its report (a DataError on fatal problems)."""
    from pipeline.backbone.manifest import read_manifest
    from pipeline.data.splits import subsample
    from pipeline.data_health.report import add_vocab_extension, build_health, summary_lines
    from pipeline.data_health.fatal import Locator, empty_splits, find_problems, raise_fatal, read_records
    from pipeline.data_health.misread import misread_problems
    from pipeline.data_health.tokens import count_for, extended_count
    from pipeline.data_health.truncation import measure_for
    from pipeline.tracking.redaction import portable_path
    from pipeline.reporting.files import write_json
    from pipeline.text.vocab_extension import extension_for

    cfg = params.task(task)
    data = prepared_dir(task)
    out = reports_dir(task) / REPORT
    summary = json.loads((data / "summary.json").read_text(encoding="utf-8"))
    splits = {split: read_records(data / f"{split}.jsonl") for split in SPLITS}
    problems = find_problems(splits, cfg.kind)
    messages = empty_splits(params, task, splits, summary)
    messages += [Locator.for_task(params, task).message(problem) for problem in problems]
    if messages:
        write_json(out, {"task": task, "kind": cfg.kind, "warnings": [], "fatal": messages})
        raise_fatal(messages, out)
    files = read_manifest(backbone_dir(cfg.backbone))
    measure, tokenizer = measure_for(cfg.language, files.vocab, files.lowercase)
    tokenizer = tokenizer.replace(str(files.vocab), portable_path(files.vocab))  # no path of this machine
    count = count_for(cfg.language, files.vocab, files.lowercase)
    health = build_health(task, cfg, splits, summary, measure, tokenizer, count)
    # tokenizer.extend_vocab: what the train stage adds, from the records it trains on
    trained_on = subsample(splits["train"], cfg.max_train_samples, cfg.seed)
    if (extension := extension_for(cfg, trained_on, files.vocab, files.lowercase)) is not None:
        add_vocab_extension(health, extension, splits,
                            extended_count(cfg.language, files.vocab, files.lowercase, extension))
    locator = Locator.for_task(params, task)
    health["fatal"] = [locator.message(problem) for problem in misread_problems(splits, health, cfg.data, task)]
    write_json(out, health)
    if health["fatal"]:
        raise_fatal(health["fatal"], out)
    shown = out.relative_to(PROJECT_ROOT) if out.is_relative_to(PROJECT_ROOT) else out
    print("\n".join(summary_lines(health, str(shown))))
    return health


if __name__ == "__main__":
    from pipeline.stages.cli import run_stage

    run_stage("Check a task's prepared data and write reports/<task>/data_health.json.", "task", validate)

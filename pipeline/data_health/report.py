"""The data-health report of a task's prepared splits, its warnings, flat metrics and a short summary."""

from __future__ import annotations

import re
from collections import Counter
from typing import Callable, Sequence

from pipeline.config.schema import TaskConfig
from pipeline.data_health import duplicates
from pipeline.data_health.records import labels_of, unit_of
from pipeline.kinds import kind_spec
from pipeline.data_health.tokens import WARN_SPACE_SHARE, WARN_UNKNOWN_SHARE, TokenCount, token_shares
from pipeline.data_health.truncation import KeptChars, truncation
from pipeline.text.tokenization import SPACE_TOKEN
from pipeline.text.vocab_extension import VocabExtension
from pipeline.data.readers.base import INPUT_FIELDS, duplicate_counts
from pipeline.text.spans import I_WITHOUT_B, TYPE_CHANGE

#: characters that betray an encoding problem (invalid UTF-8 itself stops the prepare stage)
ENCODING_SUSPECTS: dict[str, str] = {
    "replacement character U+FFFD": "\ufffd",
    "control character": "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f",
    "byte-order mark inside a text": "\ufeff",
    "zero-width character": "\u200b-\u200d\u2060",
    "private-use character": "\ue000-\uf8ff\U000f0000-\U0010ffff",
    "lone surrogate": "\ud800-\udfff",
}
_SUSPECT = {name: re.compile(f"[{chars}]") for name, chars in ENCODING_SUSPECTS.items()}
_ANY_SUSPECT = re.compile(f"[{''.join(ENCODING_SUSPECTS.values())}]")

#: the conll reader's skip reasons for repaired BIO
BIO_REPAIRS = {"i_without_b": f"repaired BIO: {I_WITHOUT_B}", "type_change": f"repaired BIO: {TYPE_CHANGE}"}

NOTES = [
    "Fatal problems stop the DAG with file:line: field: invalid UTF-8 and malformed rows stop the prepare "
    "stage; a split without records and bad prepared records (missing fields, bad labels, spans out of "
    "range or not matching their text) stop this stage and are listed under 'fatal'.",
    "Duplicates and overlap compare the exact query/text/text_b strings of the prepared records "
    "(the readers strip surrounding whitespace).",
]
MAX_IDS = 5
#: added units listed in the report (the bundle's task.json lists them all)
MAX_UNITS = 20


def build_health(
    task: str, cfg: TaskConfig, splits: dict[str, list[dict]], summary: dict, measure: KeptChars, tokenizer: str,
    count: TokenCount | None = None,
) -> dict:
    """The report of ``reports/<task>/data_health.json`` (see the stage's docstring for its schema)."""
    train_labels = {label for record in splits["train"] for label in labels_of(record, cfg.kind)}
    health = {
        "task": task,
        "kind": cfg.kind,
        "language": cfg.language,
        "maxlen": cfg.maxlen,
        "tokenizer": tokenizer,
        "label_field": kind_spec(cfg.kind).label_field,
        "splits": {
            split: split_health(records, summary.get("skipped", {}).get(split, {}), measure, cfg.maxlen, cfg.kind, count)
            for split, records in splits.items()
        },
        "overlap": duplicates.across(splits),
        "dedupe": dedupe_section(cfg.data.dedupe, summary, splits),
        "notes": NOTES,
        "fatal": [],
    }
    for split in ("dev", "test"):
        health["splits"][split]["unseen_labels"] = unseen_labels(splits[split], train_labels, cfg.kind)
    health["warnings"] = warnings(health)
    return health


def split_health(
    records: Sequence[dict], skipped: dict[str, int], measure: KeptChars, maxlen: int, kind: str,
    count: TokenCount | None = None,
) -> dict:
    """Counts, reader skips, encoding problems, duplicates, truncation and (with ``count``) the token
    shares of one split."""
    labels = Counter(label for record in records for label in labels_of(record, kind))
    blank = sum(any(_is_blank(record.get(field)) for field in INPUT_FIELDS) for record in records)
    part = {
        "examples": len(records),
        "labels": dict(sorted(labels.items())),
        "empty_texts": {"skipped_by_reader": skipped.get("empty text", 0), "in_prepared_data": blank},
        "reader_skips": dict(skipped),
        "bio_repairs": {name: skipped.get(reason, 0) for name, reason in BIO_REPAIRS.items()},
        "encoding_problems": encoding_problems(records),
        "duplicates": duplicates.within(records),
        "truncation": truncation(records, measure, maxlen, unit_of(kind)),
    }
    if count is not None:
        part["tokens"] = token_shares(records, count)
    return part


def encoding_problems(records: Sequence[dict]) -> dict:
    """Texts holding characters that betray an encoding problem, by kind of character."""
    kinds: Counter = Counter()
    ids = []
    for record in records:
        texts = [record[f] for f in INPUT_FIELDS if isinstance(record.get(f), str) and _ANY_SUSPECT.search(record[f])]
        if texts:
            ids.append(record["id"])
            kinds.update(name for name, pattern in _SUSPECT.items() if any(pattern.search(t) for t in texts))
    return {"texts": len(ids), "by_kind": dict(kinds), "example_ids": ids[:MAX_IDS]}


def unseen_labels(records: Sequence[dict], seen: set[str], kind: str) -> dict[str, int]:
    """Labels (entity types, predicates, query types) of ``records`` that training never sees, with counts."""
    counts = Counter(label for record in records for label in labels_of(record, kind) if label not in seen)
    return dict(counts.most_common())


def dedupe_section(mode: str, summary: dict, splits: dict[str, list[dict]]) -> dict:
    """What ``data.dedupe`` found in the data read and removed (the prepare stage's record of it)."""
    done = summary.get("dedupe") or {"mode": "none", "found": duplicate_counts(splits), "removed": {}}
    section = {
        "mode": done["mode"],
        "found_before_dedupe": done["found"],
        "removed": done["removed"],
        "removed_ids": done.get("removed_ids", {}),
    }
    if done["mode"] != mode:
        made = done["mode"]
        section["stale"] = f"data.dedupe is {mode!r} but the prepared data was made with {made!r}: re-run prepare"
    return section


def add_vocab_extension(health: dict, extension: VocabExtension, splits: dict[str, list[dict]], count: TokenCount) -> None:
    """Add what ``tokenizer.extend_vocab`` would add (computed from train as the train stage does) and each
    split's ``[UNK]`` share before (its ``tokens`` section: ``health`` was built with a count) and after it
    (``count``: the tokenizer on the extended vocabulary); the warnings are recomputed."""
    summary = extension.summary()
    health["vocab_extension"] = {
        **{key: value for key, value in summary.items() if key not in ("units", "counts")},
        "units": {unit: {"id": i, "count": extension.counts[unit]} for unit, i in list(extension.units.items())[:MAX_UNITS]},
    }
    for split, records in splits.items():
        part = health["splits"][split]
        before = part["tokens"]
        after = token_shares(records, count)
        part["vocab_extension"] = {
            "unknown_before": before["unknown"], "unknown_after": after["unknown"],
            "unknown_share_before": before["unknown_share"], "unknown_share_after": after["unknown_share"],
            "tokens_before": before["tokens"], "tokens_after": after["tokens"],
        }
    health["warnings"] = warnings(health)


# --- warnings, metrics, summary -----------------------------------------------------------------------


def warnings(health: dict) -> list[str]:
    """One sentence per tolerable problem found."""
    found = [text for split, part in health["splits"].items() for text in _split_warnings(split, part, health)]
    for pair, shared in health["overlap"].items():
        if shared["examples"]:
            later, _, earlier = pair.partition("_in_")
            n = health["splits"][later]["examples"]
            found.append(
                f"{later}: {shared['examples']} of {n} examples ({_pct(shared['examples'], n)}) have an input that "
                f"also occurs in {earlier} ({shared['distinct_inputs']} distinct inputs, "
                f"{shared['conflicting_labels']} with other labels there), e.g. {_ids(shared['example_ids'])}"
            )
    if "stale" in health["dedupe"]:
        found.append(health["dedupe"]["stale"])
    return found


def _split_warnings(split: str, part: dict, health: dict) -> list[str]:
    found = [f"{split}: reader: {reason} ({n})" for reason, n in part["reader_skips"].items()]
    if part["empty_texts"]["in_prepared_data"]:
        found.append(f"{split}: {part['empty_texts']['in_prepared_data']} prepared examples have an empty text")
    if (enc := part["encoding_problems"])["texts"]:
        kinds = ", ".join(f"{name} {n}" for name, n in enc["by_kind"].items())
        ids = _ids(enc["example_ids"])
        found.append(f"{split}: {enc['texts']} texts with suspect characters ({kinds}), e.g. {ids}")
    if (dup := part["duplicates"])["same_input"]:
        found.append(
            f"{split}: {dup['same_input']} examples repeat an earlier input of the split ({dup['exact']} exact "
            f"copies; {dup['conflicting_inputs']} inputs with conflicting labels), e.g. {_ids(dup['example_ids'])}"
        )
    if (cut := part["truncation"])["texts"]:
        lost = f"; {cut['units_lost']} of {cut['units']} {cut['unit']} lie (partly) beyond it" if "unit" in cut else ""
        found.append(
            f"{split}: {cut['texts']} of {part['examples']} inputs ({_pct(cut['texts'], part['examples'])}) are cut "
            f"at maxlen {cut['maxlen']}{lost}"
        )
    if (tokens := part.get("tokens")) and tokens["space_share"] > WARN_SPACE_SHARE:
        found.append(
            f"{split}: {tokens['space_share']:.1%} of the input tokens are whitespace placeholders ({SPACE_TOKEN}), "
            f"e.g. {_ids(tokens['most_spaced_ids'])}"
        )
    if tokens and tokens["unknown_share"] > WARN_UNKNOWN_SHARE:
        after = (f", {ext['unknown_share_after']:.1%} with tokenizer.extend_vocab"
                 if (ext := part.get("vocab_extension")) else "")
        found.append(f"{split}: {tokens['unknown_share']:.1%} of the input tokens are [UNK] (not in the vocabulary)"
                     f"{after}")
    if part.get("unseen_labels"):
        labels = ", ".join(f"{label} ({n})" for label, n in list(part["unseen_labels"].items())[:10])
        found.append(f"{split}: {health['label_field']} values never seen in train: {labels}")
    return found


def health_metrics(health: dict) -> dict[str, float]:
    """Flat numeric figures of a report, for MLflow (``data_health.*``)."""
    metrics: dict[str, float] = {}
    for split, part in health["splits"].items():
        metrics[f"examples.{split}"] = part["examples"]
        metrics[f"truncated.{split}"] = part["truncation"]["texts"]
        metrics[f"lost_spans.{split}"] = part["truncation"].get("units_lost", 0)
        if "tokens" in part:
            metrics[f"space_share.{split}"] = part["tokens"]["space_share"]
            metrics[f"unknown_share.{split}"] = part["tokens"]["unknown_share"]
        if "vocab_extension" in part:
            metrics[f"unknown_share_extended.{split}"] = part["vocab_extension"]["unknown_share_after"]
    for pair, shared in health["overlap"].items():
        metrics[f"overlap.{pair}"] = shared["examples"]
    if "vocab_extension" in health:
        metrics["vocab_extension_units"] = health["vocab_extension"]["added"]
    metrics.update(
        duplicates=_total(health, lambda part: part["duplicates"]["same_input"]),
        conflicting_labels=_total(health, lambda part: part["duplicates"]["conflicting_examples"]),
        unseen_labels=_total(health, lambda part: sum(part.get("unseen_labels", {}).values())),
        encoding_problems=_total(health, lambda part: part["encoding_problems"]["texts"]),
        reader_skips=_total(health, lambda part: sum(part["reader_skips"].values())),
        dedupe_removed=sum(sum(counts.values()) for counts in health["dedupe"]["removed"].values()),
        warnings=len(health["warnings"]),
        fatal=len(health["fatal"]),
    )
    return {f"data_health.{key}": float(value) for key, value in metrics.items()}


def summary_lines(health: dict, path: str) -> list[str]:
    """A few human lines: counts, duplicates, overlap, truncation, the rest in figures, warnings."""
    metrics = {key.removeprefix("data_health."): int(value) for key, value in health_metrics(health).items()}
    removed = f", {metrics['dedupe_removed']} removed" if metrics["dedupe_removed"] else ""
    labels = f"{len(health['splits']['train']['labels'])} {health['label_field']} values in train"
    pairs = health["overlap"].items()
    shared = ", ".join(f"{pair} {o['examples']} ({o['distinct_inputs']} distinct)" for pair, o in pairs)
    return [
        f"[validate] {health['task']} ({health['kind']}): {_per_split(health, _examples)} examples; {labels}",
        f"  repeated inputs within splits: {_per_split(health, _repeated)}",
        f"  inputs shared across splits: {shared}",
        f"  cut at maxlen {health['maxlen']}: {_per_split(health, _cut)}",
        *([f"  whitespace placeholders / [UNK] among input tokens: {_per_split(health, _shares)}"]
          if "tokens" in health["splits"]["train"] else []),
        *([_extension_line(health)] if "vocab_extension" in health else []),
        f"  unseen labels in dev/test {metrics['unseen_labels']}, texts with suspect characters "
        f"{metrics['encoding_problems']}, reader skips {metrics['reader_skips']}; "
        f"dedupe {health['dedupe']['mode']}{removed}",
        f"  {len(health['warnings'])} warnings, {len(health['fatal'])} fatal -> {path}",
    ]


def _total(health: dict, figure: Callable[[dict], int]) -> int:
    return sum(figure(part) for part in health["splits"].values())


def _per_split(health: dict, figure: Callable[[dict], str]) -> str:
    return ", ".join(f"{split} {figure(part)}" for split, part in health["splits"].items())


def _examples(part: dict) -> str:
    return str(part["examples"])


def _repeated(part: dict) -> str:
    return f"{part['duplicates']['same_input']} ({part['duplicates']['conflicting_inputs']} conflicting)"


def _cut(part: dict) -> str:
    cut = part["truncation"]
    lost = f", {cut['units_lost']}/{cut['units']} {cut['unit']} lost" if "unit" in cut else ""
    return f"{cut['texts']} ({_pct(cut['texts'], part['examples'])}){lost}"


def _shares(part: dict) -> str:
    return f"{part['tokens']['space_share']:.1%} / {part['tokens']['unknown_share']:.1%}"


def _extension_line(health: dict) -> str:
    ext = health["vocab_extension"]
    units = ", ".join(list(ext["units"])[:8]) + (", ..." if ext["added"] > 8 else "")
    note = f"; {ext['note']}" if ext["note"] else ""
    shares = _per_split(health, lambda part: f"{part['vocab_extension']['unknown_share_before']:.1%} -> "
                                              f"{part['vocab_extension']['unknown_share_after']:.1%}")
    return (f"  [UNK] before -> after tokenizer.extend_vocab (+{ext['added']} units{': ' + units if units else ''}"
            f"{note}): {shares}")


def _is_blank(value: object) -> bool:
    return isinstance(value, str) and not value.strip()


def _pct(n: int, total: int) -> str:
    return f"{n / total:.1%}" if total else "0%"


def _ids(ids: list[str]) -> str:
    return ", ".join(ids)

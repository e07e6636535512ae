"""Signs that a file was read wrongly, fatal unless the data block allows them.

* Whitespace placeholders making up more than ``data.max_space_share`` of all input tokens: a
  Chinese one-character-per-line file joined with spaces (``中 国 人``), which trains to nothing.
* A class label holding a quote or the delimiter: the rest of a row split inside a quoted field.
* A label space far larger than the other splits': many labels that occur once in train and
  never in dev or test (e.g. 59 "labels" of a binary task read from a mis-split CSV).

The last two are allowed with ``data.allow_suspicious_labels: true``, and not looked for when the
data block names the labels (every raw label was then checked against the names).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pipeline.data_health.fatal import Problem
from pipeline.data_health.tokens import overall_space_share
from pipeline.data.readers.label_names import ROW_DEBRIS

#: how many once-in-train labels absent from dev and test are tolerated: at least this many, and at
#: least half as many as dev and test have labels
MIN_RARE_LABELS = 3


def misread_problems(splits: dict[str, list[dict]], health: dict, source: Any, task: str) -> list[Problem]:
    """The fatal signs of a misread file in prepared ``splits`` and their ``health`` report."""
    key = f"tasks.{task}.data"
    problems = _space_problems(splits, health, source.max_space_share, key)
    named = source.label_names or source.label_names_file  # raw labels were checked against the names
    if not (source.allow_suspicious_labels or named):
        problems += _debris_labels(splits, getattr(source, "delimiter", None), key)
        problems += _rare_labels(splits, key)
    return problems


def _space_problems(splits: dict[str, list[dict]], health: dict, limit: float, key: str) -> list[Problem]:
    shares = {split: part["tokens"] for split, part in health["splits"].items() if "tokens" in part}
    share = overall_space_share(shares)
    if share <= limit:
        return []
    split, part = max(shares.items(), key=lambda item: item[1]["space_share"])
    first = part["most_spaced_ids"][0]
    index = next(i for i, record in enumerate(splits[split]) if record["id"] == first)
    text = splits[split][index]["text"]
    shown = text if len(text) <= 40 else text[:40] + "..."
    return [Problem(
        split, index, first, "text",
        f"{share:.0%} of all input tokens are whitespace placeholders (limit {limit:.0%}), e.g. {shown!r}; "
        f"hint: a file with one character per line needs 'join: \"\"' (the default for language zh), or "
        f"remove the spaces; to accept them raise {key}.max_space_share",
    )]


def _debris_labels(splits: dict[str, list[dict]], delimiter: str | None, key: str) -> list[Problem]:
    """The first record per split whose class label holds a quote or the delimiter."""
    marks = [ch for ch in dict.fromkeys((*ROW_DEBRIS, delimiter or "")) if ch and ch != " "]
    problems = []
    for split, records in splits.items():
        for index, record in enumerate(records):
            label = record.get("label")
            if isinstance(label, str) and (mark := next((ch for ch in marks if ch in label), None)):
                problems.append(Problem(
                    split, index, record["id"], "label",
                    f"{label!r} holds {mark!r}: the row was probably split inside a quoted field; hint: set "
                    f"'quoting: true' (and 'quotechar') in {key}, check 'delimiter' and 'columns', or set "
                    f"{key}.allow_suspicious_labels: true",
                ))
                break
    return problems


def _rare_labels(splits: dict[str, list[dict]], key: str) -> list[Problem]:
    """Labels seen once in train and never in dev or test, when there are many more than dev and test have."""
    train = Counter(r["label"] for r in splits["train"] if isinstance(r.get("label"), str))
    later = {r["label"] for split in ("dev", "test") for r in splits.get(split, []) if isinstance(r.get("label"), str)}
    rare = [label for label, n in train.items() if n == 1 and label not in later]
    if not train or len(rare) <= max(MIN_RARE_LABELS, len(later) / 2):
        return []
    index = next(i for i, r in enumerate(splits["train"]) if r.get("label") == rare[0])
    examples = ", ".join(repr(label if len(label) <= 30 else label[:30] + "...") for label in rare[:3])
    return [Problem(
        "train", index, splits["train"][index]["id"], "label",
        f"{len(rare)} of train's {len(train)} labels occur once in it and never in dev or test ({examples}, ...), "
        f"against {len(later)} labels in dev and test: the rows were probably split wrongly; hint: check "
        f"'delimiter', 'quoting' and 'columns' in {key}, or set {key}.allow_suspicious_labels: true",
    )]

"""The pretraining corpus: a task's train texts and plain-text files, deduplicated, with a held-out share.

Only ``train.jsonl`` of a prepared task is read: dev and test texts never reach the corpus, so the
fine-tuned model's evaluation sets stay unseen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.data.readers.base import INPUT_FIELDS
from pipeline.data.readers.files import UTF8_HINT, DataError, open_bytes, read_json_objects


def task_texts(prepared: Path) -> list[str]:
    """The stripped, non-empty string values of :data:`INPUT_FIELDS` (in that order) of each record of
    ``prepared/train.jsonl``; a line that is not a JSON object is a :class:`DataError` naming file:line."""
    texts = []
    for _, record in read_json_objects(Path(prepared) / "train.jsonl"):
        for name in INPUT_FIELDS:
            value = record.get(name)
            if isinstance(value, str) and value.strip():
                texts.append(value.strip())
    return texts


def file_texts(path: Path) -> list[str]:
    """One stripped document per line of a UTF-8 file (blank lines come back as ``""``, to be counted);
    a line that does not decode is a :class:`DataError` ``file:line: not UTF-8 text``."""
    texts = []
    with open_bytes(path) as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"{path}:{line_no}: not UTF-8 text (byte {exc.start}: {exc.reason}); hint: {UTF8_HINT}"
                ) from None
            texts.append((line.removeprefix("\ufeff") if line_no == 1 else line).strip())
    return texts


@dataclass(frozen=True)
class Corpus:
    """Training and held-out documents, and counts of what was kept and dropped."""

    train: list[str]
    heldout: list[str]
    stats: dict[str, int]


def build_corpus(sources: list[tuple[str, list[str]]], heldout_fraction: float, seed: int) -> Corpus:
    """Merge ``(name, texts)`` sources into a corpus and hold out a seeded share of it.

    Blank texts and exact duplicates (after stripping; across all sources, the first kept) are dropped
    and counted (``stats["blank"]``, ``stats["duplicates"]``); ``stats["documents:<name>"]`` counts each
    source's kept documents. A permutation from ``numpy.random.default_rng(seed)`` holds out
    ``round(n * heldout_fraction)`` documents (at least 1 when the fraction is positive and ``n >= 2``,
    at most ``n - 1``); both parts keep the sources' order.
    """
    if not 0.0 <= heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in [0, 1), got {heldout_fraction}")
    documents: list[str] = []
    seen: set[str] = set()
    stats: dict[str, int] = {"blank": 0, "duplicates": 0}
    for name, texts in sources:
        kept = 0
        for text in texts:
            text = text.strip()
            if not text:
                stats["blank"] += 1
            elif text in seen:
                stats["duplicates"] += 1
            else:
                seen.add(text)
                documents.append(text)
                kept += 1
        stats[f"documents:{name}"] = stats.get(f"documents:{name}", 0) + kept
    n = len(documents)
    if n < 2:
        names = ", ".join(name for name, _ in sources) or "no sources"
        raise DataError(f"the corpus has {n} document(s) after dropping blank and duplicate texts ({names}); "
                        "hint: it needs at least 2, one to train on and one held out")
    count = int(round(n * heldout_fraction))
    if heldout_fraction > 0 and n >= 2:
        count = min(max(count, 1), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    held = set(order[:count].tolist())
    train = [doc for i, doc in enumerate(documents) if i not in held]
    heldout = [doc for i, doc in enumerate(documents) if i in held]
    stats["train"], stats["heldout"] = len(train), len(heldout)
    return Corpus(train=train, heldout=heldout, stats=stats)

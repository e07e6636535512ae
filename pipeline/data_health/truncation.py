"""Which texts the task's tokenizer truncates at ``maxlen``, and which labelled items it cuts off.

The measure is the tokenizer's own :attr:`~pipeline.text.tokenization.Encoding.kept_chars` (how many
leading characters of each segment survive). The Chinese tokenizer is length-preserving (one
token per character), so for it the same figure is computed from lengths alone, exactly as its
``encode`` truncates, without loading TensorFlow; ``tests/test_data_health.py`` checks the two agree.
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

from pipeline.data_health.records import item_spans
from pipeline.text.query_concat import DEFAULT_TEMPLATE, join_query
from pipeline.text.tokenization import TOKENIZERS, ChineseCharTokenizer, TextTokenizer, build_tokenizer, pair_lengths

KeptChars = Callable[[Sequence[str], int], tuple[int, ...]]
"""``(segments, maxlen) -> characters kept of each segment``"""

#: record ids listed per split
MAX_IDS = 5


def char_kept(segments: Sequence[str], maxlen: int) -> tuple[int, ...]:
    """Characters kept per segment by a one-token-per-character tokenizer: a single text keeps
    ``maxlen - 2``, a pair shares ``maxlen - 3`` as bert4keras truncates (see ``pair_lengths``)."""
    if len(segments) == 1:
        return (min(len(segments[0]), maxlen - 2),)
    first, second = segments
    return pair_lengths(min(len(first), maxlen - 2), min(len(second), maxlen - 2), maxlen - 3)


def tokenizer_kept(tokenizer: TextTokenizer) -> KeptChars:
    """The measure of a real tokenizer: ``encode(...).kept_chars``."""
    return lambda segments, maxlen: tokenizer.encode(*segments, maxlen=maxlen).kept_chars


def measure_for(language: str, vocab: str | os.PathLike[str], lowercase: bool) -> tuple[KeptChars, str]:
    """The measure for a task's tokenizer and a description of it."""
    if TOKENIZERS.get(language) is ChineseCharTokenizer:
        return char_kept, "ChineseCharTokenizer (one token per character: measured by length)"
    tokenizer = build_tokenizer(language, vocab, lowercase)
    return tokenizer_kept(tokenizer), f"{type(tokenizer).__name__} ({vocab})"


def layout(record: dict) -> tuple[tuple[str, ...], int, int]:
    """The segments a kind feeds the tokenizer, the index of the one holding ``text`` and where
    ``text`` starts in it (a query joined by the record's template, else ``text`` [+ ``text_b``])."""
    if "query" in record:
        joined = join_query(record.get("template", DEFAULT_TEMPLATE), record["query"], record["text"])
        return joined.segments, joined.text_segment, joined.text_start
    if record.get("text_b") is not None:
        return (record["text"], record["text_b"]), 0, 0
    return (record["text"],), 0, 0


def truncation(records: Sequence[dict], measure: KeptChars, maxlen: int, unit: str | None) -> dict:
    """Texts cut at ``maxlen`` and labelled items (entities, answers, triples) lying partly beyond the cut."""
    truncated, lost, total = [], [], 0
    for record in records:
        segments, text_segment, text_start = layout(record)
        kept = measure(segments, maxlen)
        if any(k < len(segment) for k, segment in zip(kept, segments)):
            truncated.append(record["id"])
        kept_text = max(0, kept[text_segment] - text_start)
        for _, spans in item_spans(record, unit):
            total += 1
            if any(span["end"] > kept_text for _, span in spans):
                lost.append(record["id"])
    result = {
        "maxlen": maxlen,
        "texts": len(truncated),
        "share": round(len(truncated) / len(records), 4) if records else 0.0,
        "example_ids": truncated[:MAX_IDS],
    }
    if unit:
        result.update(unit=unit, units=total, units_lost=len(lost), lost_ids=list(dict.fromkeys(lost))[:MAX_IDS])
    return result

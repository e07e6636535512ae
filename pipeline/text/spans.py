"""Typed spans <-> BIO tags over units, units <-> tokens, and entity-level scores. Pure functions.

A *unit* is what one BIO tag labels: a character for Chinese, a whitespace-delimited word for
English. Spans are ``(start, end, type)`` with ``end`` exclusive, in units or in characters.
The conversions are exact: ``bio_to_spans(spans_to_bio(spans, n)) == sorted(spans)`` for any
non-overlapping in-range spans.

Malformed BIO (``I-X`` at the start, after ``O`` or after another type) is repaired the way
conlleval reads it: the ``I-X`` opens a new ``X`` entity. :func:`parse_bio` lists every repair so
callers can count them; :func:`bio_to_spans` with ``strict=True`` refuses them instead.
"""

from __future__ import annotations

import bisect
import re
from typing import Iterable, Sequence

Span = tuple[int, int, str]
"""``(start, end, type)``, ``end`` exclusive."""

OUTSIDE = "O"

#: kinds of BIO repair reported by :func:`parse_bio`
I_WITHOUT_B = "I- tag after O or at the start (read as B-)"
TYPE_CHANGE = "I- tag of another type than the entity it continues (read as B-)"

_WORD = re.compile(r"\S+")


class MalformedBio(ValueError):
    """A BIO sequence needed a repair and strict parsing was asked for."""


# --- spans <-> BIO -----------------------------------------------------------------------------


def check_spans(spans: Iterable[Span], length: int) -> list[Span]:
    """``spans`` sorted by start; a ValueError if one is empty, out of ``[0, length)`` or overlaps another."""
    ordered = sorted(spans)
    for start, end, label in ordered:
        if not isinstance(label, str) or not label or label != label.strip():
            raise ValueError(f"span ({start}, {end}) has no valid type: {label!r}")
        if not 0 <= start < end <= length:
            raise ValueError(f"span ({start}, {end}, {label!r}) is empty or outside 0..{length}")
    for before, after in zip(ordered, ordered[1:]):
        if after[0] < before[1]:
            raise ValueError(f"spans {before} and {after} overlap")
    return ordered


def spans_to_bio(spans: Iterable[Span], length: int) -> list[str]:
    """BIO tags of ``length`` units: ``B-T`` on each span's first unit, ``I-T`` on the rest, else ``O``."""
    tags = [OUTSIDE] * length
    for start, end, label in check_spans(spans, length):
        tags[start] = f"B-{label}"
        for i in range(start + 1, end):
            tags[i] = f"I-{label}"
    return tags


def split_tag(tag: str) -> tuple[str, str]:
    """``'B-PER'`` -> ``('B', 'PER')``, ``'O'`` -> ``('O', '')``; a ValueError for anything else."""
    if tag == OUTSIDE:
        return OUTSIDE, ""
    prefix, _, label = tag.partition("-")
    if prefix not in ("B", "I") or not label:
        raise ValueError(f"{tag!r} is not a BIO tag (O, B-TYPE or I-TYPE)")
    return prefix, label


def parse_bio(tags: Sequence[str]) -> tuple[list[Span], list[tuple[int, str]]]:
    """Spans of a BIO sequence and the repairs it needed, as ``(index, I_WITHOUT_B | TYPE_CHANGE)``."""
    spans: list[Span] = []
    repairs: list[tuple[int, str]] = []
    start, current = -1, ""
    for i, tag in enumerate(tags):
        prefix, label = split_tag(tag)
        if prefix == "I" and current == label:
            continue
        if current:
            spans.append((start, i, current))
        if prefix == "I":
            repairs.append((i, TYPE_CHANGE if current else I_WITHOUT_B))
        start, current = (i, label) if prefix != OUTSIDE else (-1, "")
    if current:
        spans.append((start, len(tags), current))
    return spans, repairs


def bio_to_spans(tags: Sequence[str], strict: bool = False) -> list[Span]:
    """Spans of a BIO sequence; malformed ``I-`` tags are repaired, or refused when ``strict``."""
    spans, repairs = parse_bio(tags)
    if strict and repairs:
        index, problem = repairs[0]
        raise MalformedBio(f"tag {index} ({tags[index]!r}): {problem}")
    return spans


def remove_overlaps(spans: Iterable[Span]) -> tuple[list[Span], list[Span]]:
    """Keep a non-overlapping subset, longest spans first (ties: earlier start); return (kept, dropped).

    Exact duplicates count as dropped too. ``kept`` is sorted by start.
    """
    kept: list[Span] = []
    dropped: list[Span] = []
    for span in sorted(spans, key=lambda s: (s[0] - s[1], s[0], s[2])):
        if any(span[0] < other[1] and other[0] < span[1] for other in kept):
            dropped.append(span)
        else:
            kept.append(span)
    return sorted(kept), dropped


# --- units and their tokens ----------------------------------------------------------------------


def char_units(text: str) -> list[tuple[int, int]]:
    """One unit per character (Chinese): ``[(0, 1), (1, 2), ...]``."""
    return [(i, i + 1) for i in range(len(text))]


def word_units(text: str) -> list[tuple[int, int]]:
    """One unit per maximal run of non-whitespace characters (English words)."""
    return [match.span() for match in _WORD.finditer(text)]


def char_span_to_units(units: Sequence[tuple[int, int]], start: int, end: int) -> tuple[int, int] | None:
    """Units ``[i, j)`` overlapping characters ``[start, end)``; None when none does (only whitespace).

    A span that cuts a unit (a mention inside a longer word) grows to whole units.
    """
    if end <= start:
        raise ValueError(f"empty character span [{start}, {end})")
    first = bisect.bisect_right([u[1] for u in units], start)
    last = bisect.bisect_left([u[0] for u in units], end)
    return (first, last) if first < last else None


def units_to_char_span(units: Sequence[tuple[int, int]], i: int, j: int) -> tuple[int, int]:
    """Characters ``[start, end)`` covered by units ``[i, j)``."""
    if not 0 <= i < j <= len(units):
        raise ValueError(f"unit span [{i}, {j}) is empty or outside 0..{len(units)}")
    return units[i][0], units[j - 1][1]


# --- entity-level scores -----------------------------------------------------------------------


def prf(correct: int, predicted: int, gold: int) -> dict[str, float]:
    """Precision, recall and F1 from counts; 0 where undefined."""
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def entity_scores(
    gold: Sequence[Iterable[Span]], predicted: Sequence[Iterable[Span]]
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Micro P/R/F1 over exact ``(start, end, type)`` matches, and the same per type.

    ``gold[k]`` and ``predicted[k]`` are the spans of example ``k``. Per-type rows also hold
    ``support`` (gold count), ``predicted`` and ``correct``.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold examples but {len(predicted)} predicted")
    counts: dict[str, list[int]] = {}
    for gold_spans, predicted_spans in zip(gold, predicted):
        gold_set, predicted_set = set(gold_spans), set(predicted_spans)
        for spans, slot in ((gold_set, 0), (predicted_set, 1), (gold_set & predicted_set, 2)):
            for *_, label in spans:
                counts.setdefault(label, [0, 0, 0])[slot] += 1
    per_type = {
        label: {**prf(c, p, g), "support": g, "predicted": p, "correct": c}
        for label, (g, p, c) in sorted(counts.items())
    }
    totals = [sum(row[slot] for row in counts.values()) for slot in range(3)]
    return prf(totals[2], totals[1], totals[0]), per_type

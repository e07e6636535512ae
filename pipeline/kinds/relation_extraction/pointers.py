"""Span pointers: start/end label arrays over a token sequence, and decoding them back into spans.

A pointer network marks a span ``(i, j)`` (inclusive token indices) by a 1 at position ``i`` of a
"start" channel and at position ``j`` of an "end" channel; with ``K`` kinds of spans (predicates)
each kind has its own pair of channels. Decoding pairs every start above a threshold with the
NEAREST end at or after it that is above the threshold too (the bert4keras relation-extraction
example's rule). Pure NumPy; no TensorFlow.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

#: (kind index, start token, end token), token indices inclusive
PointerSpan = tuple[int, int, int]


def pointer_labels(length: int, spans: Iterable[PointerSpan], kinds: int) -> np.ndarray:
    """``(length, kinds, 2)`` uint8 labels: ``[i, k, 0] = 1`` where a span of kind ``k`` starts, ``[j, k, 1] = 1``
    where it ends."""
    labels = np.zeros((length, kinds, 2), dtype=np.uint8)
    for kind, start, end in spans:
        if not (0 <= kind < kinds and 0 <= start <= end < length):
            raise ValueError(f"span {(kind, start, end)} does not fit {length} positions x {kinds} kinds")
        labels[start, kind, 0] = 1
        labels[end, kind, 1] = 1
    return labels


def decode_pointers(probs: np.ndarray, threshold: float, lo: int = 0, hi: int | None = None) -> list[PointerSpan]:
    """Spans from ``(length, kinds, 2)`` start/end probabilities, looking only at positions ``lo .. hi - 1``.

    Every start with probability above ``threshold`` is paired with the nearest end (same kind,
    at or after the start, before ``hi``) above ``threshold``; starts without one give nothing.
    Sorted by start, then kind.
    """
    hi = probs.shape[0] if hi is None else hi
    window = probs[lo:hi]
    ends = window[..., 1] > threshold
    spans = []
    for start, kind in np.argwhere(window[..., 0] > threshold):
        after = np.flatnonzero(ends[start:, kind])
        if after.size:
            spans.append((int(kind), lo + int(start), lo + int(start + after[0])))
    return spans

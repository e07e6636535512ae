"""Tags <-> word-pieces, and decoding a tag path: the alignment and Viterbi decoding of sequence labeling.

A unit's first word-piece carries its tag (later pieces continue it, so the token sequence stays valid
BIO for the CRF); decoding reads the best path (Viterbi over the learnt transitions) at first pieces.
"""

from __future__ import annotations

import bisect
from typing import Any, Sequence

import numpy as np

from pipeline.text.spans import OUTSIDE, split_tag

#: layer name of the CRF head (its ``trans`` weight is read back for decoding)
CRF_LAYER = "CRF"


def token_units(offsets: Sequence[tuple[int, int]], units: Sequence[tuple[int, int]]) -> list[int]:
    """For each token, the unit its first character falls in; -1 for special tokens (``(-1, -1)``)."""
    starts = [u[0] for u in units]
    owners = []
    for start, _ in offsets:
        unit = bisect.bisect_right(starts, start) - 1 if start >= 0 else -1
        # an empty token span may sit at its word's end (WordPiece pieces rematch cannot place)
        owners.append(unit if unit >= 0 and start <= units[unit][1] else -1)
    return owners


def first_pieces(owners: Sequence[int], n_units: int) -> list[int]:
    """For each unit, the index of its first token (word-piece); -1 for a unit without tokens (truncated)."""
    first = [-1] * n_units
    for token, unit in enumerate(owners):
        if unit >= 0 and first[unit] < 0:
            first[unit] = token
    return first


def piece_tags(unit_tags: Sequence[str], owners: Sequence[int]) -> list[str]:
    """Token-level tags for training: a unit's first piece gets its tag, later pieces continue it.

    Continuation pieces of a ``B-X`` or ``I-X`` unit get ``I-X`` and those of an ``O`` unit ``O``,
    so the token sequence is valid BIO for the CRF; special tokens get ``O``. An ``I-X`` unit whose
    entity lost its first units (words without tokens, e.g. only zero-width characters) starts with ``B-X``.
    """
    tags: list[str] = []
    previous = -1
    for unit in owners:
        if unit < 0:
            tags.append(OUTSIDE)
        elif unit != previous:
            prefix, label = split_tag(unit_tags[unit])
            continues = bool(tags) and tags[-1] != OUTSIDE and split_tag(tags[-1])[1] == label
            tags.append(f"B-{label}" if prefix == "I" and not continues else unit_tags[unit])
        else:
            prefix, label = split_tag(unit_tags[unit])
            tags.append(f"I-{label}" if prefix != OUTSIDE else OUTSIDE)
        previous = unit
    return tags


def viterbi(
    emissions: np.ndarray, transitions: np.ndarray, start: int | None = None, end: int | None = None
) -> np.ndarray:
    """The highest-scoring tag path: ``sum(emissions[t, y_t]) + sum(transitions[y_t, y_t+1])``.

    ``start``/``end`` force the first/last tag (e.g. ``O`` on ``[CLS]``/``[SEP]``).
    """
    emissions = np.array(emissions, dtype=np.float64)
    n, k = emissions.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    for position, tag in ((0, start), (n - 1, end)):
        if tag is not None:
            keep = emissions[position, tag]
            emissions[position] = -np.inf
            emissions[position, tag] = keep
    scores = emissions[0]
    back = np.zeros((n, k), dtype=np.int64)
    for t in range(1, n):
        total = scores[:, None] + transitions + emissions[t][None, :]
        back[t] = total.argmax(axis=0)
        scores = total.max(axis=0)
    path = [int(scores.argmax())]
    for t in range(n - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    return np.array(path[::-1], dtype=np.int64)


def crf_transitions(model: Any) -> np.ndarray | None:
    """The trained transition matrix of the model's CRF layer; None for a softmax head."""
    try:
        layer = model.get_layer(CRF_LAYER)
    except ValueError:
        return None
    return np.asarray(layer.trans, dtype=np.float64)

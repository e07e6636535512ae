"""BERT's masked-language-model masking (per token or whole word) and padded batches of masked examples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class MaskingRule:
    """Choose ``rate`` of the maskable tokens; of those, ``mask_fraction`` become [MASK],
    ``random_fraction`` a random token, and the rest stay unchanged."""

    rate: float = 0.15
    mask_fraction: float = 0.8
    random_fraction: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 < self.rate <= 1.0:
            raise ValueError(f"masking rate must be in (0, 1], got {self.rate}")
        if self.mask_fraction < 0 or self.random_fraction < 0 or self.mask_fraction + self.random_fraction > 1:
            raise ValueError(
                f"mask_fraction ({self.mask_fraction}) and random_fraction ({self.random_fraction}) must be "
                "non-negative and add up to at most 1"
            )


def mask_example(
    token_ids: Sequence[int],
    words: Sequence[int | None],
    rng: np.random.Generator,
    rule: MaskingRule,
    mask_id: int,
    random_ids: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mask one example; returns ``(input ids, chosen positions (int32, sorted), original ids there)``.

    Tokens with a word id (``words[i] is not None``) are maskable; ``max(1, round(rate * maskable))`` of
    them are chosen as whole words: the distinct words in random order, each taken unless it would
    overshoot the count (the first word is always taken). Each chosen token becomes ``mask_id`` with
    probability ``mask_fraction``, a token drawn from ``random_ids`` with ``random_fraction``, else stays.
    """
    if len(token_ids) != len(words):
        raise ValueError(f"{len(token_ids)} token ids but {len(words)} word ids")
    ids = np.asarray(token_ids, dtype=np.int32)
    groups: dict[int, list[int]] = {}
    for position, word in enumerate(words):
        if word is not None:
            groups.setdefault(word, []).append(position)
    maskable = sum(len(group) for group in groups.values())
    wanted = max(1, int(round(rule.rate * maskable))) if maskable else 0
    chosen: list[int] = []
    if wanted:
        keys = list(groups)
        for k in rng.permutation(len(keys)):
            group = groups[keys[k]]
            if chosen and len(chosen) + len(group) > wanted:
                continue
            chosen += group
            if len(chosen) >= wanted:
                break
    positions = np.array(sorted(chosen), dtype=np.int32)
    targets = ids[positions].copy()
    draw = rng.random(len(positions))
    replaced = draw < rule.mask_fraction
    randomised = ~replaced & (draw < rule.mask_fraction + rule.random_fraction)
    masked = ids.copy()
    masked[positions[replaced]] = mask_id
    if randomised.any():
        masked[positions[randomised]] = rng.choice(np.asarray(random_ids), size=int(randomised.sum()))
    return masked, positions, targets


def per_token_words(token_ids: Sequence[int], special_ids: set[int]) -> list[int | None]:
    """Word ids that make every non-special token its own word (per-token masking)."""
    return [None if token in special_ids else i for i, token in enumerate(token_ids)]


@dataclass
class MaskedBatch:
    """Padded arrays of masked examples: ``token_ids``/``segment_ids`` ``(B, L)`` int32 (padding 0);
    ``positions``/``targets`` ``(B, P)`` int32 and ``weights`` ``(B, P)`` float32 (1 real, 0 padding)."""

    token_ids: np.ndarray
    segment_ids: np.ndarray
    positions: np.ndarray
    targets: np.ndarray
    weights: np.ndarray


def make_batch(examples: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> MaskedBatch:
    """Pad ``(input ids, positions, targets)`` examples to the longest in the batch (``P`` is at least 1,
    so that a batch without chosen tokens still has a — fully padded — positions column)."""
    if not examples:
        raise ValueError("make_batch needs at least one example")
    size = len(examples)
    length = max(len(ids) for ids, _, _ in examples)
    width = max(1, max(len(positions) for _, positions, _ in examples))
    token_ids = np.zeros((size, length), dtype=np.int32)
    positions = np.zeros((size, width), dtype=np.int32)
    targets = np.zeros((size, width), dtype=np.int32)
    weights = np.zeros((size, width), dtype=np.float32)
    for row, (ids, chosen, originals) in enumerate(examples):
        token_ids[row, : len(ids)] = ids
        positions[row, : len(chosen)] = chosen
        targets[row, : len(originals)] = originals
        weights[row, : len(chosen)] = 1.0
    return MaskedBatch(token_ids, np.zeros_like(token_ids), positions, targets, weights)

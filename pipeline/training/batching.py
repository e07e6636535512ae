"""Batches padded to their own longest sequence, drawn from length-sorted buckets.

Sorting by length inside buckets of ``batch_size * bucket_batches`` examples keeps the
randomness of shuffling while roughly halving the padding (and so the compute) on
sentence-level data.
"""

from __future__ import annotations

import random
from typing import Any, Iterator, Sequence

import numpy as np

Features = dict[str, Any]
"""One encoded example: ``token_ids`` and ``segment_ids`` (lists) plus the kind's ``target``."""

INPUT_KEYS = ("token_ids", "segment_ids")


def pad(sequences: Sequence[Sequence], value: int = 0) -> np.ndarray:
    """Right-pad sequences (of numbers or of rows) to the longest one."""
    length = max(len(seq) for seq in sequences)
    first = np.asarray(sequences[0])
    out = np.full((len(sequences), length, *first.shape[1:]), value, dtype=first.dtype if first.size else np.int32)
    for row, seq in enumerate(sequences):
        if len(seq):
            out[row, : len(seq)] = seq
    return out


def collate(
    features: Sequence[Features], input_keys: Sequence[str] = INPUT_KEYS, with_targets: bool = True
) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Model inputs (padded, in ``input_keys`` order) and the padded ``target`` of a batch, if any."""
    inputs = [pad([f[key] for f in features]) for key in input_keys]
    inputs = [array.astype(np.int32) if array.dtype.kind in "iub" else array for array in inputs]
    if not with_targets or "target" not in features[0]:
        return inputs, None
    targets = [f["target"] for f in features]
    return inputs, pad(targets) if np.ndim(targets[0]) else np.asarray(targets)


def bucketed_batches(lengths: Sequence[int], batch_size: int, rng: random.Random | None, bucket_batches: int = 50) -> list[list[int]]:
    """Index batches: shuffled (when ``rng``), sorted by length within buckets, batch order shuffled."""
    order = list(range(len(lengths)))
    if rng is None:
        order.sort(key=lambda i: lengths[i])
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(order)
    bucket = batch_size * bucket_batches
    batches = []
    for start in range(0, len(order), bucket):
        chunk = sorted(order[start : start + bucket], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


class TrainingBatches:
    """An endless generator of shuffled training batches, reshuffled each epoch."""

    def __init__(
        self, features: Sequence[Features], batch_size: int, seed: int, input_keys: Sequence[str] = INPUT_KEYS
    ) -> None:
        self.features = features
        self.input_keys = tuple(input_keys)
        self.batch_size = batch_size
        self.rng = random.Random(seed)
        self.lengths = [len(f["token_ids"]) for f in features]

    def __len__(self) -> int:
        return -(-len(self.features) // self.batch_size)

    def skip_epochs(self, epochs: int) -> None:
        """Advance the shuffling as if ``epochs`` epochs had been drawn (resuming a training)."""
        for _ in range(epochs):
            bucketed_batches(self.lengths, self.batch_size, self.rng)

    def forever(self) -> Iterator[tuple[list[np.ndarray], np.ndarray] | tuple[list[np.ndarray]]]:
        while True:
            for batch in bucketed_batches(self.lengths, self.batch_size, self.rng):
                inputs, targets = collate([self.features[i] for i in batch], self.input_keys)
                yield (inputs, targets) if targets is not None else (inputs,)

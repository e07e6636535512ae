"""Deterministic carving of missing dev/test splits out of train."""

from __future__ import annotations

import random

from pipeline.data.readers.base import CarveSpec


def carve_splits(splits: dict[str, list[dict]], spec: CarveSpec | None) -> tuple[dict[str, list[dict]], dict]:
    """Move a seeded random share of train into each split that has no file of its own.

    Returns the new splits and a description of what was carved (for the summary and README).
    The same records and seed always give the same carve.
    """
    if spec is None:
        return splits, {}
    train = list(splits["train"])
    order = list(range(len(train)))
    random.Random(spec.seed).shuffle(order)
    carved: dict[str, list[dict]] = {}
    taken = 0
    for split, fraction in (("dev", spec.dev_fraction), ("test", spec.test_fraction)):
        if split in splits or fraction <= 0:
            continue
        count = max(1, round(fraction * len(train)))
        carved[split] = [train[i] for i in sorted(order[taken : taken + count])]
        taken += count
    if taken >= len(train):
        raise ValueError(f"carving {taken} of {len(train)} training records leaves nothing to train on")
    kept = sorted(order[taken:])
    result = {**splits, **carved, "train": [train[i] for i in kept]}
    info = {split: {"from": "train", "records": len(rows), "seed": spec.seed} for split, rows in carved.items()}
    return result, info


def subsample(records: list[dict], limit: int | None, seed: int) -> list[dict]:
    """A seeded random subset of at most ``limit`` records, in their original order: the training records
    of ``max_train_samples``, the same in the validate, train and evaluate stages."""
    if limit is None or limit >= len(records):
        return records
    keep = sorted(random.Random(seed).sample(range(len(records)), limit))
    return [records[i] for i in keep]

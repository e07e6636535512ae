"""Duplicates inside a split and inputs shared across splits (exact strings, as the model reads them).

Two records have the same input when their ``query``, ``text`` and ``text_b`` are equal (the
readers have already stripped surrounding whitespace); they are exact duplicates when their labels
are equal too, and conflicting when the same input carries different labels.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Sequence

from pipeline.data.readers.base import INPUT_FIELDS, OVERLAPS, example_key, input_key, occurring_in, repeats

#: record ids (or groups of ids) listed per finding
MAX_IDS = 5
MAX_GROUPS = 3


def target_key(record: dict) -> str:
    """The record's labels and other non-input fields (the id left out)."""
    return json.dumps(
        {k: v for k, v in record.items() if k != "id" and k not in INPUT_FIELDS}, sort_keys=True, ensure_ascii=False
    )


def within(records: Sequence[dict]) -> dict:
    """Copies of an earlier input in the same split, exact copies, and inputs with conflicting labels."""
    copies = repeats(records, input_key)
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for record in records:
        groups[input_key(record)].append(record)
    conflicting = [group for group in groups.values() if len({target_key(r) for r in group}) > 1]
    return {
        "same_input": len(copies),
        "exact": len(repeats(records, example_key)),
        "conflicting_inputs": len(conflicting),
        "conflicting_examples": sum(len(group) for group in conflicting),
        "example_ids": [r["id"] for r in copies[:MAX_IDS]],
        "conflicting_ids": [[r["id"] for r in group[:MAX_IDS]] for group in conflicting[:MAX_GROUPS]],
    }


def across(splits: dict[str, Sequence[dict]]) -> dict[str, dict]:
    """For each ``<later>_in_<earlier>`` pair: the later split's examples whose input the earlier has."""
    return {f"{later}_in_{earlier}": overlap(splits[later], splits[earlier]) for later, earlier in OVERLAPS}


def overlap(records: Sequence[dict], reference: Sequence[dict]) -> dict:
    """Examples of ``records`` whose input occurs in ``reference``; conflicting: no copy there has their labels."""
    shared = occurring_in(records, reference)
    targets: dict[tuple, set[str]] = defaultdict(set)
    for record in reference:
        targets[input_key(record)].add(target_key(record))
    conflicting = [r for r in shared if target_key(r) not in targets[input_key(r)]]
    return {
        "examples": len(shared),
        "distinct_inputs": len({input_key(r) for r in shared}),
        "conflicting_labels": len(conflicting),
        "example_ids": [r["id"] for r in shared[:MAX_IDS]],
        "conflicting_ids": [r["id"] for r in conflicting[:MAX_IDS]],
    }

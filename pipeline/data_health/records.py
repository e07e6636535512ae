"""What the checks read from a canonical record of any kind, as the kind registry declares it.

Record shapes (see ``pipeline/data/readers``): classification ``{"id", "text", ["text_b"], "label"}``;
sequence labeling ``{"id", "text", "entities": [{"start", "end", "type", "text"}]}``; span
extraction ``{"id", "text", "query", "answers": [{"start", "end", "text"}], ...}``; relation
extraction ``{"id", "text", "triples": [{"subject": span, "predicate", "object": span}]}``.
"""

from __future__ import annotations

from typing import Iterator

from pipeline.kinds import REGISTRY, ItemField, kind_spec


def item_fields() -> dict[str, ItemField]:
    """Every list field of labelled items the registered kinds declare, by name."""
    return {spec.items.name: spec.items for spec in REGISTRY.values() if spec.items is not None}


def required_fields(kind: str) -> tuple[str, ...]:
    """The fields a record of ``kind`` must have."""
    return kind_spec(kind).required_fields


def unit_of(kind: str) -> str | None:
    """The labelled items of ``kind`` that truncation can cut off (``entities``...), if any."""
    items = kind_spec(kind).items
    return items.name if items else None


def labels_of(record: dict, kind: str) -> list[str]:
    """The labels a record carries: its class, its entity types or predicates, or its query type."""
    return kind_spec(kind).labels_of(record)


def item_spans(record: dict, unit: str | None) -> Iterator[tuple[str, list[tuple[str, dict]]]]:
    """Per labelled item of field ``unit``, its path and its spans with theirs: ``("triples[0]",
    [("triples[0].subject", {...}), ("triples[0].object", {...})])``."""
    shape = item_fields().get(unit or "")
    if shape is None or shape.name not in record:
        return
    for index, item in enumerate(record[shape.name]):
        path = f"{shape.name}[{index}]"
        yield path, [(f"{path}.{key}" if key else path, item[key] if key else item) for key in shape.spans]

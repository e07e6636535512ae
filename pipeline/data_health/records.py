"""What the checks read from a canonical record of any kind: required fields, labels, labelled spans.

Record shapes (see ``pipeline/readers``): classification ``{"id", "text", ["text_b"], "label"}``;
sequence labeling ``{"id", "text", "entities": [{"start", "end", "type", "text"}]}``; span
extraction ``{"id", "text", "query", "answers": [{"start", "end", "text"}], ...}``; relation
extraction ``{"id", "text", "triples": [{"subject": span, "predicate", "object": span}]}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from pipeline.kinds.span_extraction import query_type

#: fields every record of a kind carries (other kinds: id and text)
REQUIRED: dict[str, tuple[str, ...]] = {
    "text_classification": ("id", "text", "label"),
    "pair_classification": ("id", "text", "text_b", "label"),
    "sequence_labeling": ("id", "text", "entities"),
    "span_extraction": ("id", "text", "query", "answers"),
    "relation_extraction": ("id", "text", "triples"),
}
BASIC_FIELDS = ("id", "text")


@dataclass(frozen=True)
class ItemShape:
    """A list field of labelled items: the keys of its character spans ('' = the item is the span)
    and the key of its label (None: unlabelled)."""

    spans: tuple[str, ...]
    label: str | None


#: list field -> shape of its items; an item is what truncation loses as a whole (an entity,
#: an answer, a triple with both its arguments)
ITEMS: dict[str, ItemShape] = {
    "entities": ItemShape(("",), "type"),
    "answers": ItemShape(("",), None),
    "triples": ItemShape(("subject", "object"), "predicate"),
}

#: the labelled items of a kind that truncation can cut off
UNITS: dict[str, str] = {
    "sequence_labeling": "entities",
    "span_extraction": "answers",
    "relation_extraction": "triples",
}

#: what the label counts of a kind count
LABEL_FIELD: dict[str, str] = {
    "text_classification": "label",
    "pair_classification": "label",
    "sequence_labeling": "entity type",
    "span_extraction": "query type",
    "relation_extraction": "predicate",
}


def required_fields(kind: str) -> tuple[str, ...]:
    """The fields a record of ``kind`` must have."""
    return REQUIRED.get(kind, BASIC_FIELDS)


def item_field(record: dict) -> str | None:
    """The record's list of labelled items (``entities``, ``answers``, ``triples``), if any."""
    return next((name for name in ITEMS if name in record), None)


def labels_of(record: dict) -> list[str]:
    """The labels a record carries: its class, its entity types or predicates, or its query type."""
    if "label" in record:
        return [record["label"]]
    field = item_field(record)
    label = ITEMS[field].label if field else None
    if field and label:
        return [item[label] for item in record[field]]
    return [query_type(record)] if "query" in record else []


def item_spans(record: dict) -> Iterator[tuple[str, list[tuple[str, dict]]]]:
    """Per labelled item, its field path and its spans with theirs: ``("triples[0]", [("triples[0].subject",
    {...}), ("triples[0].object", {...})])``."""
    field = item_field(record)
    if field is None:
        return
    for index, item in enumerate(record[field]):
        path = f"{field}[{index}]"
        yield path, [(f"{path}.{key}" if key else path, item[key] if key else item) for key in ITEMS[field].spans]

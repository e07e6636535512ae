"""The registry of task kinds: one :class:`KindSpec` per kind, and nothing else to edit to add one.

A kind lives in its own package ``pipeline/kinds/<name>/``: the package itself holds ``Options`` (the
head options of ``tasks.<task>.head``, validated without TensorFlow) and ``kind.py`` holds ``Kind``, the
:class:`~pipeline.kinds.common.base.TaskKind` that :func:`pipeline.kinds.factory.build_kind` builds per task
from those options. The spec below says
everything else the rest of the code reads about the kind (the fields of its records, what data health
counts). Packages are imported lazily, so that checking params never loads TensorFlow, and a stage
depends only on its own task's kind folder (``pipeline/kinds/${item.kind}`` in dvc.yaml).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.config.strict_model import StrictModel


@dataclass(frozen=True)
class ItemField:
    """A record's list of labelled items: its key, the keys of each item's character spans ('' = the
    item is the span) and the key of its label (None: unlabelled). Truncation loses an item as a whole."""

    name: str
    spans: tuple[str, ...] = ("",)
    label: str | None = None


@dataclass(frozen=True)
class KindSpec:
    """What the rest of the code knows about a kind."""

    #: the name written as ``kind:`` in params.yaml
    name: str
    #: the package holding ``Options`` (TF-free) and ``kind.Kind`` (or one module holding both)
    package: str
    #: fields every prepared record of the kind carries
    required_fields: tuple[str, ...]
    #: the list of labelled items truncation can cut off (None: the label belongs to the whole record)
    items: ItemField | None = None
    #: record keys holding a whole-record label, first present wins (when ``items`` has no label)
    label_keys: tuple[str, ...] = ()
    #: what data health's label counts count, in words
    label_field: str = "label"

    def options_model(self) -> "type[StrictModel]":
        """The model of ``tasks.<task>.head`` (imports the kind's package, not TensorFlow)."""
        return importlib.import_module(self.package).Options

    def labels_of(self, record: dict) -> list[str]:
        """The labels a record carries: its class, its items' labels or its query type."""
        if self.items is not None and self.items.label is not None:
            return [item[self.items.label] for item in record.get(self.items.name, [])]
        for key in self.label_keys:
            if record.get(key):
                return [record[key]]
        return []


ENTITIES = ItemField("entities", label="type")
ANSWERS = ItemField("answers")
TRIPLES = ItemField("triples", spans=("subject", "object"), label="predicate")

#: kind name -> its spec; one line per kind
REGISTRY: dict[str, KindSpec] = {spec.name: spec for spec in (
    KindSpec("text_classification", "pipeline.kinds.text_classification", ("id", "text", "label"), label_keys=("label",)),
    KindSpec("pair_classification", "pipeline.kinds.pair_classification", ("id", "text", "text_b", "label"), label_keys=("label",)),
    KindSpec("sequence_labeling", "pipeline.kinds.sequence_labeling", ("id", "text", "entities"), ENTITIES, label_field="entity type"),
    KindSpec("span_extraction", "pipeline.kinds.span_extraction", ("id", "text", "query", "answers"), ANSWERS, ("query_type", "query"), "query type"),
    KindSpec("relation_extraction", "pipeline.kinds.relation_extraction", ("id", "text", "triples"), TRIPLES, label_field="predicate"),
)}


def kind_spec(name: str) -> KindSpec:
    """The spec registered under ``name``."""
    if name not in REGISTRY:
        raise KeyError(f"unknown task kind {name!r}; known kinds: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]

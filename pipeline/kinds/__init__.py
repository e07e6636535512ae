"""The registry of task kinds.

A kind is one module exposing ``KIND``, an instance of :class:`pipeline.kinds.base.TaskKind`.
Modules are imported lazily, so that validating params never loads TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.kinds.base import TaskKind

#: kind name (as written in params.yaml) -> module defining ``KIND``
KIND_MODULES: dict[str, str] = {
    "text_classification": "pipeline.kinds.text_classification",
    "span_extraction": "pipeline.kinds.span_extraction",
    # the same kind: two texts joined into one input, [CLS] a [SEP] b [SEP] (a `text_b` column)
    "pair_classification": "pipeline.kinds.text_classification",
    "sequence_labeling": "pipeline.kinds.sequence_labeling",
    "relation_extraction": "pipeline.kinds.relation_extraction",
}


def get_kind(name: str) -> "TaskKind":
    """Return the task kind registered under ``name``."""
    if name not in KIND_MODULES:
        raise KeyError(f"unknown task kind {name!r}; known kinds: {', '.join(sorted(KIND_MODULES))}")
    return importlib.import_module(KIND_MODULES[name]).KIND

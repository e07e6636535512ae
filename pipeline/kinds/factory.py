"""Kind objects built per task from the registry: the kind package's ``kind.Kind`` with the task's options."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pipeline.kinds import kind_spec

if TYPE_CHECKING:
    from pipeline.config.schema import TaskConfig
    from pipeline.kinds.common.base import TaskKind


def new_kind(name: str, head: dict | None = None) -> "TaskKind":
    """A kind object for ``head`` options (validated by the kind's ``Options``); imports TensorFlow."""
    spec = kind_spec(name)
    module = importlib.import_module(spec.package)
    # a package keeps its TensorFlow code in kind.py; a small kind may be one module holding both
    kind_module = importlib.import_module(f"{spec.package}.kind") if hasattr(module, "__path__") else module
    kind_class: Any = kind_module.Kind
    return kind_class(spec.options_model().model_validate(head or {}))


def build_kind(cfg: "TaskConfig") -> "TaskKind":
    """The task's kind object, built from its typed head options; each task gets its own."""
    return new_kind(cfg.kind, cfg.head)

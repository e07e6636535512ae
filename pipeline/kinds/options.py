"""Per-kind head options (``tasks.<task>.head`` in params.yaml), validated without TensorFlow.

Each kind registers its options model here; a kind without options takes ``head: {}``.
"""

from __future__ import annotations

from pipeline.schema import StrictModel


class NoOptions(StrictModel):
    """The kind has no head options."""


#: kind name -> its options model (kinds absent here take :class:`NoOptions`)
KIND_OPTIONS: dict[str, type[StrictModel]] = {}


def options_model(kind: str) -> type[StrictModel]:
    """The options model of ``kind``."""
    return KIND_OPTIONS.get(kind, NoOptions)

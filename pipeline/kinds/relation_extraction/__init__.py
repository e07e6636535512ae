"""``relation_extraction``: (subject, predicate, object) triples with a subject-conditioned pointer network.

``kind.py`` is the kind, ``layers.py`` its Keras layers, ``pointers.py`` pointer targets and decoding.
"""

from __future__ import annotations

from pydantic import Field

from pipeline.config.strict_model import StrictModel


class Options(StrictModel):
    """``head:`` decoding thresholds of the subject and object start/end pointers."""

    subject_threshold: float = Field(default=0.5, gt=0, lt=1)
    object_threshold: float = Field(default=0.5, gt=0, lt=1)

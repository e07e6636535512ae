"""Per-kind head options (``tasks.<task>.head`` in params.yaml), validated without TensorFlow.

Each kind registers its options model here; a kind without options takes ``head: {}``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.schema import StrictModel


class NoOptions(StrictModel):
    """The kind has no head options."""


class ClassificationOptions(StrictModel):
    """``text_classification`` / ``pair_classification``: loss weighting and checkpoint selection."""

    #: "balanced" weighs each class by n / (classes x count): a rare class is not ignored
    class_weight: Literal["none", "balanced"] = "none"
    #: the dev metric that picks the saved epoch; macro_f1 suits imbalanced label sets
    select_by: Literal["accuracy", "macro_f1"] = "accuracy"


class SequenceLabelingOptions(StrictModel):
    """``sequence_labeling``: a CRF (Viterbi with the learnt transitions) or per-token softmax."""

    decoder: Literal["crf", "softmax"] = "crf"
    #: the CRF transitions learn this many times faster than the rest (bert4keras's examples: 100-1000)
    crf_lr_multiplier: float = Field(default=100.0, gt=0)


class SpanExtractionOptions(StrictModel):
    """``span_extraction``: start/end pointers over the text; how decoding picks the span."""

    #: the longest answer decoding may pick, in tokens
    max_answer_len: int = Field(default=30, ge=1)
    #: the [CLS] pointer means "no answer" (needed when unanswerable examples are kept)
    no_answer: bool = False


class RelationExtractionOptions(StrictModel):
    """``relation_extraction``: decoding thresholds of the subject and object start/end pointers."""

    subject_threshold: float = Field(default=0.5, gt=0, lt=1)
    object_threshold: float = Field(default=0.5, gt=0, lt=1)


#: kind name -> its options model (kinds absent here take :class:`NoOptions`)
KIND_OPTIONS: dict[str, type[StrictModel]] = {
    "text_classification": ClassificationOptions,
    "pair_classification": ClassificationOptions,
    "span_extraction": SpanExtractionOptions,
    "sequence_labeling": SequenceLabelingOptions,
    "relation_extraction": RelationExtractionOptions,
}


def options_model(kind: str) -> type[StrictModel]:
    """The options model of ``kind``."""
    return KIND_OPTIONS.get(kind, NoOptions)

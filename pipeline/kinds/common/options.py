"""Head options shared by more than one kind (TF-free)."""

from __future__ import annotations

from typing import Literal

from pipeline.config.strict_model import StrictModel


class NoOptions(StrictModel):
    """The kind has no head options."""


class ClassificationOptions(StrictModel):
    """``text_classification`` / ``pair_classification``: loss weighting and checkpoint selection."""

    #: "balanced" weighs each class by n / (classes x count): a rare class is not ignored
    class_weight: Literal["none", "balanced"] = "none"
    #: the dev metric that picks the saved epoch; macro_f1 suits imbalanced label sets
    select_by: Literal["accuracy", "macro_f1"] = "accuracy"

"""The text classification kind: the shared classification head."""

from pipeline.kinds.common.classification import TextClassification as Kind

__all__ = ["Kind"]

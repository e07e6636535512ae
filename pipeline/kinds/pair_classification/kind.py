"""The pair classification kind: the shared classification head over two input texts."""

from pipeline.kinds.common.classification import PairClassification as Kind

__all__ = ["Kind"]

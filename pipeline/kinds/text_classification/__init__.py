"""``text_classification``: one label per text. The head is shared with
pair_classification (:mod:`pipeline.kinds.common.classification`)."""

from pipeline.kinds.common.options import ClassificationOptions as Options

__all__ = ["Options"]

"""``pair_classification``: one label per text pair, joined as ``[CLS] a [SEP] b [SEP]``. The head is shared with
text_classification (:mod:`pipeline.kinds.common.classification`)."""

from pipeline.kinds.common.options import ClassificationOptions as Options

__all__ = ["Options"]

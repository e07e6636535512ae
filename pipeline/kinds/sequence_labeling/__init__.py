"""``sequence_labeling`` (NER): BIO tags per character (zh) or word (en), a CRF or softmax head, entity F1.

``kind.py`` is the kind; ``decoding.py`` aligns tags with word-pieces and decodes the best tag path.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.config.strict_model import StrictModel


class Options(StrictModel):
    """``head:`` a CRF (Viterbi with the learnt transitions) or per-token softmax."""

    decoder: Literal["crf", "softmax"] = "crf"
    #: the CRF transitions learn this many times faster than the rest (bert4keras's examples: 100-1000)
    crf_lr_multiplier: float = Field(default=100.0, gt=0)

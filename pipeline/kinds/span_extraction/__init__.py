"""``span_extraction`` with query concatenation (event subject, question answering): start/end pointers
over the text of ``[CLS] query [SEP] text [SEP]``. ``kind.py`` is the kind."""

from __future__ import annotations

from pydantic import Field

from pipeline.config.strict_model import StrictModel


class Options(StrictModel):
    """``head:`` how decoding picks the span."""

    #: the longest answer decoding may pick, in tokens
    max_answer_len: int = Field(default=30, ge=1)
    #: the [CLS] pointer means "no answer" (needed when unanswerable examples are kept)
    no_answer: bool = False

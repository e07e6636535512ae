"""The tokenizers (``pipeline.text.tokenization``) on random and adversarial text: offsets, truncation and
span alignment as property-based tests against the real vocabularies (building a tokenizer imports TensorFlow)."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pipeline.text.tokenization import NO_SPAN, char_span_to_token_span, token_span_to_char_span
from tests.helpers import check_encoding, props, token_texts, tokenizer

pytestmark = pytest.mark.model


def check_char_span(encoding, text: str, start: int, end: int, segment: int = 0, exact: bool = False) -> None:
    """``char_span_to_token_span`` against its contract for one in-range character span."""
    got = char_span_to_token_span(encoding, start, end, segment=segment)
    pairs = enumerate(zip(encoding.segment_ids, encoding.offsets))
    tokens = [i for i, (s, o) in pairs if s == segment and o != NO_SPAN]
    overlapping = [i for i in tokens if encoding.offsets[i][0] < end and start < encoding.offsets[i][1]]
    if end > encoding.kept_chars[segment] or not overlapping:
        assert got is None
        return
    assert got == (overlapping[0], overlapping[-1])
    first, last = token_span_to_char_span(encoding, *got)
    # the tokens cover every character of the span that any token stands for
    spans = [encoding.offsets[i] for i in overlapping]
    covered = [c for c in range(start, end) if any(a <= c < b for a, b in spans)]
    assert first <= covered[0] and covered[-1] < last
    if exact:
        assert (first, last) == (start, end)


@props(60)
@given(text=token_texts, maxlen=st.integers(8, 80), language=st.sampled_from(["zh", "en"]), data=st.data())
@example(text="\u200b \x00\ufeff\u2028", maxlen=8, language="en", data=None)
def test_tokenizer_offsets_and_span_alignment(text, maxlen, language, data) -> None:
    tok = tokenizer(language)
    encoding = tok.encode(text, maxlen=maxlen)
    check_encoding(encoding, [text], maxlen)
    assert encoding.token_ids == tok.bert4keras.encode(text, maxlen=maxlen)[0]
    assert encoding.token_ids == [tok.token_to_id(t) for t in encoding.tokens]
    if language == "zh":
        kept = min(len(text), maxlen - 2)
        assert encoding.offsets[1:-1] == [(i, i + 1) for i in range(kept)] and encoding.kept_chars == (kept,)
    if not text or data is None:
        return
    for _ in range(3):
        start = data.draw(st.integers(0, len(text) - 1))
        end = data.draw(st.integers(start + 1, min(len(text), start + 30)))
        check_char_span(encoding, text, start, end, exact=language == "zh")


@props(40)
@given(a=token_texts, b=token_texts, maxlen=st.integers(8, 64), language=st.sampled_from(["zh", "en"]))
def test_tokenizer_pairs_truncate_within_maxlen(a, b, maxlen, language) -> None:
    tok = tokenizer(language)
    encoding = tok.encode(a, b, maxlen=maxlen)
    check_encoding(encoding, [a, b], maxlen)
    assert (encoding.token_ids, encoding.segment_ids) == tuple(tok.bert4keras.encode(a, b, maxlen=maxlen))

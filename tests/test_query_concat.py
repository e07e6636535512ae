"""Query concatenation (``pipeline.text.query_concat``): answer offsets survive joining a query and a text
by any template and tokenizing with the real tokenizers (building one imports TensorFlow)."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pipeline.text.query_concat import (
    QUERY,
    TEXT,
    answer_token_span,
    check_template,
    join_query,
    kept_text_chars,
    text_mask,
    text_offsets,
    to_segment_span,
    token_span_to_text_span,
)
from pipeline.text.tokenization import NO_SPAN
from tests.helpers import check_encoding, multiline_texts, props, texts, tokenizer

pytestmark = pytest.mark.model


@st.composite
def templates(draw):
    words = st.text(st.sampled_from("_ {}#：:ab中?"), max_size=4)
    w = [draw(words) for _ in range(5)]
    shape = draw(st.sampled_from(["qt", "tq", "qtq", "pair", "pair-reversed", "pair-query-twice"]))
    if shape == "qt":
        return [f"{w[0]}{QUERY}{w[1]}{TEXT}{w[2]}"]
    if shape == "tq":
        return [f"{w[0]}{TEXT}{w[1]}{QUERY}{w[2]}"]
    if shape == "qtq":
        return [f"{w[0]}{QUERY}{w[1]}{TEXT}{w[2]}{QUERY}{w[3]}"]
    if shape == "pair":
        return [f"{w[0]}{QUERY}{w[1]}", f"{w[2]}{TEXT}{w[3]}"]
    if shape == "pair-reversed":
        return [f"{w[0]}{TEXT}{w[1]}", f"{w[2]}{QUERY}{w[3]}"]
    return [f"{w[0]}{QUERY}", f"{w[1]}{QUERY}{w[2]}{TEXT}{w[3]}"]


def fill(segment: str, query: str, text: str) -> str:
    """A placeholder-by-placeholder fill, independent of join_query's split/replace."""
    parts = re.split(r"(\{query\}|\{text\})", segment)
    return "".join(query if p == QUERY else text if p == TEXT else p for p in parts)


@props(60)
@given(template=templates(), query=texts(0, 4), text=multiline_texts, maxlen=st.integers(8, 64),
       language=st.sampled_from(["zh", "en"]), data=st.data())  # fmt: skip
@example(template=["{query}{text}"], query="ab", text="cd ef", maxlen=16, language="en", data=None)
def test_query_concatenation_keeps_answer_offsets(template, query, text, maxlen, language, data) -> None:
    check_template(template)
    joined = join_query(template, query, text)
    assert list(joined.segments) == [fill(s, query, text) for s in template]
    segment = joined.segments[joined.text_segment]
    assert segment[joined.text_start : joined.text_end] == text
    assert TEXT in template[joined.text_segment]
    tok = tokenizer(language)
    encoding = tok.encode(*joined.segments, maxlen=maxlen)
    check_encoding(encoding, list(joined.segments), maxlen)
    offsets = text_offsets(encoding, joined)
    mask = text_mask(offsets)
    kept = kept_text_chars(encoding, joined)
    assert 0 <= kept <= len(text)
    for i, span in enumerate(offsets):
        if span != NO_SPAN:
            assert mask[i] == 1 and 0 <= span[0] <= span[1] <= len(text)
            assert encoding.segment_ids[i] == joined.text_segment
    if not text or data is None:
        return
    for _ in range(3):
        start = data.draw(st.integers(0, len(text) - 1))
        end = data.draw(st.integers(start + 1, min(len(text), start + 20)))
        seg_start, seg_end = to_segment_span(joined, start, end)
        assert segment[seg_start:seg_end] == text[start:end]
        got = answer_token_span(encoding, joined, start, end)
        if language == "zh":  # one token per character: exact whenever the answer survived truncation
            if end <= kept:
                assert got is not None and token_span_to_text_span(offsets, *got) == (start, end)
            else:
                assert got is None
            continue
        touching = [  # tokens of the text's segment that overlap the answer
            k for k, (s, o) in enumerate(zip(encoding.segment_ids, encoding.offsets))
            if s == joined.text_segment and o != NO_SPAN and o[0] < seg_end and seg_start < o[1]
        ]  # fmt: skip
        if got is None:  # documented: truncated, no token, or an edge token that straddles the text's edge
            assert end > kept or not touching or NO_SPAN in (offsets[touching[0]], offsets[touching[-1]])
            continue
        assert got == (touching[0], touching[-1])
        i, j = got
        assert i <= j and offsets[i] != NO_SPAN and offsets[j] != NO_SPAN
        first, last = token_span_to_text_span(offsets, i, j)
        assert first < end and start < last and end <= kept
        for k, span in enumerate(offsets):  # every text token touching the answer lies within (i, j)
            if span != NO_SPAN and span[0] < end and start < span[1]:
                assert i <= k <= j

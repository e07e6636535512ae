"""Spans and BIO tags (``pipeline.text.spans``) on random and adversarial input: property-based tests."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.text.spans import (
    I_WITHOUT_B,
    TYPE_CHANGE,
    MalformedBio,
    bio_to_spans,
    char_span_to_units,
    parse_bio,
    remove_overlaps,
    spans_to_bio,
    split_tag,
    word_units,
)
from tests.helpers import multiline_texts, props, spans_over, texts

pytestmark = pytest.mark.unit


@props(100)
@given(data=st.data(), length=st.integers(0, 40))
def test_spans_bio_round_trip(data, length) -> None:
    spans = data.draw(spans_over(length))
    tags = spans_to_bio(spans, length)
    assert len(tags) == length
    assert bio_to_spans(tags, strict=True) == sorted(spans)
    assert parse_bio(tags) == (sorted(spans), [])


@props(150)
@given(
    tag_list=st.lists(
        st.one_of(
            st.just("O"),
            st.builds(lambda p, t: f"{p}-{t}", st.sampled_from("BI"), st.sampled_from(["X", "Y", "X-Y", "中", "é"])),
        ),
        max_size=30,
    )
)
def test_parse_bio_repairs_every_malformed_sequence_and_counts_it(tag_list) -> None:
    spans, repairs = parse_bio(tag_list)
    retagged = spans_to_bio(spans, len(tag_list))  # raises unless in range, non-overlapping, valid types
    # the repaired reading: every listed I- tag became a B- tag, nothing else changed
    repaired = list(tag_list)
    for index, problem in repairs:
        prefix, label = split_tag(tag_list[index])
        assert prefix == "I" and problem in (I_WITHOUT_B, TYPE_CHANGE)
        previous = split_tag(tag_list[index - 1]) if index else ("O", "")
        assert problem == (I_WITHOUT_B if previous[0] == "O" else TYPE_CHANGE)
        repaired[index] = f"B-{label}"
    assert retagged == repaired
    assert parse_bio(repaired) == (spans, [])
    if repairs:
        with pytest.raises(MalformedBio):
            bio_to_spans(tag_list, strict=True)
    else:
        assert bio_to_spans(tag_list, strict=True) == spans


@props(100)
@given(tag=texts(0, 3))
def test_split_tag_accepts_or_raises_value_error(tag) -> None:
    try:
        prefix, label = split_tag(tag)
    except ValueError:
        return
    if tag == "O":
        assert (prefix, label) == ("O", "")
    else:
        assert prefix in ("B", "I") and label and tag == f"{prefix}-{label}"


@props(100)
@given(
    spans=st.lists(
        st.builds(lambda s, n, t: (s, s + n, t), st.integers(0, 30), st.integers(1, 8), st.sampled_from("AB")),
        max_size=10,
    )
)
def test_remove_overlaps_keeps_a_disjoint_subset_and_lists_the_rest(spans) -> None:
    kept, dropped = remove_overlaps(spans)
    assert Counter(kept) + Counter(dropped) == Counter(spans)
    assert kept == sorted(kept)
    assert all(a[1] <= b[0] for a, b in zip(kept, kept[1:]))
    for span in dropped:  # each dropped span lost to a kept one at least as long
        assert any(k[0] < span[1] and span[0] < k[1] and k[1] - k[0] >= span[1] - span[0] for k in kept)


@props(80)
@given(text=multiline_texts, data=st.data())
def test_char_span_to_units_finds_exactly_the_overlapping_words(text, data) -> None:
    units = word_units(text)
    assert all(text[a:b] and not any(ch.isspace() for ch in text[a:b]) for a, b in units)
    assert "".join(text[a:b] for a, b in units) == "".join(text.split())
    if not text:
        return
    start = data.draw(st.integers(0, len(text) - 1))
    end = data.draw(st.integers(start + 1, len(text)))
    overlapping = [k for k, (a, b) in enumerate(units) if a < end and start < b]
    got = char_span_to_units(units, start, end)
    assert got == ((overlapping[0], overlapping[-1] + 1) if overlapping else None)

"""BIO decoding of sequence labeling (``pipeline.kinds.sequence_labeling.decoding``): word-piece tags on
adversarial text with the real English tokenizer (building it imports TensorFlow)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.kinds.sequence_labeling.decoding import first_pieces, piece_tags, token_units
from pipeline.text.spans import parse_bio, spans_to_bio, split_tag, word_units
from tests.helpers import props, spans_over, token_texts, tokenizer

pytestmark = pytest.mark.model


@props(40)
@given(text=token_texts, data=st.data())
def test_piece_tags_are_valid_bio_for_the_word_units(text, data) -> None:
    tok = tokenizer("en")
    encoding = tok.encode(text, maxlen=data.draw(st.integers(8, 64)))
    units = word_units(text)
    spans = data.draw(spans_over(len(units), st.sampled_from(["PER", "LOC"])))
    unit_tags = spans_to_bio(spans, len(units))
    owners = token_units(encoding.offsets, units)
    assert owners[0] == owners[-1] == -1
    assert all(x <= y for x, y in zip([o for o in owners if o >= 0], [o for o in owners if o >= 0][1:]))
    first = first_pieces(owners, len(units))
    assert all(f == -1 or owners[f] == u for u, f in enumerate(first))
    tags = piece_tags(unit_tags, owners)
    assert len(tags) == len(owners)
    assert parse_bio(tags)[1] == [], (tags, unit_tags, owners)  # valid BIO for the CRF
    for unit, token in enumerate(first):  # a unit's first piece carries its entity
        if token >= 0:
            assert split_tag(tags[token])[1] == split_tag(unit_tags[unit])[1]


def test_piece_tags_stay_valid_bio_when_a_word_has_no_token() -> None:
    text = "New \u200b\x00 York"  # the middle word is only invisible characters: WordPiece drops it
    encoding = tokenizer("en").encode(text)
    units = word_units(text)
    owners = token_units(encoding.offsets, units)
    assert first_pieces(owners, len(units))[1] == -1
    tags = piece_tags(spans_to_bio([(1, 3, "LOC")], len(units)), owners)
    assert parse_bio(tags) == ([(2, 3, "LOC")], [])  # the entity starts at the first word that has a token

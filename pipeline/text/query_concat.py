"""Joining a query and a text into one model input by a template, and the offset arithmetic around it.

A template is a list of one or two segment templates, e.g. ``["___{query}___{text}"]`` (one
segment, as in the CCKS 2019 seed article) or ``["{query}", "{text}"]`` (a pair,
``[CLS] query [SEP] text [SEP]``, as for SQuAD). ``{text}`` occurs exactly once over all segments,
``{query}`` at least once; placeholders are replaced literally (no ``str.format``), so braces in
queries, texts or the template's own wording are harmless.

Answers are character spans of the original text. :func:`join_query` records where the text
starts inside its segment, so a span moves into segment coordinates by adding that offset and
back by subtracting it; tokens are related to text characters through ``Encoding.offsets``.
Everything here is pure (no TensorFlow).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.text.tokenization import NO_SPAN, Encoding, Span, char_span_to_token_span

QUERY = "{query}"
TEXT = "{text}"
#: the template of records that carry none: a sentence pair, [CLS] query [SEP] text [SEP]
DEFAULT_TEMPLATE = (QUERY, TEXT)


@dataclass(frozen=True)
class JoinedInput:
    """The segments fed to the tokenizer, and where the text lies in them."""

    segments: tuple[str, ...]
    text_segment: int  #: index of the segment holding the text
    text_start: int  #: character offset of the text inside that segment
    text_length: int

    @property
    def text_end(self) -> int:
        return self.text_start + self.text_length


def check_template(template: Sequence[str]) -> list[str]:
    """Validate a template; return it as a list. Raises ValueError naming the problem."""
    template = list(template)
    if not 1 <= len(template) <= 2:
        raise ValueError(f"a template has one or two segments, got {len(template)}: {template}")
    texts = sum(segment.count(TEXT) for segment in template)
    if texts != 1:
        raise ValueError(f"{TEXT} must occur exactly once in the template, found {texts}: {template}")
    if not any(QUERY in segment for segment in template):
        raise ValueError(f"{QUERY} must occur in the template: {template}")
    return template


def join_query(template: Sequence[str], query: str, text: str) -> JoinedInput:
    """Fill ``template`` with ``query`` and ``text``; remember where the text went."""
    template = check_template(template)
    segments: list[str] = []
    text_segment = text_start = -1
    for index, segment in enumerate(template):
        if TEXT in segment:
            before, after = segment.split(TEXT)
            prefix = before.replace(QUERY, query)
            text_segment, text_start = index, len(prefix)
            segments.append(prefix + text + after.replace(QUERY, query))
        else:
            segments.append(segment.replace(QUERY, query))
    return JoinedInput(tuple(segments), text_segment, text_start, len(text))


def to_segment_span(joined: JoinedInput, start: int, end: int) -> Span:
    """A ``[start, end)`` span of the text, in coordinates of the text's segment."""
    if not 0 <= start < end <= joined.text_length:
        raise ValueError(f"span [{start}, {end}) is not inside the text (length {joined.text_length})")
    return start + joined.text_start, end + joined.text_start


def text_offsets(encoding: Encoding, joined: JoinedInput) -> list[Span]:
    """Per token, its ``[start, end)`` in the original text, or ``NO_SPAN`` if it is not a text token.

    A text token is a token of the text's segment whose characters lie wholly inside the text
    (query, separators, special tokens and a token straddling the text's edge are not).
    """
    result: list[Span] = []
    for segment, span in zip(encoding.segment_ids, encoding.offsets):
        inside = (
            segment == joined.text_segment
            and span != NO_SPAN
            and joined.text_start <= span[0]
            and span[1] <= joined.text_end
        )
        result.append((span[0] - joined.text_start, span[1] - joined.text_start) if inside else NO_SPAN)
    return result


def text_mask(offsets: Sequence[Span]) -> list[int]:
    """1 where a token belongs to the text (an answer may start or end there), else 0."""
    return [int(tuple(span) != NO_SPAN) for span in offsets]


def kept_text_chars(encoding: Encoding, joined: JoinedInput) -> int:
    """How many leading characters of the text survived truncation."""
    kept = encoding.kept_chars[joined.text_segment] if encoding.kept_chars else joined.text_end
    return max(0, min(joined.text_length, kept - joined.text_start))


def answer_token_span(encoding: Encoding, joined: JoinedInput, start: int, end: int) -> tuple[int, int] | None:
    """Inclusive token indices of the text span ``[start, end)``, or None if it cannot be pointed at.

    None when truncation cut the span, when it covers no token (only whitespace), or when its
    first or last token is not a text token (it straddles the text's edge).
    """
    seg_start, seg_end = to_segment_span(joined, start, end)
    tokens = char_span_to_token_span(encoding, seg_start, seg_end, segment=joined.text_segment)
    if tokens is None:
        return None
    offsets = text_offsets(encoding, joined)
    i, j = tokens
    return tokens if offsets[i] != NO_SPAN and offsets[j] != NO_SPAN else None


def token_span_to_text_span(offsets: Sequence[Span], i: int, j: int) -> Span:
    """The ``[start, end)`` text characters covered by text tokens ``i..j`` (inclusive)."""
    first, last = tuple(offsets[i]), tuple(offsets[j])
    if i > j or first == NO_SPAN or last == NO_SPAN:
        raise ValueError(f"token span ({i}, {j}) does not start and end on text tokens")
    return first[0], last[1]


def query_type(record: dict) -> str:
    """The record's query type (the reader's ``query_type``, else the query itself)."""
    return record.get("query_type") or record["query"]

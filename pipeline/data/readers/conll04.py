"""CoNLL04 in the unified JSON of "Two are better than one" / SpERT: token-level entities and relations.

A split file is a JSON list of ``{"tokens": [...], "entities": [[start, end, type]], "relations":
[[head_start, head_end, tail_start, tail_end, type]]}`` with token indices, ``end`` exclusive. The
text becomes the tokens joined by single spaces, and token spans become exact character spans.
Relations are the canonical triples (head = subject, tail = object); entity types are not used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Literal

from pipeline.data.readers.base import DataSource, ReadReport
from pipeline.data.readers.files import DataError, check_unicode, read_json_document


class CoNLL04Source(DataSource):
    """``format: conll04`` -- a JSON list of token-level sentences with relations."""

    format: Literal["conll04"]


def read_conll04(source: CoNLL04Source, path: Path, split: str, report: ReadReport) -> Iterator[dict]:
    """Yield ``{"id", "text", "triples"}`` per sentence; repeated relations are counted skips."""
    sentences = read_json_document(path, "CoNLL04 JSON", source.encoding)
    if not isinstance(sentences, list):
        raise DataError(f"{path}: expected a JSON list of sentences, got {type(sentences).__name__}")
    for index, sentence in enumerate(sentences):
        where = f"{path}: sentence {index}"
        tokens = _tokens(sentence, where)
        if not tokens:
            report.skip(split, "no tokens")
            continue
        text, starts = join_tokens(tokens)
        triples, seen = [], set()
        for number, relation in enumerate(_list(sentence, "relations", where)):
            head, tail, predicate = _relation(relation, len(tokens), f"{where}: relations[{number}]")
            if (head, predicate, tail) in seen:
                report.skip(split, "repeated relation")
                continue
            seen.add((head, predicate, tail))
            triples.append(
                {
                    "subject": _mention(text, starts, tokens, *head),
                    "predicate": predicate,
                    "object": _mention(text, starts, tokens, *tail),
                }
            )
        yield {"id": f"{split}-{index + 1}", "text": text, "triples": triples}


def join_tokens(tokens: list[str]) -> tuple[str, list[int]]:
    """The tokens joined by single spaces, and each token's first character in that text."""
    starts, position = [], 0
    for token in tokens:
        starts.append(position)
        position += len(token) + 1
    return " ".join(tokens), starts


def token_span_chars(starts: list[int], tokens: list[str], start: int, end: int) -> tuple[int, int]:
    """Character ``[start, end)`` of tokens ``start .. end - 1`` in the joined text."""
    return starts[start], starts[end - 1] + len(tokens[end - 1])


def _mention(text: str, starts: list[int], tokens: list[str], start: int, end: int) -> dict:
    first, last = token_span_chars(starts, tokens, start, end)
    return {"start": first, "end": last, "text": text[first:last]}


def _tokens(sentence: Any, where: str) -> list[str]:
    tokens = _list(sentence, "tokens", where)
    for position, token in enumerate(tokens):
        if not isinstance(token, str):
            raise DataError(f"{where}: tokens[{position}] should be a string, got {type(token).__name__}")
        if not token.strip():  # it would make empty or blank mentions
            raise DataError(f"{where}: tokens[{position}] is empty or only whitespace: {token!r}")
        check_unicode(token, f"{where}: tokens[{position}]")
    return tokens


def _list(sentence: Any, name: str, where: str) -> list:
    if not isinstance(sentence, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(sentence).__name__}")
    if name not in sentence:
        raise DataError(f"{where}: field {name!r} is missing")
    if not isinstance(sentence[name], list):
        raise DataError(f"{where}: field {name!r} should be a list, got {type(sentence[name]).__name__}")
    return sentence[name]


def _relation(relation: Any, n_tokens: int, where: str) -> tuple[tuple[int, int], tuple[int, int], str]:
    """``((head_start, head_end), (tail_start, tail_end), type)``, checked against the sentence."""
    if not (isinstance(relation, list) and len(relation) == 5 and isinstance(relation[4], str)):
        raise DataError(f"{where}: expected [head_start, head_end, tail_start, tail_end, type], got {relation!r}")
    if not check_unicode(relation[4], f"{where}: type").strip():
        raise DataError(f"{where}: the relation type is empty")
    bounds = relation[:4]
    if not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds):
        raise DataError(f"{where}: token indices should be integers, got {bounds!r}")
    head, tail = (bounds[0], bounds[1]), (bounds[2], bounds[3])
    for name, (start, end) in (("head", head), ("tail", tail)):
        if not 0 <= start < end <= n_tokens:
            raise DataError(f"{where}: {name} span [{start}, {end}) is not within the {n_tokens} tokens")
    return head, tail, relation[4]

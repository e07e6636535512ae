"""CoNLL-2003 style files: one ``token ... tag`` line per token, blank lines between sentences.

Columns are split on whitespace; ``token_column`` and ``tag_column`` pick the token and its IOB2
NER tag (``-1``: the last column). ``-DOCSTART-`` lines are document separators, not sentences.
A sentence becomes ``text`` = its tokens joined by ``join`` (by default the task language's word
separator: a space in English, nothing in Chinese, whose corpora put one character per line), with
character spans for the entities. Malformed BIO (an ``I-X`` at the start, after ``O`` or after another type) is repaired
as conlleval reads it -- the ``I-X`` opens a new entity -- and each repair is counted in the
:class:`~pipeline.data.readers.base.ReadReport`; a tag that is not ``O``/``B-X``/``I-X`` or a line
with too few columns is a :class:`DataError` naming file:line and field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Literal

from pipeline.data.readers.base import DataSource, ReadReport, source_lines
from pipeline.data.readers.files import DataError
from pipeline.text.spans import parse_bio, split_tag
from pipeline.text.tokenization import WORD_SEPARATOR

DOCSTART = "-DOCSTART-"


class ConllSource(DataSource):
    """``format: conll`` -- e.g. CoNLL-2003 ``token POS chunk NER``."""

    format: Literal["conll"]
    token_column: int = 0
    tag_column: int = -1
    #: what goes between tokens in ``text``; unset: the task language's word separator ('' for zh)
    join: str | None = None

    def for_language(self, language: str) -> "ConllSource":
        """This source with ``join`` set from ``language`` unless params set it."""
        return self if self.join is not None else self.model_copy(update={"join": WORD_SEPARATOR[language]})


def read_conll(source: ConllSource, path: Path, split: str, report: ReadReport) -> Iterator[dict]:
    """Yield one ``{"id", "text", "entities"}`` record per sentence; ids name the first token's line."""
    tokens: list[str] = []
    tags: list[str] = []
    first_line = 0
    needed = max(_width(source.token_column), _width(source.tag_column))
    join = " " if source.join is None else source.join
    for line_no, line in source_lines(source, path, split, report):
        fields = line.split()
        if not fields or fields[0] == DOCSTART:
            if tokens:
                yield _sentence(tokens, tags, join, f"{split}-{first_line}", split, report)
            tokens, tags = [], []
            continue
        # token_column 0 and tag_column -1 are one and the same field on a line of one column ('O')
        if len(fields) < needed or source.token_column % len(fields) == source.tag_column % len(fields):
            raise DataError(
                f"{path}:{line_no}: expected at least {max(needed, 2)} whitespace-separated columns, "
                f"found {len(fields)}: {_shown(line)}"
            )
        tag = fields[source.tag_column]
        try:
            split_tag(tag)
        except ValueError:
            raise DataError(
                f"{path}:{line_no}: field 'tag' (column {source.tag_column}): {tag!r} is not an IOB2 tag "
                "(O, B-TYPE, I-TYPE)"
            ) from None
        if not tokens:
            first_line = line_no
        tokens.append(fields[source.token_column])
        tags.append(tag)
    if tokens:
        yield _sentence(tokens, tags, join, f"{split}-{first_line}", split, report)


def _width(column: int) -> int:
    """How many columns a line needs for ``column`` (negative: from the end) to exist."""
    return column + 1 if column >= 0 else -column


def _shown(line: str, limit: int = 60) -> str:
    """The line as a message shows it: quoted, invisible and control characters escaped (``'\\ufeff'``)."""
    return repr(line if len(line) <= limit else line[:limit] + "...")


def _sentence(tokens: list[str], tags: list[str], join: str, record_id: str, split: str, report: ReadReport) -> dict:
    """The record of one sentence: its tokens joined by ``join`` and character-span entities."""
    spans, repairs = parse_bio(tags)
    for _, problem in repairs:
        report.skip(split, f"repaired BIO: {problem}")
    starts, position = [], 0
    for token in tokens:
        starts.append(position)
        position += len(token) + len(join)
    text = join.join(tokens)
    entities = []
    for i, j, label in spans:
        start, end = starts[i], starts[j - 1] + len(tokens[j - 1])
        entities.append({"start": start, "end": end, "type": label, "text": text[start:end]})
    return {"id": record_id, "text": text, "entities": entities}

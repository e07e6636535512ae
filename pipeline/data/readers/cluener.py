"""CLUENER2020 JSON lines: ``{"text": ..., "label": {type: {mention: [[start, end], ...]}}}``.

Spans are END-INCLUSIVE character offsets upstream; records carry ``end`` exclusive. Each span is
checked: one outside the text or whose characters differ from its mention is skipped and counted
in the :class:`~pipeline.data.readers.base.ReadReport` (the rest of the example is kept); of
overlapping (nested) spans the longest is kept and the others are counted as skipped. A line
that is not JSON or whose fields have the wrong shape is a :class:`DataError` naming file:line
and field. ``"label": {}`` (or ``null``) is an example without entities.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Literal

from pipeline.data.readers.base import DataSource, ReadReport, source_lines
from pipeline.data.readers.files import DataError, check_unicode, parse_json_line
from pipeline.text.spans import remove_overlaps


class CluenerSource(DataSource):
    """``format: cluener_json`` -- CLUENER2020's ``train.json`` / ``dev.json`` (one object per line)."""

    format: Literal["cluener_json"]


def read_cluener(source: CluenerSource, path: Path, split: str, report: ReadReport) -> Iterator[dict]:
    """Yield ``{"id", "text", "entities"}`` per non-empty line, entities sorted by start."""
    for line_no, line in source_lines(source, path, split, report):
        where = f"{path}:{line_no}"
        if not line.strip():
            report.skip(split, "empty line")
            continue
        obj = parse_json_line(line, where)
        if not isinstance(obj, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        text = obj.get("text")
        if not isinstance(text, str):
            raise DataError(f"{where}: field 'text' is missing or not a string")
        check_unicode(text, f"{where}: field 'text'")
        if "label" not in obj:
            raise DataError(f"{where}: field 'label' is missing (an unlabelled file cannot be a split)")
        if not text.strip():
            report.skip(split, "empty text")
            continue
        spans = [span for span in _spans(obj["label"], text, where) if _valid(span, text, split, report)]
        kept, dropped = remove_overlaps((start, end, label) for start, end, label, _ in spans)
        for _ in dropped:
            report.skip(split, "entity overlapping a longer one (or a duplicate)")
        yield {
            "id": f"{split}-{line_no}",
            "text": text,
            "entities": [{"start": s, "end": e, "type": t, "text": text[s:e]} for s, e, t in kept],
        }


def _spans(label: Any, text: str, where: str) -> Iterator[tuple[int, int, str, str]]:
    """``(start, end_exclusive, type, mention)`` of every listed span, shapes checked."""
    if label is None:
        return
    if not isinstance(label, dict):
        raise DataError(f"{where}: field 'label' must be an object {{type: {{mention: [[start, end]]}}}}")
    for entity_type, mentions in label.items():
        field = f"label.{entity_type}"
        if not entity_type or entity_type != entity_type.strip() or not isinstance(mentions, dict):
            raise DataError(
                f"{where}: field '{field}' must be a non-empty type (no surrounding spaces) mapping mentions to spans"
            )
        check_unicode(entity_type, f"{where}: field 'label': type")
        for mention, pairs in mentions.items():
            if not isinstance(pairs, list) or not all(_is_pair(pair) for pair in pairs):
                raise DataError(f"{where}: field '{field}.{mention}' must be a list of [start, end] integer pairs")
            for start, end in pairs:
                yield start, end + 1, entity_type, mention


def _is_pair(pair: Any) -> bool:
    return (
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
    )


def _valid(span: tuple[int, int, str, str], text: str, split: str, report: ReadReport) -> bool:
    """Whether a span lies inside the text and spells its mention; counts the skip if not."""
    start, end, _, mention = span
    if not 0 <= start < end <= len(text):
        report.skip(split, "entity span outside the text")
        return False
    if text[start:end] != mention:
        report.skip(split, "entity span does not spell its mention")
        return False
    return True

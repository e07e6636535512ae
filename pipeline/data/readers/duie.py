"""DuIE 2.0 / SKE relation extraction: JSON lines of a text and its (subject, predicate, object) list.

A line is ``{"text": ..., "spo_list": [{"subject": str, "predicate": str, "object": {"@value": str,
...}, ...}]}`` (DuIE 2.0); SKE / DuIE 1.0 lines, whose ``object`` is a plain string, read the same.
The files give entity strings, not positions: a subject or object is placed at its FIRST
occurrence in the text (what the bert4keras example's ``search`` does). Only the ``@value`` slot of a
DuIE 2.0 complex object is kept; the others (``inWork``, ``onDate``, ...) are counted in the
:class:`~pipeline.data.readers.base.ReadReport`, as are triples whose subject or object is not found in
the text and repeated triples.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Literal

from pipeline.data.readers.base import DataSource, ReadReport, source_lines
from pipeline.data.readers.files import DEFAULT_ENCODING, DataError, check_unicode, decode_document, open_bytes, parse_json_line


class DuIESource(DataSource):
    """``format: duie`` -- JSON lines with ``text`` and ``spo_list``.

    ``schema_file`` (optional, a file beside the split files, e.g. ``duie_schema.json``): a JSON array of
    ``{"predicate", ...}``; triples with a predicate outside it are counted skips.
    """

    format: Literal["duie"]
    schema_file: str | None = None


def read_duie(source: DuIESource, path: Path, split: str, report: ReadReport) -> Iterator[dict]:
    """Yield ``{"id", "text", "triples"}`` per non-empty line, with character spans located in the text."""
    predicates = read_schema(path.parent / source.schema_file, source.encoding) if source.schema_file else None
    for line_no, line in source_lines(source, path, split, report):
        if not line.strip():
            report.skip(split, "empty line")
            continue
        where = f"{path}:{line_no}"
        row = parse_json_line(line, where)
        text = check_unicode(_field(row, "text", str, where), f"{where}: field 'text'")
        spo_list = _field(row, "spo_list", list, where)
        triples, seen = [], set()
        for index, spo in enumerate(spo_list):
            triple = _triple(spo, text, predicates, f"{where}: spo_list[{index}]", split, report)
            if triple is None:
                continue
            subject, obj = triple["subject"], triple["object"]
            key = (subject["start"], subject["end"], triple["predicate"], obj["start"], obj["end"])
            if key in seen:
                report.skip(split, "repeated triple")
                continue
            seen.add(key)
            triples.append(triple)
        yield {"id": f"{split}-{line_no}", "text": text, "triples": triples}


def read_schema(path: Path, encoding: str = DEFAULT_ENCODING) -> set[str]:
    """The predicates of a DuIE schema file (a JSON array, or JSON lines, of ``{"predicate": ...}``)."""
    with open_bytes(path) as handle:
        raw = decode_document(path, handle.read(), encoding)
    try:
        entries = json.loads(raw)
    except (RecursionError, ValueError):
        try:  # JSON lines end at '\n' only: a raw U+2028 or U+0085 inside a string is not a line break
            entries = [json.loads(line) for line in raw.split("\n") if line.strip()]
        except (RecursionError, ValueError) as exc:
            raise DataError(f"{path}: not a JSON array nor JSON lines ({getattr(exc, 'msg', exc)})") from None
    if isinstance(entries, dict):  # JSON lines of a single entry
        entries = [entries]
    if not isinstance(entries, list):
        raise DataError(f"{path}: expected a JSON array of schema entries")
    predicates = set()
    for index, entry in enumerate(entries):
        predicates.add(_field(entry, "predicate", str, f"{path}: entry {index}"))
    return predicates


def locate(text: str, mention: str) -> tuple[int, int] | None:
    """``[start, end)`` of the first occurrence of ``mention`` in ``text``; None if absent or empty."""
    start = text.find(mention) if mention else -1
    return (start, start + len(mention)) if start >= 0 else None


def _triple(
    spo: Any, text: str, predicates: set[str] | None, where: str, split: str, report: ReadReport
) -> dict | None:
    """One canonical triple, or None (counted in ``report``) when it cannot be placed."""
    subject = _field(spo, "subject", str, where)
    predicate = check_unicode(_field(spo, "predicate", str, where), f"{where}: field 'predicate'")
    if not predicate.strip():
        raise DataError(f"{where}: field 'predicate' is empty")
    value = _field(spo, "object", (str, dict), where)
    if isinstance(value, dict):
        for slot in sorted(set(value) - {"@value"}):
            report.skip(split, f"object slot {slot!r} dropped (only '@value' is kept)")
        value = _field(value, "@value", str, f"{where}: object")
    if predicates is not None and predicate not in predicates:
        report.skip(split, "predicate not in schema")
        return None
    subject_span, object_span = locate(text, subject), locate(text, value)
    if subject_span is None:
        report.skip(split, "subject not found in text")
        return None
    if object_span is None:
        report.skip(split, "object not found in text")
        return None
    return {
        "subject": {"start": subject_span[0], "end": subject_span[1], "text": subject},
        "predicate": predicate,
        "object": {"start": object_span[0], "end": object_span[1], "text": value},
    }


def _field(row: Any, name: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``row[name]``, checked to be of ``kind``; a :class:`DataError` naming the field otherwise."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    if name not in row:
        raise DataError(f"{where}: field {name!r} is missing")
    value = row[name]
    if not isinstance(value, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise DataError(f"{where}: field {name!r} should be {names}, got {type(value).__name__}")
    return value

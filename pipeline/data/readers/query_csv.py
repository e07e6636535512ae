"""Query/answer CSV files (CCKS 2019 event subjects: ``id,text,event_type,subject``) as span records.

Each row is a text, a query and an answer string; the answer is located in the text by its first
occurrence. Rows whose answer is absent from the text are skipped and counted; rows with the same
text and query are merged into one record holding all their answers (``merge_duplicates``; CCKS
has 624 such groups, e.g. two companies with the same event in one headline); records without an
answer (empty, or one of ``no_answer``, e.g. ``NaN``) are skipped or kept as unanswerable examples
(``missing_answer``). Every skip, merge and kept unanswerable record is counted in the ReadReport.

Records: ``{"id", "text", "query", "answers": [{"start", "end", "text"}], "query_type", "template"}``;
``template`` (from the data block) tells the kind how to join query and text, ``query_type`` groups
queries for per-type scores (here the query itself, e.g. the event type).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from pipeline.text.query_concat import check_template
from pipeline.data.readers.base import DataSource, ReadReport
from pipeline.data.readers.files import DataError, csv_rows

#: column names that carry meaning; any other name (conventionally ``_``) is read and ignored
KNOWN_COLUMNS = ("text", "query", "answer")

#: ReadReport reasons
NOT_IN_TEXT = "answer not in text"
NO_ANSWER_SKIPPED = "no answer (skipped)"
NO_ANSWER_KEPT = "no answer (not skipped: kept as unanswerable)"
MERGED = "same text and query as an earlier row (answers merged into it)"


class QuerySource(DataSource):
    """What every query/answer format shares: the join template and the handling of missing answers."""

    template: list[str]
    missing_answer: Literal["skip", "keep"]

    @field_validator("template")
    @classmethod
    def _valid_template(cls, template: list[str]) -> list[str]:
        return check_template(template)


class QueryCsvSource(QuerySource):
    """``format: query_csv`` -- one query/answer pair per CSV row (RFC 4180 quoting)."""

    format: Literal["query_csv"]
    columns: list[str]
    header: bool
    delimiter: str = ","
    #: answer values meaning "no answer" (compared case-insensitively; an empty field always is)
    no_answer: list[str] = Field(default_factory=lambda: ["NaN"])
    #: rows with the same text and query become one record holding every distinct answer
    merge_duplicates: bool = True

    @field_validator("columns")
    @classmethod
    def _needs_text_query_answer(cls, columns: list[str]) -> list[str]:
        for needed in KNOWN_COLUMNS:
            if columns.count(needed) != 1:
                raise ValueError(f"must name exactly one {needed!r} column, got {columns}")
        return columns


def locate_answer(text: str, answer: str) -> dict | None:
    """The first occurrence of ``answer`` in ``text`` as ``{"start", "end", "text"}``, or None."""
    start = text.find(answer) if answer else -1
    return None if start < 0 else {"start": start, "end": start + len(answer), "text": answer}


def read_query_csv(source: QueryCsvSource, path: Path, split: str, report: ReadReport) -> Iterator[dict]:
    """Yield one span record per data row (or per distinct text and query, with ``merge_duplicates``);
    the ``id`` is ``<split>-<line where the (first) row starts>``."""
    no_answer = {value.casefold() for value in source.no_answer} | {""}
    records: dict[tuple[str, str], dict] = {}
    for line_no, row in _csv_rows(source, path, split, report):
        if row["answer"].casefold() in no_answer:
            answer = None
        elif (answer := locate_answer(row["text"], row["answer"])) is None:
            report.skip(split, NOT_IN_TEXT)
            continue
        key = (row["text"], row["query"]) if source.merge_duplicates else (str(line_no), "")
        if key in records:
            report.skip(split, MERGED)
            if answer is not None and answer not in records[key]["answers"]:
                records[key]["answers"].append(answer)
            continue
        records[key] = {
            "id": f"{split}-{line_no}",
            "text": row["text"],
            "query": row["query"],
            "answers": [] if answer is None else [answer],
            "query_type": row["query"],
            "template": source.template,
        }
    for record in records.values():
        if not record["answers"]:
            if source.missing_answer == "skip":
                report.skip(split, NO_ANSWER_SKIPPED)
                continue
            report.skip(split, NO_ANSWER_KEPT)
        yield record


def _csv_rows(source: QueryCsvSource, path: Path, split: str, report: ReadReport) -> Iterator[tuple[int, dict]]:
    """``(line where the row starts, {"text", "query", "answer"})`` per non-empty data row, stripped."""
    width = len(source.columns)
    for line_no, fields in csv_rows(path, source.encoding, delimiter=source.delimiter):
        if source.header and line_no == 1:
            continue
        if not any(field.strip() for field in fields):
            report.skip(split, "empty line")
            continue
        if len(fields) != width:
            raise DataError(
                f"{path}:{line_no}: expected {width} fields {source.columns} separated by "
                f"{source.delimiter!r}, found {len(fields)}"
            )
        row = {name: value.strip() for name, value in zip(source.columns, fields) if name in KNOWN_COLUMNS}
        if not row["text"]:
            report.skip(split, "empty text")
            continue
        if not row["query"]:
            raise DataError(f"{path}:{line_no}: field 'query' is empty")
        yield line_no, row

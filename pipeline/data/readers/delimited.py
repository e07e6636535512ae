"""Delimited text files: one example per line, fields split by a delimiter (TSV, 'label text', ...)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Literal

from pydantic import field_validator

from pipeline.data.readers.base import DataSource, ReadReport
from pipeline.data.readers.files import DataError, numbered_lines

#: Column names that carry meaning; any other name (conventionally ``_``) is read and ignored.
KNOWN_COLUMNS = ("text", "text_b", "label")


class DelimitedSource(DataSource):
    """``format: delimited`` -- e.g. ``text<TAB>label`` or ``<label> <sentence>``."""

    format: Literal["delimited"]
    delimiter: str
    columns: list[str]
    header: bool

    @field_validator("columns")
    @classmethod
    def _needs_text_and_label(cls, columns: list[str]) -> list[str]:
        for needed in ("text", "label"):
            if needed not in columns:
                raise ValueError(f"must name a {needed!r} column, got {columns}")
        return columns


def read_delimited(source: DelimitedSource, path: Path, split: str, report: ReadReport) -> Iterator[dict]:
    """Yield one record per non-empty line; the last column takes the rest of the line."""
    width = len(source.columns)
    for line_no, line in numbered_lines(path):
        if source.header and line_no == 1:
            continue
        if not line.strip():
            report.skip(split, "empty line")
            continue
        fields = line.split(source.delimiter, width - 1)
        if len(fields) != width:
            raise DataError(
                f"{path}:{line_no}: expected {width} fields {source.columns} separated by "
                f"{source.delimiter!r}, found {len(fields)}"
            )
        record = {"id": f"{split}-{line_no}"}
        for name, value in zip(source.columns, fields):
            if name in KNOWN_COLUMNS:
                record[name] = value.strip()
        if not record["text"]:
            report.skip(split, "empty text")
            continue
        if not record["label"]:
            raise DataError(f"{path}:{line_no}: field 'label' is empty")
        yield record

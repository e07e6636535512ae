"""Delimited text files: one example per row, fields split by a delimiter (CSV, TSV, 'label text', ...).

With ``quoting`` (standard CSV, the default for ``delimiter: ","``) rows are parsed by the standard
library's :mod:`csv`: a field holding the delimiter, a quote or a line break is quoted (``"a, b",c``),
``quotechar``, ``escapechar`` and ``doublequote`` as in :mod:`csv`. Without it (the default for tabs,
spaces and longer delimiters) a row is one line, split on the delimiter, and the last column takes the
rest of the line when it is a text (``<label> <sentence with spaces>``); a line with more fields
than ``columns`` whose last column is the label is an error, not a label holding a delimiter.

``columns`` names the fields by position (``[label, text]``; ``_`` for a field to ignore) or maps each
role to a header name or a 0-based position (``{text: sentence, label: 2}``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

from pydantic import field_validator, model_validator

from pipeline.data.readers.base import DataSource, ReadReport, source_lines
from pipeline.data.readers.files import DataError, csv_rows

#: Column names that carry meaning; any other name (conventionally ``_``) is read and ignored.
KNOWN_COLUMNS = ("text", "text_b", "label")


class DelimitedSource(DataSource):
    """``format: delimited`` -- e.g. ``text<TAB>label``, ``<label> <sentence>`` or a quoted CSV."""

    format: Literal["delimited"]
    delimiter: str
    columns: list[str] | dict[str, str | int]
    header: bool
    #: parse quoted fields as CSV does; unset: on for ``delimiter: ","``, off otherwise
    quoting: bool | None = None
    quotechar: str = '"'
    escapechar: str | None = None
    #: inside a quoted field, ``""`` stands for one quote
    doublequote: bool = True

    @field_validator("columns", mode="before")
    @classmethod
    def _list_or_mapping(cls, columns: object) -> object:
        if not isinstance(columns, (list, dict)):
            raise ValueError(
                f"not a list nor a mapping (got {columns!r}); hint: write a list of column names, e.g. "
                "'columns: [label, text]', or map roles to header names or positions, e.g. "
                "'columns: {text: sentence, label: 2}'"
            )
        return columns

    @field_validator("columns")
    @classmethod
    def _needs_text_and_label(cls, columns: list[str] | dict[str, str | int]) -> list[str] | dict[str, str | int]:
        for needed in ("text", "label"):
            if needed not in columns:
                raise ValueError(f"must name a {needed!r} column, got {columns}")
        if isinstance(columns, dict):
            unknown = [name for name in columns if name not in KNOWN_COLUMNS]
            if unknown:
                raise ValueError(f"unknown role {unknown[0]!r}; roles: {', '.join(KNOWN_COLUMNS)}")
            if any(isinstance(where, int) and where < 0 for where in columns.values()):
                raise ValueError("positions count from 0")
        return columns

    @model_validator(mode="after")
    def _valid_columns_and_dialect(self) -> "DelimitedSource":
        if isinstance(self.columns, dict):
            named = [name for name, where in self.columns.items() if isinstance(where, str)]
            if named and not self.header:
                raise ValueError(f"columns: {named[0]!r} is given by header name: set 'header: true'")
        if self.quoted:
            for name in ("delimiter", "quotechar", "escapechar"):
                value = getattr(self, name)
                if value is not None and len(value) != 1:
                    raise ValueError(f"{name} must be one character with quoting (got {value!r}); or set 'quoting: false'")
        return self

    @property
    def quoted(self) -> bool:
        """Whether rows are parsed as CSV (quoted fields)."""
        return self.delimiter == "," if self.quoting is None else self.quoting


@dataclass(frozen=True)
class Layout:
    """Where each role's field lies in a row, and how many fields a row has (``exact``) or at least has."""

    width: int
    roles: dict[str, int]
    exact: bool = True

    @property
    def rest_in_last(self) -> bool:
        """Whether an unquoted line's last field takes the rest of the line: only when it is a text."""
        last = [role for role, index in self.roles.items() if index == self.width - 1]
        return self.exact and bool(last) and last[0] in ("text", "text_b")

    def fits(self, fields: list[str]) -> bool:
        return len(fields) == self.width if self.exact else len(fields) >= self.width


def read_delimited(source: DelimitedSource, path: Path, split: str, report: ReadReport) -> Iterator[dict]:
    """Yield one ``{"id", "text", ["text_b"], "label"}`` record per non-empty row; ids name the row's first line."""
    layout = None if source.header else _layout(source, None, path, 0)
    for line_no, row in _rows(source, path, split, report):
        if layout is None:
            layout = _layout(source, row if isinstance(row, list) else row.split(source.delimiter), path, line_no)
            continue
        if isinstance(row, str):
            if not row.strip():
                report.skip(split, "empty line")
                continue
            fields = row.split(source.delimiter, layout.width - 1 if layout.rest_in_last else -1)
        elif not any(field.strip() for field in row):
            report.skip(split, "empty line")
            continue
        else:
            fields = row
        if not layout.fits(fields):
            raise DataError(
                f"{path}:{line_no}: expected {'' if layout.exact else 'at least '}{layout.width} fields {_names(source, layout)} separated by "
                f"{source.delimiter!r}, found {len(fields)}; hint: {_width_hint(source, fields)}"
            )
        record = {"id": f"{split}-{line_no}"}
        record.update((name, fields[index].strip()) for name, index in layout.roles.items())
        if not record["text"]:
            report.skip(split, "empty text")
            continue
        if not record["label"]:
            raise DataError(f"{path}:{line_no}: field 'label' is empty")
        yield record


def _rows(source: DelimitedSource, path: Path, split: str, report: ReadReport) -> Iterator[tuple[int, list[str] | str]]:
    """``(line, fields)`` per CSV row with quoting, else ``(line, the line itself)`` per line."""
    if source.quoted:
        yield from csv_rows(
            path, source.encoding, delimiter=source.delimiter, quotechar=source.quotechar,
            escapechar=source.escapechar, doublequote=source.doublequote,
        )
    else:
        yield from source_lines(source, path, split, report)


def _layout(source: DelimitedSource, header: list[str] | None, path: Path, line_no: int) -> Layout:
    """The row layout of ``columns``, resolving header names against ``header`` (the first row)."""
    if isinstance(source.columns, list):
        return Layout(len(source.columns), {n: i for i, n in enumerate(source.columns) if n in KNOWN_COLUMNS})
    names = [name.strip() for name in header] if header is not None else None
    roles = {}
    for role, where in source.columns.items():
        if isinstance(where, int):
            roles[role] = where
        elif names is not None and where in names:
            roles[role] = names.index(where)
        else:
            raise DataError(
                f"{path}:{line_no}: field {role!r}: no column named {where!r} in the header "
                f"(columns: {', '.join(map(repr, names or []))})"
            )
    if names is None:  # positions only: a row has at least the fields they name
        return Layout(max(roles.values()) + 1, roles, exact=False)
    if max(roles.values()) >= len(names):
        raise DataError(f"{path}:{line_no}: columns: position {max(roles.values())} is beyond the header's {len(names)} fields")
    return Layout(len(names), roles)


def _names(source: DelimitedSource, layout: Layout) -> list[str]:
    if isinstance(source.columns, list):
        return source.columns
    by_index = {index: role for role, index in layout.roles.items()}
    return [by_index.get(i, "_") for i in range(layout.width)]


def _width_hint(source: DelimitedSource, fields: list[str]) -> str:
    """Why a row may have the wrong number of fields."""
    if source.quoted:
        return f'a field that holds {source.delimiter!r} must be quoted ("a{source.delimiter} b")'
    if any(field.lstrip().startswith(source.quotechar) for field in fields):
        return "the row holds quoted fields: set 'quoting: true' in the data block to read it as CSV"
    return "check 'delimiter' and 'columns' against the file"

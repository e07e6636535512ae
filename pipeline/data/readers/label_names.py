"""Label names: a class-list file as datasets ship it, and what a label that is really a broken row looks like."""

from __future__ import annotations

from pathlib import Path

from pipeline.data.readers.base import DataSource
from pipeline.data.readers.files import DEFAULT_ENCODING, DataError, invisible_only, numbered_lines

#: characters a real label seldom holds but a mis-split row does (a CSV field's quote or delimiter)
ROW_DEBRIS = ('"', "\t", ",")


def read_label_names(path: Path, encoding: str = DEFAULT_ENCODING) -> dict[str, str]:
    """``{raw label: name}`` from a class-list file: one name per line, line 1 naming label ``0``
    (``class.txt``), or ``<raw label><TAB><name>`` on every line. Blank lines at the end are ignored;
    a blank line before a name, a repeated name or raw label is a :class:`DataError` naming both lines."""
    lines = [(n, "" if invisible_only(line) else line.strip()) for n, line in numbered_lines(path, encoding)]
    while lines and not lines[-1][1]:
        lines.pop()
    if not lines:
        raise DataError(f"{path}: no label names; hint: one name per line, the first naming label 0")
    tabbed = ["\t" in line for _, line in lines]
    if any(tabbed) and not all(tabbed):
        line_no = lines[tabbed.index(not tabbed[0])][0]
        raise DataError(f"{path}:{line_no}: mixes '<label><TAB><name>' lines with plain names: use one form")
    names: dict[str, str] = {}
    seen: dict[str, int] = {}
    for index, (line_no, line) in enumerate(lines):
        raw, name = [part.strip() for part in line.split("\t", 1)] if tabbed[0] else (str(index), line)
        if not raw or not name:
            raise DataError(f"{path}:{line_no}: empty label name; hint: one name per line, no blank lines between")
        if raw in names:
            raise DataError(f"{path}:{line_no}: label {raw!r} is named twice (line {seen[raw]} too)")
        if name in names.values():
            other = next(seen[key] for key, value in names.items() if value == name)
            raise DataError(f"{path}:{line_no}: name {name!r} is given twice (line {other} too)")
        names[raw], seen[raw] = name, line_no
    return names


def suspicious_label_hint(label: str, source: DataSource | None = None) -> str:
    """``; hint: ...`` when ``label`` looks like the rest of a mis-split row (it holds a quote or a
    delimiter), else ``""``."""
    debris = [ch for ch in (*ROW_DEBRIS, getattr(source, "delimiter", "")) if ch and ch in label]
    if not debris:
        return ""
    return (
        f"; hint: the label holds {debris[0]!r}, so the row was probably split inside a quoted field: "
        "set 'quoting: true' (and 'quotechar') in the data block, or check 'delimiter' and 'columns'"
    )

"""Opening dataset files, including members of zip archives addressed as ordinary paths."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any, Iterator


class DataError(ValueError):
    """Bad input data; the message names the file, the line and the field."""


def open_bytes(path: str | Path) -> io.BufferedIOBase:
    """Open ``path`` for reading bytes; a component ending in ``.zip`` is entered as an archive.

    ``data/sentiment.zip/sentiment/sentiment.train.data`` reads that member of the archive.
    """
    path = Path(path)
    if path.is_file():
        return open(path, "rb")
    for parent in path.parents:
        if parent.suffix == ".zip" and parent.is_file():
            member = path.relative_to(parent).as_posix()
            archive = zipfile.ZipFile(parent)
            try:
                return archive.open(member)
            except KeyError:
                names = ", ".join(n for n in archive.namelist() if not n.endswith("/"))
                raise DataError(f"{path}: no member {member!r} in {parent} (members: {names})") from None
    raise DataError(f"{path}: file not found")


#: what to do about a file that is not UTF-8 (after its ``file:line: not valid UTF-8 (...)``)
UTF8_HINT = "re-save the file as UTF-8, e.g. iconv -f <its encoding> -t UTF-8 FILE > FILE.utf8"


def utf8_message(path: str | Path, line_no: int, exc: UnicodeDecodeError) -> str:
    """``file:line: not valid UTF-8 (byte N: reason); hint: ...``: N counts from the start of the line."""
    return f"{path}:{line_no}: not valid UTF-8 (byte {exc.start}: {exc.reason}); hint: {UTF8_HINT}"


def numbered_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` with 1-based numbers and the line ending removed.

    Lines are decoded one by one, so undecodable bytes raise a :class:`DataError` naming
    their own line; a UTF-8 byte-order mark at the start is dropped.
    """
    with open_bytes(path) as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(utf8_message(path, line_no, exc)) from None
            if line_no == 1:
                line = line.removeprefix("\ufeff")
            yield line_no, line.rstrip("\r\n")


def utf8_error(path: str | Path, data: bytes, universal_newlines: bool = False) -> DataError:
    """The :class:`DataError` for ``data`` (the bytes of ``path``) that is not UTF-8, naming its first bad line.

    Lines end at ``\\n`` (JSON), or also at ``\\r`` with ``universal_newlines`` (CSV).
    """
    lines = re.split(rb"\r\n|\r|\n", data) if universal_newlines else data.split(b"\n")
    for line_no, line in enumerate(lines, start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            return DataError(utf8_message(path, line_no, exc))
    return DataError(f"{path}: not valid UTF-8; hint: {UTF8_HINT}")


def check_unicode(value: str, where: str) -> str:
    """``value``; a :class:`DataError` at ``where`` if it holds a lone surrogate (a JSON ``\\ud800``
    escape without its pair), which is not text and cannot be written to the prepared UTF-8 files."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = value[exc.start]
        raise DataError(f"{where}: lone surrogate {bad!r} at character {exc.start} is not valid Unicode") from None
    return value


def parse_json_line(line: str, where: str) -> Any:
    """One line of a JSON-lines file; a :class:`DataError` prefixed by ``where`` (``file:line``) if it
    does not parse (including nesting too deep and integers with too many digits)."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    except (RecursionError, ValueError) as exc:
        raise DataError(f"{where}: not valid JSON ({exc})") from None


def read_json_objects(path: str | Path) -> list[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line of a JSON-lines file of objects; invalid UTF-8,
    a line that is not JSON or not an object is a :class:`DataError` naming the file and line."""
    rows = []
    for line_no, line in numbered_lines(path):
        if not line.strip():
            continue
        row = parse_json_line(line, f"{path}:{line_no}")
        if not isinstance(row, dict):
            raise DataError(f"{path}:{line_no}: expected a JSON object, got {type(row).__name__}")
        rows.append((line_no, row))
    return rows


def read_json_document(path: str | Path, what: str) -> Any:
    """The JSON document in ``path`` (UTF-8, a leading BOM allowed); a :class:`DataError` naming the line
    of the first undecodable byte, or saying why it is not valid ``what``."""
    with open_bytes(path) as handle:
        raw = handle.read()
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise utf8_error(path, raw) from None
    except (RecursionError, ValueError) as exc:  # also: nested too deeply, an integer with too many digits
        raise DataError(f"{path}: not valid {what} ({exc})") from None

"""Opening dataset files, including members of zip archives addressed as ordinary paths."""

from __future__ import annotations

import codecs
import csv
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

#: the same for a dataset file, which a data block can read in its own encoding
ENCODING_HINT = (
    "set 'encoding:' in the task's data block to the file's encoding (e.g. latin-1, cp1252, gbk, gb18030, "
    "utf-16), or re-save the file as UTF-8"
)

DEFAULT_ENCODING = "utf-8"

#: characters that show nothing: a line holding only these (and whitespace) reads as a blank line
INVISIBLE = "\ufeff\u200b\u200c\u200d\u2060\u00ad"
_BLANK = " \t\n\r\x0b\x0c" + INVISIBLE


def invisible_only(line: str) -> bool:
    """Whether ``line`` looks blank but is not: it holds zero-width characters or a byte-order mark
    (which ``str.strip`` keeps) and nothing else but whitespace."""
    return bool(line.strip()) and not line.strip(_BLANK)


def encoding_label(encoding: str) -> str:
    """How messages name an encoding: ``UTF-8`` for the default, else as given."""
    return "UTF-8" if codecs.lookup(encoding).name in ("utf-8", "utf-8-sig") else encoding


def decoding_message(path: str | Path, line_no: int, exc: UnicodeDecodeError, encoding: str, hint: str) -> str:
    """``file:line: not valid <encoding> (byte N: reason); hint: ...``: N counts from the start of the line."""
    return f"{path}:{line_no}: not valid {encoding_label(encoding)} (byte {exc.start}: {exc.reason}); hint: {hint}"


def line_safe(encoding: str) -> bool:
    """Whether a line break is the byte ``\\n`` in ``encoding`` (ASCII-compatible: UTF-8, Latin-1, GBK...),
    so that a file can be decoded line by line; UTF-16 and UTF-32 are not."""
    return "\n".encode(encoding) == b"\n" and "a".encode(encoding) == b"a"


def numbered_lines(path: str | Path, encoding: str = DEFAULT_ENCODING, hint: str = ENCODING_HINT) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` with 1-based numbers and the line ending removed.

    Lines end at ``\\n``. In an ASCII-compatible ``encoding`` they are decoded one by one, so undecodable
    bytes raise a :class:`DataError` naming their own line (others are decoded whole, the error naming
    the first bad line); a byte-order mark at the start is dropped.
    """
    if not line_safe(encoding):
        with open_bytes(path) as handle:
            data = handle.read()
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            raise decoding_error(path, data, encoding=encoding, hint=hint) from None
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        for line_no, line in enumerate(lines, start=1):
            yield line_no, (line.removeprefix("\ufeff") if line_no == 1 else line).rstrip("\r\n")
        return
    with open_bytes(path) as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                line = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise DataError(decoding_message(path, line_no, exc, encoding, hint)) from None
            if line_no == 1:
                line = line.removeprefix("\ufeff")
            yield line_no, line.rstrip("\r\n")


def decoding_error(
    path: str | Path, data: bytes, universal_newlines: bool = False, encoding: str = DEFAULT_ENCODING,
    hint: str = ENCODING_HINT,
) -> DataError:
    """The :class:`DataError` for ``data`` (the bytes of ``path``) that is not valid ``encoding``, naming its
    first bad line. Lines end at ``\\n`` (JSON), or also at ``\\r`` with ``universal_newlines`` (CSV)."""
    if line_safe(encoding):
        lines = re.split(rb"\r\n|\r|\n", data) if universal_newlines else data.split(b"\n")
        for line_no, line in enumerate(lines, start=1):
            try:
                line.decode(encoding)
            except UnicodeDecodeError as exc:
                return DataError(decoding_message(path, line_no, exc, encoding, hint))
    try:
        data.decode(encoding)
    except UnicodeDecodeError as exc:
        line_no = data[: exc.start].decode(encoding, errors="replace").count("\n") + 1
        return DataError(f"{path}:{line_no}: not valid {encoding_label(encoding)} ({exc.reason}); hint: {hint}")
    return DataError(f"{path}: not valid {encoding_label(encoding)}; hint: {hint}")


def decode_document(path: str | Path, data: bytes, encoding: str = DEFAULT_ENCODING) -> str:
    """The text of a whole file (a leading byte-order mark dropped); a :class:`DataError` naming the line
    of the first undecodable byte."""
    try:
        text = data.decode("utf-8-sig" if encoding_label(encoding) == "UTF-8" else encoding)
    except UnicodeDecodeError:
        raise decoding_error(path, data, encoding=encoding) from None
    return text.removeprefix("\ufeff")


def csv_rows(
    path: str | Path, encoding: str = DEFAULT_ENCODING, hint: str = ENCODING_HINT, what: str = "CSV", **dialect: Any
) -> Iterator[tuple[int, list[str]]]:
    """``(line where the row starts, fields)`` per row of a CSV-like file (``dialect``: ``delimiter``,
    ``quotechar``, ``quoting``, ``escapechar``, ``doublequote``...); a byte-order mark is dropped.

    Undecodable bytes and malformed rows (an unclosed quote...) are :class:`DataError` naming the line."""
    codec = "utf-8-sig" if encoding_label(encoding) == "UTF-8" else encoding
    with open_bytes(path) as raw:
        rows = csv.reader(io.TextIOWrapper(raw, encoding=codec, newline=""), **dialect)
        next_line = 1
        while True:
            try:
                fields = next(rows)
            except StopIteration:
                return
            except UnicodeDecodeError:
                # the decoder reads ahead of the CSV parser: find the bad line in the bytes themselves
                with open_bytes(path) as again:
                    raise decoding_error(path, again.read(), True, encoding, hint) from None
            except csv.Error as exc:
                raise DataError(f"{path}:{rows.line_num}: malformed {what} ({exc})") from None
            line_no, next_line = next_line, rows.line_num + 1
            if line_no == 1 and fields and fields[0].startswith("\ufeff"):
                fields[0] = fields[0].removeprefix("\ufeff")
            yield line_no, fields


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


def read_json_objects(
    path: str | Path, encoding: str = DEFAULT_ENCODING, hint: str = ENCODING_HINT
) -> list[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line of a JSON-lines file of objects; invalid UTF-8,
    a line that is not JSON or not an object is a :class:`DataError` naming the file and line."""
    rows = []
    for line_no, line in numbered_lines(path, encoding, hint):
        if not line.strip():
            continue
        row = parse_json_line(line, f"{path}:{line_no}")
        if not isinstance(row, dict):
            raise DataError(f"{path}:{line_no}: expected a JSON object, got {type(row).__name__}")
        rows.append((line_no, row))
    return rows


def read_json_document(path: str | Path, what: str, encoding: str = DEFAULT_ENCODING) -> Any:
    """The JSON document in ``path`` (a leading BOM allowed); a :class:`DataError` naming the line
    of the first undecodable byte, or saying why it is not valid ``what``."""
    with open_bytes(path) as handle:
        text = decode_document(path, handle.read(), encoding)
    try:
        return json.loads(text)
    except (RecursionError, ValueError) as exc:  # also: nested too deeply, an integer with too many digits
        raise DataError(f"{path}: not valid {what} ({exc})") from None

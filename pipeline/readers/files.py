"""Opening dataset files, including members of zip archives addressed as ordinary paths."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Iterator


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
                raise DataError(f"{path}:{line_no}: not valid UTF-8 (byte {exc.start}: {exc.reason})") from None
            if line_no == 1:
                line = line.removeprefix("\ufeff")
            yield line_no, line.rstrip("\r\n")

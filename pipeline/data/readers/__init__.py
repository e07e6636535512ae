"""Dataset formats: each turns upstream files into canonical records (dicts) for one split.

A format is a :class:`~pipeline.data.readers.base.DataSource` subclass (its params) plus a
reader function; register both in :data:`READERS`. The config accepts exactly these formats.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

from pipeline.data.readers.base import SPLITS, DataSource, ReadReport
from pipeline.data.readers.cluener import CluenerSource, read_cluener
from pipeline.data.readers.conll import ConllSource, read_conll
from pipeline.data.readers.conll04 import CoNLL04Source, read_conll04
from pipeline.data.readers.delimited import DelimitedSource, read_delimited
from pipeline.data.readers.duie import DuIESource, read_duie
from pipeline.data.readers.files import DataError
from pipeline.data.readers.query_csv import QueryCsvSource, read_query_csv
from pipeline.data.readers.squad import SquadSource, read_squad

Reader = Callable[[DataSource, Path, str, ReadReport], Iterator[dict]]

#: format name -> (params model, reader)
READERS: dict[str, tuple[type[DataSource], Reader]] = {
    "delimited": (DelimitedSource, read_delimited),
    "query_csv": (QueryCsvSource, read_query_csv),
    "squad": (SquadSource, read_squad),
    "cluener_json": (CluenerSource, read_cluener),
    "conll": (ConllSource, read_conll),
    "duie": (DuIESource, read_duie),
    "conll04": (CoNLL04Source, read_conll04),
}

__all__ = ["READERS", "SPLITS", "DataError", "DataSource", "ReadReport", "read_split"]


def read_split(source: DataSource, path: Path, split: str, report: ReadReport) -> list[dict]:
    """Read one split file of ``source`` into canonical records."""
    _, reader = READERS[source.format]  # type: ignore[attr-defined]
    return list(reader(source, path, split, report))

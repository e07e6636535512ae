"""What every dataset format shares: split file names, split carving, a report of skipped rows,
and what makes two records the same (exact duplicates, the same input) for ``data.dedupe``."""

from __future__ import annotations

import codecs
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Hashable, Iterable, Iterator, Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config.strict_model import StrictModel
from pipeline.data.readers.files import DEFAULT_ENCODING, invisible_only, numbered_lines

SPLITS = ("train", "dev", "test")


class CarveSpec(StrictModel):
    """Carve missing splits out of train, deterministically: a seeded shuffle, then slices."""

    dev_fraction: float = Field(ge=0.0, lt=1.0)
    test_fraction: float = Field(ge=0.0, lt=1.0)
    seed: int


class DataSource(StrictModel):
    """Where a task's data lies: ``dir`` (relative to ``data_root``) and one file per split."""

    dir: str
    train: str
    dev: str | None = None
    test: str | None = None
    carve: CarveSpec | None = None
    label_names: dict[str, str] | None = None
    #: a file beside the split files naming the labels: one name per line (line 1 names label 0), or
    #: ``<raw label><TAB><name>`` per line; instead of ``label_names``
    label_names_file: str | None = None
    #: fatal above this share of whitespace placeholders ([unused1]) among all input tokens
    max_space_share: float = Field(default=0.33, ge=0.0, le=1.0)
    #: accept labels that look like broken rows (a quote or the delimiter inside; many once-only labels)
    allow_suspicious_labels: bool = False
    #: the text encoding of the data files (``utf-8`` also drops a byte-order mark; ``latin-1``, ``gbk``...)
    encoding: str = DEFAULT_ENCODING
    #: none: keep every record | within: drop exact duplicates inside each split | across: drop train/dev
    #: records whose input also occurs in a later split (test > dev > train) | all: both
    dedupe: Literal["none", "within", "across", "all"] = "none"

    def for_language(self, language: str) -> "DataSource":
        """This source with the settings that follow the task's language filled in (none by default)."""
        return self

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, encoding: str) -> str:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(f"unknown encoding {encoding!r}; e.g. utf-8, utf-8-sig, latin-1, cp1252, gbk, gb18030, utf-16") from None
        return encoding

    @model_validator(mode="after")
    def _one_source_of_label_names(self) -> "DataSource":
        if self.label_names is not None and self.label_names_file is not None:
            raise ValueError("give 'label_names' or 'label_names_file', not both")
        return self

    @model_validator(mode="after")
    def _every_split_has_a_source(self) -> "DataSource":
        carve = self.carve
        if self.dev is None and not (carve and carve.dev_fraction > 0):
            raise ValueError("no dev split: give 'dev' or 'carve.dev_fraction' > 0")
        if self.test is None and not (carve and carve.test_fraction > 0):
            raise ValueError("no test split: give 'test' or 'carve.test_fraction' > 0")
        return self


@dataclass
class ReadReport:
    """Counts of rows a reader skipped, by split and reason; written next to the prepared data."""

    skipped: dict[str, Counter] = field(default_factory=dict)

    def skip(self, split: str, reason: str) -> None:
        self.skipped.setdefault(split, Counter())[reason] += 1

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {split: dict(counts) for split, counts in self.skipped.items()}


#: ReadReport reason for a line that holds only invisible characters (read as a blank line)
INVISIBLE_LINE = "line of invisible characters only (zero-width or byte-order mark; read as blank)"


def source_lines(source: DataSource, path: Path, split: str, report: ReadReport) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a data file in the source's ``encoding``; a line holding only invisible
    characters comes out blank and is counted in ``report``."""
    for line_no, line in numbered_lines(path, source.encoding):
        if invisible_only(line):
            report.skip(split, INVISIBLE_LINE)
            line = ""
        yield line_no, line


# --- duplicates ----------------------------------------------------------------------------------

#: the record fields a model reads; records with equal values here have the same input
INPUT_FIELDS = ("query", "text", "text_b")

#: ``(later split, earlier split)``: the later split's examples whose input occurs in the earlier one are
#: its overlap with it; deduplicating keeps them in the later split (the evaluation sets stay intact)
OVERLAPS = (("dev", "train"), ("test", "train"), ("test", "dev"))

#: ids listed per split for what was removed
MAX_IDS = 5


def input_key(record: dict) -> tuple:
    """What the model reads of a record: its query, text and second text (exact strings)."""
    return tuple(record.get(name) for name in INPUT_FIELDS)


def example_key(record: dict) -> str:
    """Everything but the id: equal keys are exact duplicates (same input and same labels)."""
    return json.dumps({k: v for k, v in record.items() if k != "id"}, sort_keys=True, ensure_ascii=False)


def repeats(records: Iterable[dict], key: Callable[[dict], Hashable]) -> list[dict]:
    """The records whose ``key`` equals an earlier record's (every copy after the first), in order."""
    seen: set = set()
    copies = []
    for record in records:
        value = key(record)
        if value in seen:
            copies.append(record)
        seen.add(value)
    return copies


def occurring_in(records: Iterable[dict], reference: Iterable[dict]) -> list[dict]:
    """The records whose input also occurs in ``reference``, in order."""
    inputs = {input_key(record) for record in reference}
    return [record for record in records if input_key(record) in inputs]


def duplicate_counts(splits: dict[str, list[dict]]) -> dict:
    """What ``data.dedupe`` acts on: exact duplicates per split, and per :data:`OVERLAPS` pair the
    later split's examples whose input occurs in the earlier one."""
    return {
        "exact_duplicates": {split: len(repeats(splits[split], example_key)) for split in SPLITS},
        "overlap": {
            f"{later}_in_{earlier}": len(occurring_in(splits[later], splits[earlier])) for later, earlier in OVERLAPS
        },
    }


def dedupe_splits(splits: dict[str, list[dict]], mode: str) -> tuple[dict[str, list[dict]], dict]:
    """Apply ``data.dedupe``; return the new splits and what was found and removed (empty for ``none``).

    ``within`` drops every exact duplicate after the first inside a split; ``across`` drops dev
    records whose input occurs in test, then train records whose input occurs in test or dev.
    """
    if mode == "none":
        return splits, {}
    found = duplicate_counts(splits)
    result = dict(splits)
    removed: dict[str, list[tuple[str, dict]]] = {split: [] for split in SPLITS}
    if mode in ("within", "all"):
        for split in SPLITS:
            result[split] = _drop(result[split], repeats(result[split], example_key), "exact duplicate", removed[split])
    if mode in ("across", "all"):
        for split in ("dev", "train"):  # dev first: train is compared with the dev records that stay
            for later in ("test", "dev"):  # test first: a record in both is counted once, as in test
                if (later, split) in OVERLAPS:
                    shared = occurring_in(result[split], result[later])
                    result[split] = _drop(result[split], shared, f"input in {later}", removed[split])
    report = {
        "mode": mode,
        "found": found,
        "removed": {split: dict(Counter(reason for reason, _ in rows)) for split, rows in removed.items() if rows},
        "removed_ids": {split: [r["id"] for _, r in rows[:MAX_IDS]] for split, rows in removed.items() if rows},
    }
    return result, report


def _drop(records: list[dict], doomed: list[dict], reason: str, log: list[tuple[str, dict]]) -> list[dict]:
    """``records`` without ``doomed`` (by identity); each dropped record is logged with ``reason``."""
    gone = {id(record) for record in doomed}
    log.extend((reason, record) for record in doomed)
    return [record for record in records if id(record) not in gone]

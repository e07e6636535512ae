"""Fatal problems of prepared records: what training cannot use, named by file, line and field.

A split with no records at all (training and scoring need every one), a record missing a required
field, a label that is empty or not a string, a span out of range of its text, a span whose stored text
differs from ``text[start:end]``, overlapping entities. Each record problem is reported at the raw
data file and line the record came from (record ids are ``<split>-<line>`` of the raw file, and
carving keeps them); where ids do not name a line, at the prepared JSON-lines file and line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from pipeline.config.paths import PROJECT_ROOT
from pipeline.config.schema import Params
from pipeline.data_health.records import item_fields, unit_of
from pipeline.kinds import kind_spec
from pipeline.config.paths import prepared_dir
from pipeline.data.readers import SPLITS, DataError
from pipeline.data.readers.base import INPUT_FIELDS
from pipeline.data.readers.files import read_json_objects

#: formats whose record ids do not end in a raw line number (SQuAD question ids, CoNLL04 list positions)
NOT_LINE_IDS = frozenset({"squad", "conll04"})

Finding = tuple[str, str]
"""``(field, what is wrong)``"""


@dataclass(frozen=True)
class Problem:
    """A fatal problem of the record at ``index`` (0-based) of a prepared split."""

    split: str
    index: int
    record_id: Any
    field: str
    what: str


@dataclass(frozen=True)
class Locator:
    """Turns a problem into ``file:line: field '<field>': <what>``."""

    raw_files: dict[str, Path]  #: split named in record ids -> the raw file it was read from
    prepared: Path  #: the task's prepared directory
    line_ids: bool  #: whether ids end in the raw file's line number

    @classmethod
    def for_task(cls, params: Params, task: str) -> "Locator":
        source = params.task(task).data
        # as params.yaml spells it (``../shared/data/...``): the message lands in data_health.json,
        # which must not name a directory of the machine that wrote it
        directory = Path(params.data_root) / source.dir
        files = {split: directory / getattr(source, split) for split in SPLITS if getattr(source, split)}
        prepared = prepared_dir(task)
        if prepared.is_absolute() and prepared.is_relative_to(PROJECT_ROOT):
            prepared = prepared.relative_to(PROJECT_ROOT)
        return cls(files, prepared, source.format not in NOT_LINE_IDS)  # type: ignore[attr-defined]

    def message(self, problem: Problem) -> str:
        prefix, _, number = str(problem.record_id).partition("-")
        raw = self.raw_files.get(prefix)
        if raw and self.line_ids and number.isdigit():
            return f"{raw}:{number}: field '{problem.field}': {problem.what}"
        origin = f" of {raw}" if raw else ""
        return (
            f"{self.prepared / f'{problem.split}.jsonl'}:{problem.index + 1}: field '{problem.field}': "
            f"{problem.what} (record {problem.record_id!r}{origin})"
        )


def empty_splits(params: Params, task: str, splits: dict[str, list[dict]], summary: dict) -> list[str]:
    """``<raw file>: split '<split>' of task '<task>' is empty (why); hint: ...`` per split without records.

    The prepared splits are what training reads after the reader, carving and ``data.dedupe``; the
    ``max_*_samples`` caps are at least 1, so they never empty a split that has records.
    """
    source = params.task(task).data
    directory = params.data_dir(task)
    messages = []
    for split in SPLITS:
        if splits.get(split):
            continue
        name = getattr(source, split, None)
        carved = name is None
        where = directory / (source.train if carved else name)
        what = f"split {split!r} of task {task!r}" + (" (carved from this file)" if carved else "")
        why, deduped = _why_empty(split, summary, source.dedupe)  # type: ignore[attr-defined]
        hint = _empty_hint(task, split, source, deduped)
        messages.append(f"{where}: {what} is empty ({why}); hint: {hint}")
    return messages


def _why_empty(split: str, summary: dict, dedupe: str) -> tuple[str, bool]:
    """What took the split's records away, from the prepare stage's summary; whether dedupe did."""
    reasons = []
    skipped = summary.get("skipped", {}).get(split) or {}
    if skipped:
        counts = ", ".join(f"{reason}: {count}" for reason, count in skipped.items())
        reasons.append(f"the reader skipped {sum(skipped.values())} rows ({counts})")
    removed = (summary.get("dedupe") or {}).get("removed", {}).get(split) or {}
    if removed:
        counts = ", ".join(f"{reason}: {count}" for reason, count in removed.items())
        reasons.append(f"data.dedupe {dedupe!r} removed {sum(removed.values())} ({counts})")
    return "; ".join(reasons) or "the file holds no records", bool(removed)


def _empty_hint(task: str, split: str, source: Any, deduped: bool) -> str:
    key = f"tasks.{task}.data"
    if deduped:
        return f"set {key}.dedupe to 'within' or 'none', or add data to this split"
    if split == "train":
        return f"fill the file with records, or point {key}.train at the training data"
    if getattr(source, split, None) is None:  # carved: a share of train that came out empty
        return f"raise {key}.carve.{split}_fraction"
    other = "test" if split == "dev" else "dev"
    fractions = {split: 0.1, other: getattr(source.carve, f"{other}_fraction") if source.carve else 0.0}
    seed = source.carve.seed if source.carve else 1
    carve = f"{{dev_fraction: {fractions['dev']}, test_fraction: {fractions['test']}, seed: {seed}}}"
    return (
        f"fill the file, or carve {split} out of train: remove '{split}: {getattr(source, split)}' "
        f"from {key} and set 'carve: {carve}'"
    )


def read_records(path: Path) -> list[dict]:
    """The records of a prepared JSON-lines file; a line that is not a JSON object is a DataError."""
    return [record for _, record in read_json_objects(path)]


def find_problems(splits: dict[str, list[dict]], kind: str) -> list[Problem]:
    """Every fatal problem of every record, in split and record order."""
    return [
        Problem(split, index, record.get("id"), field, what)
        for split, records in splits.items()
        for index, record in enumerate(records)
        for field, what in record_problems(record, kind)
    ]


def raise_fatal(messages: list[str], report: Path) -> None:
    """Stop the stage on the first fatal problem, saying how many more there are."""
    more = f" (and {len(messages) - 1} more fatal problems, listed in {report})" if len(messages) > 1 else ""
    raise DataError(messages[0] + more)


def record_problems(record: dict, kind: str) -> Iterator[Finding]:
    """The fatal problems of one record of ``kind``."""
    missing = [name for name in kind_spec(kind).required_fields if name not in record]
    yield from ((name, "missing") for name in missing)
    if missing:
        return
    for name in ("id", *INPUT_FIELDS):
        if name in record and not isinstance(record[name], str):
            yield name, f"not a string: {record[name]!r}"
    if "label" in record:
        yield from _label_problems(record["label"], "label")
    field = unit_of(kind)
    if field and field in record and isinstance(record.get("text"), str):
        yield from _item_problems(record["text"], record[field], field)


def _label_problems(value: Any, path: str) -> Iterator[Finding]:
    if value is None:
        yield path, "missing"
    elif not isinstance(value, str) or not value.strip():
        yield path, f"empty or not a string: {value!r}"


def _item_problems(text: str, items: Any, field: str) -> Iterator[Finding]:
    if not isinstance(items, list):
        yield field, f"not a list: {items!r}"
        return
    shape = item_fields()[field]
    for index, item in enumerate(items):
        path = f"{field}[{index}]"
        if not isinstance(item, dict):
            yield path, f"not an object: {item!r}"
            continue
        if shape.label:
            yield from _label_problems(item.get(shape.label), f"{path}.{shape.label}")
        for key in shape.spans:
            yield from _span_problems(text, item.get(key) if key else item, f"{path}.{key}" if key else path)
    if field == "entities":
        yield from _overlapping_entities(items)


def _span_problems(text: str, span: Any, path: str) -> Iterator[Finding]:
    if not isinstance(span, dict):
        yield path, f"not a span object: {span!r}"
        return
    start, end = span.get("start"), span.get("end")
    if not (_is_int(start) and _is_int(end)):
        yield path, f"start and end must be integers, got {start!r} and {end!r}"
    elif not 0 <= start < end <= len(text):
        yield path, f"span [{start}, {end}) is empty or out of range of the text (length {len(text)})"
    elif span.get("text") != text[start:end]:
        yield f"{path}.text", f"{span.get('text')!r} differs from text[{start}:{end}] {text[start:end]!r}"


def _overlapping_entities(entities: list) -> Iterator[Finding]:
    """Entities sharing characters (BIO tags cannot hold both); reported once the spans are valid."""
    spans = sorted(
        (e["start"], e["end"], i) for i, e in enumerate(entities)
        if isinstance(e, dict) and _is_int(e.get("start")) and _is_int(e.get("end"))
    )
    for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
        if start < end:
            yield f"entities[{second}]", f"overlaps entities[{first}] (BIO tags cannot hold both)"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)

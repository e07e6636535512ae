"""Prepare stage: upstream files -> canonical JSON-lines records per split.

``python -m pipeline.stages.prepare <task>`` writes ``data/prepared/<task>/{train,dev,test}.jsonl``
and ``summary.json`` (counts per split and label, skipped rows, carved splits and, when
``data.dedupe`` is not ``none``, the duplicates found and the records removed).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from pipeline.config.schema import Params
from pipeline.config.paths import prepared_dir
from pipeline.data.readers import SPLITS, DataError, DataSource, ReadReport, read_split
from pipeline.data.readers.base import dedupe_splits
from pipeline.data.readers.label_names import read_label_names, suspicious_label_hint
from pipeline.reporting.files import write_json, write_jsonl
from pipeline.data.splits import carve_splits


def prepare(params: Params, task: str) -> dict:
    """Read, carve and write one task's data; return the summary."""
    cfg = params.task(task)
    source = cfg.data.for_language(cfg.language)
    directory = params.data_dir(task)
    report = ReadReport()
    splits = {
        split: read_split(source, directory / getattr(source, split), split, report)
        for split in SPLITS
        if getattr(source, split)
    }
    try:
        splits, carved = carve_splits(splits, source.carve)
    except ValueError as exc:  # carving the whole of train: name the file, the task and the fractions
        raise DataError(
            f"{directory / source.train}: tasks.{task}.data.carve: {exc}; hint: lower carve.dev_fraction / "
            f"carve.test_fraction, or check that the file holds records (skipped: {report.as_dict() or 'none'})"
        ) from None
    names, origin = label_names(source, directory, task)
    if names:
        for split in SPLITS:
            _rename_labels(splits[split], names, origin, directory / (getattr(source, split) or source.train), source)
    splits, deduped = dedupe_splits(splits, source.dedupe)
    out = prepared_dir(task)
    for split in SPLITS:
        write_jsonl(out / f"{split}.jsonl", splits[split])
    summary = {
        "task": task,
        "source": str(directory),
        "records": {split: len(splits[split]) for split in SPLITS},
        "labels": {split: _label_counts(splits[split]) for split in SPLITS},
        "skipped": report.as_dict(),
        "carved": carved,
    }
    if deduped:  # only then: with the default (none) the summary stays as it always was
        summary["dedupe"] = deduped
    write_json(out / "summary.json", summary)
    notes = [f"skipped {summary['skipped']}"] if summary["skipped"] else []
    notes += [f"dedupe {source.dedupe} removed {deduped['removed']}"] if deduped else []
    counts = ", ".join(f"{s} {n}" for s, n in summary["records"].items())
    print(f"[prepare] {task}: {counts}" + "".join(f"; {note}" for note in notes))
    return summary


def label_names(source: DataSource, directory: Path, task: str) -> tuple[dict[str, str], str]:
    """Raw label -> name, from ``data.label_names`` or ``data.label_names_file`` (empty: keep raw labels),
    and where they come from, for messages."""
    if source.label_names_file is None:
        return dict(source.label_names or {}), f"tasks.{task}.data.label_names"
    path = (directory / source.train).parent / source.label_names_file  # beside the split files
    return read_label_names(path, source.encoding), f"tasks.{task}.data.label_names_file ({path})"


def _rename_labels(records: list[dict], names: dict[str, str], origin: str, path: Path, source: DataSource) -> None:
    """Replace raw labels by their names; an unmapped label is an error naming its line."""
    for record in records:
        if record.get("label") is None:
            continue
        if record["label"] not in names:
            line = record["id"].rsplit("-", 1)[-1]
            shown = ", ".join(list(names)[:20]) + (", ..." if len(names) > 20 else "")
            raise DataError(
                f"{path}:{line}: field 'label': {record['label']!r} is not a key of {origin} "
                f"({shown}){suspicious_label_hint(record['label'], source)}"
            )
        record["label"] = names[record["label"]]


def _label_counts(records: list[dict]) -> dict[str, int]:
    counts = Counter(record["label"] for record in records if "label" in record)
    return dict(sorted(counts.items()))


if __name__ == "__main__":
    from pipeline.stages.cli import run_stage

    run_stage("Prepare a task's data as canonical JSON-lines records.", "task", prepare)

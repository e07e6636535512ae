"""The worst-mistakes report every kind feeds (:meth:`pipeline.kinds.common.base.TaskKind.mistakes`):
JSON lines for tools, markdown for people."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any, Hashable, Mapping, Sequence

from pipeline.reporting.files import write_jsonl, write_text


#: the record fields that show a mistake's input, in the order they are shown
INPUT_FIELDS = ("query", "text", "text_b")


#: items listed per side in a set mistake's ``why`` before "+N more"
WHY_ITEMS = 3


#: characters of an input shown in the markdown report (the JSON lines keep all of it)
MARKDOWN_TEXT_CHARS = 600


def mistake(record: dict, gold: Any, predicted: Any, why: str) -> dict:
    """One row of a worst-mistakes report: the record's id and input fields, gold, predicted and why."""
    inputs = {field: record[field] for field in INPUT_FIELDS if field in record}
    return {"id": record.get("id"), **inputs, "gold": gold, "predicted": predicted, "why": why}


def set_mistakes(
    records: Sequence[dict],
    gold: Sequence[Mapping[Hashable, str]],
    predicted: Sequence[Mapping[Hashable, str]],
    noun: str,
    limit: int,
) -> list[dict]:
    """Records whose predicted set of items (entities, triples) differs from the gold set, the most
    errors (missed + spurious) first, ties in record order.

    Each record's items are given as ``{match key: how the item is shown}``; items match by key.
    """
    ranked = []
    for record, gold_items, predicted_items in zip(records, gold, predicted):
        missed = [shown for key, shown in gold_items.items() if key not in predicted_items]
        spurious = [shown for key, shown in predicted_items.items() if key not in gold_items]
        if not missed and not spurious:
            continue
        sides = (("missed", missed), ("spurious", spurious))
        details = [f"{side} {_first_items(items)}" for side, items in sides if items]
        why = f"{len(missed)} missed, {len(spurious)} spurious {noun}: {'; '.join(details)}"
        row = mistake(record, list(gold_items.values()), list(predicted_items.values()), why)
        ranked.append((len(missed) + len(spurious), row))
    ranked.sort(key=lambda pair: -pair[0])  # stable: ties keep record order
    return [row for _, row in ranked[:limit]]


def _first_items(items: Sequence[str]) -> str:
    shown = ", ".join(items[:WHY_ITEMS])
    return shown + (f" +{len(items) - WHY_ITEMS} more" if len(items) > WHY_ITEMS else "")


def mistakes_markdown(rows: Sequence[dict], title: str) -> str:
    """The rows of :func:`mistake` as a markdown page: one numbered section per mistake, worst first."""
    lines = [f"# {_md(title)}", "", f"The {len(rows)} worst mistakes, worst first (all fields: worst_mistakes.jsonl)."]
    if not rows:
        lines += ["", "No mistakes."]
    for number, row in enumerate(rows, start=1):
        lines += ["", f"## {number}. {_md(str(row.get('id')))}: {_md(row['why'])}", ""]
        for field in (*INPUT_FIELDS, "gold", "predicted"):
            if field in row:
                lines.append(f"- **{field}**: {_md_value(row[field])}")
    return "\n".join(lines) + "\n"


def _md_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "; ".join(_md_value(item) for item in value) if value else "(none)"
    if value is None or value == "":
        return "(empty)"
    text = str(value)
    if len(text) > MARKDOWN_TEXT_CHARS:
        text = text[:MARKDOWN_TEXT_CHARS] + "…"
    return _md(text)


def _md(text: str) -> str:
    """One line of text that markdown shows as written (no HTML, emphasis, links or code)."""
    flat = html.escape(" ".join(text.split()), quote=False)
    return re.sub(r"([\\`*_\[\]#|])", r"\\\1", flat)


def write_mistakes(rows: Sequence[dict], out_dir: Path, title: str) -> list[Path]:
    """``worst_mistakes.jsonl`` (the rows) and ``worst_mistakes.md`` (readable) in ``out_dir``."""
    return [
        write_jsonl(out_dir / "worst_mistakes.jsonl", rows),
        write_text(out_dir / "worst_mistakes.md", mistakes_markdown(rows, title)),
    ]

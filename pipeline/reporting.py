"""Plots and tables written next to the metrics: PNGs that render offline, JSON for DVC, and
the worst-mistakes report every kind feeds (:meth:`pipeline.kinds.base.TaskKind.mistakes`)."""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path
from typing import Any, Hashable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def write_text(path: Path, text: str) -> Path:
    """Write UTF-8 text atomically (temp file + rename): a killed run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_json(path: Path, data: Any) -> Path:
    """Write JSON atomically."""
    return write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: Path, rows: Sequence[dict]) -> Path:
    """Write JSON lines atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def read_json(path: Path) -> Any:
    """Read a JSON file written by :func:`write_json`."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_jsonl(path: Path) -> list[dict]:
    """Read a JSON-lines file written by :func:`write_jsonl`."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def plot_confusion(matrix: Sequence[Sequence[int]], labels: list[str], path: Path, title: str) -> Path:
    """A confusion-matrix heat map with counts in the cells (rows: gold, columns: predicted)."""
    size = max(4.0, 0.55 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title)
    peak = max((max(row) for row in matrix), default=0)
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            color = "white" if peak and count > peak / 2 else "black"
            ax.text(j, i, str(count), ha="center", va="center", color=color, fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return _save(fig, path)


def plot_history(history: list[dict], path: Path, title: str) -> Path:
    """Training loss and dev metrics per epoch, side by side."""
    epochs = [row["epoch"] for row in history]
    metric_keys = [key for key in history[0] if key.startswith("dev_")] if history else []
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [row["loss"] for row in history], marker="o")
    left.set_title("training loss")
    left.set_xlabel("epoch")
    for key in metric_keys:
        right.plot(epochs, [row[key] for row in history], marker="o", label=key.removeprefix("dev_"))
    right.set_title("dev metrics")
    right.set_xlabel("epoch")
    right.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_bars(values: dict[str, float], path: Path, title: str, xlabel: str) -> Path:
    """A horizontal bar per key (e.g. F1 per entity type or per predicate), value printed at the bar."""
    names = list(values)
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.35 * len(names) + 1.2)))
    bars = ax.barh(range(len(names)), [values[name] for name in names], color="tab:blue")
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlim(0, max(1.0, *values.values()) if values else 1.0)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.bar_label(bars, fmt="%.3f", padding=2, fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path


# --- worst mistakes ---------------------------------------------------------------------------------

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


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; cells are written as given (pipes escaped, newlines flattened)."""
    def cell(value: Any) -> str:
        return " ".join(str(value).split()).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"

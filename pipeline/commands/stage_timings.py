"""``python -m pipeline.commands.stage_timings``: the stage timing table.

``reports/timings.md`` from the ``reports/timings/*.json`` the stages write
(:mod:`pipeline.runtime.stage_timing`): the latest record of each stage, in DAG order. ``make run``
writes it after the summary; this command also prints it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from pipeline.config.paths import PROJECT_ROOT

from pipeline.reporting.files import markdown_table

STAGE_ORDER = ("backbone", "prepare", "validate", "train", "evaluate")


def read_timings(directory: Path) -> list[dict]:
    """Every stage's latest timing record, in DAG order then by finishing time."""
    entries = []
    for path in sorted(directory.glob("*@*.json")):
        entry = json.loads(path.read_text(encoding="utf-8"))
        entry.setdefault("finished", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(path.stat().st_mtime)))
        entries.append(entry)

    def order(entry: dict) -> tuple:
        stage = entry["stage"].partition("@")[0]
        rank = STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER)
        return rank, entry.get("finished", ""), entry["stage"]

    return sorted(entries, key=order)


def spent_on(phases: dict[str, float], top: int = 4) -> str:
    """The largest phases, e.g. ``train: steps 80.1 s, train: dev evaluation 9.2 s``."""
    largest = sorted(phases.items(), key=lambda item: -item[1])[:top]
    return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in largest if seconds >= 0.1)


def render_timings(entries: list[dict]) -> str:
    """The markdown page: one row per stage, a subtotal per stage type, the total."""
    if not entries:
        return "# Stage timings\n\nNo stage has run yet.\n"
    rows, subtotals = [], {}
    for entry in entries:
        stage = entry["stage"].partition("@")[0]
        subtotals[stage] = subtotals.get(stage, 0.0) + entry["seconds"]
        rows.append([f"`{entry['stage']}`", f"{entry['seconds']:.1f}", spent_on(entry["phases"])])
    total = sum(subtotals.values())
    rows += [[f"**all {stage} stages**", f"{seconds:.1f}", f"{100 * seconds / total:.0f}% of the stages' time"]
             for stage, seconds in subtotals.items()]
    rows.append(["**all stages**", f"{total:.1f}", f"{total / 60:.1f} min"])
    finished = [entry.get("finished", "") for entry in entries if entry.get("finished")]
    span = f" Records from {min(finished)} to {max(finished)} (UTC)." if finished else ""
    return "\n".join([
        "# Stage timings",
        "",
        "Wall seconds of each stage's last run and what it spent them on (its largest phases; `other` is "
        "what no phase covers, such as opening the MLflow run). Written by every stage to "
        f"`reports/timings/<stage>@<name>.json`.{span}",
        "",
        markdown_table(("stage", "seconds", "spent on"), rows),
    ])


def write_timings(reports: Path) -> Path:
    """Write ``reports/timings.md`` from ``reports/timings/``; return its path."""
    path = reports / "timings.md"
    path.write_text(render_timings(read_timings(reports / "timings")), encoding="utf-8")
    return path


def main() -> int:
    path = write_timings(PROJECT_ROOT / "reports")
    print(path.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

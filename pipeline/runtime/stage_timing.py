"""Where a stage's seconds go: named phases, written to ``reports/timings/<stage>@<name>.json``.

``run_stage`` starts the clock and writes the file; stage code wraps its expensive parts in
``with phase("..."):``. ``python -m pipeline.commands.stage_timings`` turns the files of the last run
into the stage timing table (``reports/timings.md``). The files are plain outputs of the run, outside
DVC's outputs, so they never make a stage out of date.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pipeline.config.paths import PROJECT_ROOT

TIMINGS_DIR = PROJECT_ROOT / "reports" / "timings"

_phases: dict[str, float] = {}
#: where :func:`record` writes (a worker of a multi-worker training that is not the chief: its own folder)
_directory: list[Path] = [TIMINGS_DIR]


def write_under(root: Path) -> None:
    """Make :func:`record` write to ``root/reports/timings`` (instead of the project's)."""
    _directory[0] = root / "reports" / "timings"


def process_age() -> float:
    """Seconds since this process started (0 where /proc does not say)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(uptime - ticks / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError):
        return 0.0


_started = time.monotonic() - process_age()


def mark_started_up(name: str = "start-up (Python, imports, params check)") -> None:
    """Record the time from the process's start until now as phase ``name``."""
    add(name, time.monotonic() - _started - sum(_phases.values()))


def add(name: str, seconds: float) -> None:
    """Add ``seconds`` to phase ``name`` (phases keep the order they first occur in)."""
    _phases[name] = _phases.get(name, 0.0) + seconds


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Time the block as phase ``name``."""
    start = time.monotonic()
    try:
        yield
    finally:
        add(name, time.monotonic() - start)


def record(stage: str, name: str, directory: Path | None = None) -> dict:
    """Write (and return) the stage's total and phases; the rest of the total is ``other``."""
    directory = directory or _directory[0]
    total = time.monotonic() - _started
    phases = {key: round(value, 1) for key, value in _phases.items()}
    phases["other"] = round(max(total - sum(_phases.values()), 0.0), 1)
    entry = {"stage": f"{stage}@{name}", "seconds": round(total, 1), "phases": phases}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{stage}@{name}.json").write_text(json.dumps(entry, indent=1) + "\n", encoding="utf-8")
    return entry

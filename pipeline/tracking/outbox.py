"""The local outbox of MLflow records that could not reach the tracking server.

When the server is unreachable (or dies while a stage runs), a stage keeps going and writes what it
would have logged into an *entry* under ``mlflow-outbox/``: ``entry.json`` (task, experiment, the
server run it continues, if any, and the server's URI with any password masked: a sync pushes to the
server of its own environment) and ``ops.jsonl``, one line per operation (run start with tags,
params and dataset inputs; metrics with their steps and timestamps; copied artifacts; the model;
the run's end status). Each line is flushed and fsynced as it is written, so a killed stage loses
nothing it had recorded. ``python -m pipeline.commands.sync_runs`` replays pending entries to the server.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from pipeline.config.paths import PROJECT_ROOT
from pipeline.tracking.redaction import scrub, shown_uri

ENTRY = "entry.json"
OPS = "ops.jsonl"
ARTIFACTS = "artifacts"


def outbox_root(root: Path = PROJECT_ROOT) -> Path:
    """``mlflow-outbox/`` in the project, or in the project that owns DVC's temporary copy
    (``PIPELINE_OUTBOX`` overrides it)."""
    from pipeline.config.workspace import owning_project

    return Path(os.environ.get("PIPELINE_OUTBOX") or owning_project(root) / "mlflow-outbox")


@dataclass
class OutboxEntry:
    """One run's records kept locally: the run's metadata and its journal of operations."""

    directory: Path

    @property
    def id(self) -> str:
        return self.directory.name

    @property
    def meta(self) -> dict:
        return json.loads((self.directory / ENTRY).read_text(encoding="utf-8"))

    def update_meta(self, **changes: Any) -> None:
        """Rewrite ``entry.json`` atomically with ``changes`` applied."""
        meta = {**self.meta, **changes}
        tmp = self.directory / f".{ENTRY}.tmp"
        tmp.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, self.directory / ENTRY)

    def append(self, op: str, **fields: Any) -> None:
        """Journal one operation durably (flushed and fsynced before returning)."""
        line = json.dumps({"op": op, "time_ms": int(time.time() * 1000), **fields}, ensure_ascii=False)
        with open(self.directory / OPS, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def ops(self) -> list[dict]:
        """The journalled operations, in order; a torn last line (the writer was killed) is ignored."""
        path = self.directory / OPS
        if not path.is_file():
            return []
        ops = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                ops.append(json.loads(line))
            except json.JSONDecodeError:
                break
        return ops

    def keep_copy(self, source: Path) -> str:
        """Copy a file or directory into the entry (the original may change before a sync); the copy's
        path relative to the entry."""
        target = self.directory / ARTIFACTS / f"{len(list((self.directory / ARTIFACTS).glob('*'))):04d}" / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
        return str(target.relative_to(self.directory))

    @property
    def pending(self) -> bool:
        return self.meta.get("synced_run_id") is None

    def writer_alive(self) -> bool:
        """Whether the process that writes this entry still runs (on this host)."""
        meta = self.meta
        if meta.get("host") != socket.gethostname():
            return False
        try:
            os.kill(int(meta["pid"]), 0)
        except (OSError, KeyError, ValueError):
            return False
        return True


def create_entry(task: str, experiment: str, tracking_uri: str, server_run_id: str | None, reason: str) -> OutboxEntry:
    """A new entry for ``task``'s run (continuing ``server_run_id`` when the run reached the server).

    ``tracking_uri`` and ``reason`` are stored redacted: the entry holds no credentials."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    directory = outbox_root() / f"{stamp}-{task}-{uuid.uuid4().hex[:8]}"
    (directory / ARTIFACTS).mkdir(parents=True)
    entry = OutboxEntry(directory)
    (directory / ENTRY).write_text("{}", encoding="utf-8")
    entry.update_meta(
        task=task, experiment=experiment, tracking_uri=shown_uri(tracking_uri), server_run_id=server_run_id,
        reason=scrub(reason), created=time.strftime("%Y-%m-%dT%H:%M:%S"), pid=os.getpid(), host=socket.gethostname(),
        synced_run_id=None,
    )
    return entry


def open_entry(entry_id: str) -> OutboxEntry | None:
    """The entry called ``entry_id``, if it still exists."""
    directory = outbox_root() / entry_id
    return OutboxEntry(directory) if (directory / ENTRY).is_file() else None


def entries() -> Iterator[OutboxEntry]:
    """Every entry, oldest first."""
    root = outbox_root()
    if root.is_dir():
        for directory in sorted(root.iterdir()):
            if (directory / ENTRY).is_file():
                yield OutboxEntry(directory)

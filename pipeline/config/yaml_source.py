"""params.yaml as round-trip YAML: read with line numbers kept, so every message can name its line.

Also the one place that knows how ``defaults:`` reaches the tasks: :func:`with_defaults` merges it,
:func:`origin` says which of the two blocks gave a merged value (for its line).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Collection, Sequence

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from pipeline.config.errors import ConfigError, shown_path


def read_yaml(path: Path) -> dict:
    """The round-trip YAML mapping of ``path`` (keeps line numbers), or a one-line ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{shown_path(path)}: cannot read params file ({exc.strerror}); hint: pass an existing file with --params"
        ) from None
    try:
        raw = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{shown_path(path)}:{mark.line + 1}" if mark else shown_path(path)
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        column = f" (column {mark.column + 1})" if mark else ""
        raise ConfigError(
            f"{where}: not valid YAML: {what}{column}; hint: check the indentation, quotes and brackets there"
        ) from None
    except YAMLError as exc:
        raise ConfigError(f"{shown_path(path)}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{shown_path(path)}:1: expected a mapping at the top level "
            "(data_root, tracking, backbones, defaults, tasks)"
        )
    return raw


@lru_cache(maxsize=8)
def cached_yaml(path: str, stamp: tuple[int, int]) -> dict:
    return read_yaml(Path(path))


def line_of(path: str | Path, loc: str | list[str] | tuple[str, ...]) -> int:
    """1-based line in params file ``path`` of key path ``loc`` (``"tasks.sst2.data.dir"`` or a list);
    the line in ``defaults`` when the task inherits the value from there, the line of its deepest
    existing ancestor when the key itself is absent, 1 if unreadable."""
    from pipeline.config.schema import INHERITED, MERGED_PER_KEY  # the schema imports nothing of this module

    parts = loc.split(".") if isinstance(loc, str) else [str(part) for part in loc]
    try:
        stat = Path(path).stat()
        raw = cached_yaml(str(Path(path).resolve()), (stat.st_mtime_ns, stat.st_size))
    except (OSError, ConfigError):
        return 1
    return locate(raw, origin(raw, parts, INHERITED, MERGED_PER_KEY))[0]


def with_defaults(data: dict, inherited: Collection[str], merged_per_key: Collection[str] = ()) -> dict:
    """``data`` (plain, as :func:`plain` makes it) with ``defaults`` merged into every task.

    A task takes each ``inherited`` key of ``defaults`` it does not set itself; a key of
    ``merged_per_key`` (a mapping) is merged one level down, ``defaults``' entries first and the
    task's winning. Keys of ``defaults`` outside ``inherited`` are not merged (the schema refuses
    them once, at their line). An empty ``defaults:`` (null) is no defaults."""
    if "defaults" in data and data["defaults"] is None:
        data = {key: value for key, value in data.items() if key != "defaults"}
    defaults, tasks = data.get("defaults"), data.get("tasks")
    if not isinstance(defaults, dict) or not isinstance(tasks, dict):
        return data
    shared = {key: value for key, value in defaults.items() if key in inherited}
    merged = {}
    for name, task in tasks.items():
        if isinstance(task, dict):
            task = {**shared, **task}
            for key in merged_per_key:
                if isinstance(shared.get(key), dict) and isinstance(task.get(key), dict):
                    task[key] = {**shared[key], **task[key]}
        merged[name] = task
    return {**data, "tasks": merged}


def origin(
    raw: dict, loc: Sequence[str], inherited: Collection[str], merged_per_key: Collection[str] = ()
) -> list[str]:
    """The key path whose value :func:`with_defaults` put at ``loc``: ``defaults.<key>...`` when the task
    ``tasks.<name>`` inherits ``<key>`` (or, for ``merged_per_key``, its entry) from there, else ``loc``."""
    loc = [str(part) for part in loc]
    if len(loc) < 3 or loc[0] != "tasks" or loc[2] not in inherited:
        return loc
    tasks, defaults = raw.get("tasks"), raw.get("defaults")
    task = tasks.get(loc[1]) if isinstance(tasks, dict) else None
    key = loc[2]
    if not isinstance(task, dict) or not isinstance(defaults, dict) or key not in defaults:
        return loc
    if key not in task:
        return ["defaults", *loc[2:]]
    own, shared = task[key], defaults[key]
    if (key in merged_per_key and len(loc) > 3 and isinstance(own, dict) and isinstance(shared, dict)
            and loc[3] not in own and loc[3] in shared):
        return ["defaults", *loc[2:]]
    return loc


def plain(node: Any) -> Any:
    """ruamel's round-trip containers as plain dicts, lists and scalars."""
    if isinstance(node, dict):
        return {str(key): plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [plain(value) for value in node]
    if type(node).__module__.startswith("ruamel"):
        for scalar in (bool, int, float, str):
            if isinstance(node, scalar):
                return scalar(node)
    return node


def locate(raw: dict, loc: list[str]) -> tuple[int, Any]:
    """1-based line of the deepest key of ``loc`` present in ``raw``, and that key's parent."""
    node: Any = raw
    line = 1
    for key in loc:
        if isinstance(node, dict) and key in node:
            try:
                line = node.lc.key(key)[0] + 1
            except (AttributeError, KeyError, TypeError):
                pass
            parent, node = node, node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            try:
                line = node.lc.item(int(key))[0] + 1
            except (AttributeError, KeyError, TypeError, IndexError):
                pass
            parent, node = node, node[int(key)]
        else:
            return line, node
    return line, parent if loc else raw

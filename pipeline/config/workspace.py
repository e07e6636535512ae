"""The project a stage works for when DVC runs it in a temporary copy, and the links that copy needs.

``dvc exp run --temp`` and queued experiments (``dvc exp run --queue``, then ``dvc queue start``) run
the pipeline in a copy of the project under ``.dvc/tmp/exps/standalone/tmpXXXX`` (``--temp``) or
``.dvc/tmp/exps/tmpXXXX`` (the queue), which DVC deletes afterwards. Two things must not stay in that
copy:

- the MLflow store: a relative ``sqlite:///mlflow.db`` (and the offline outbox) is resolved against
  the project that owns the copy (:func:`owning_project`), so every experiment records into the
  project's own store;
- data outside the project: a relative ``data_root: ../shared/data`` (or backbone vocabulary) would
  name ``.dvc/tmp/exps/shared/data`` from the copy. :func:`link_outside_folders` puts a relative
  symbolic link there (``.dvc/tmp/exps/shared -> ../../../../shared``), so DVC finds the stages'
  dependencies and the stages their files. Every stage run in the project and the ``check``
  command (``make setup`` runs ``check --links-only``) create the links.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from pipeline.config.paths import PROJECT_ROOT

#: where DVC makes its temporary copies of a project: ``<project>/.dvc/tmp/exps/[standalone/]tmpXXXX``
COPIES = (".dvc", "tmp", "exps")
#: the folders under the project whose subfolders are temporary copies (queue, then ``--temp``)
COPY_PARENTS = (Path(*COPIES), Path(*COPIES, "standalone"))


def owning_project(root: Path = PROJECT_ROOT) -> Path:
    """``root`` itself, or for a temporary copy of DVC (``<project>/.dvc/tmp/exps/...``) the project."""
    parts = root.resolve().parts
    for start in range(len(parts) - len(COPIES), 0, -1):
        if parts[start:start + len(COPIES)] == COPIES:
            return Path(*parts[:start])
    return root


def in_temporary_copy(root: Path = PROJECT_ROOT) -> bool:
    """Whether ``root`` is one of DVC's temporary copies of a project."""
    return owning_project(root) != root


def outside_folder(path: str) -> tuple[int, str] | None:
    """``(levels up, first folder)`` of a relative path that leaves the project (``../shared/data``
    -> ``(1, "shared")``); None for an absolute path or one inside the project."""
    parts = PurePosixPath(path.replace(os.sep, "/")).parts
    if not parts or parts[0] == "/" or parts[0] != "..":
        return None
    up = 0
    while up < len(parts) and parts[up] == "..":
        up += 1
    return (up, parts[up]) if up < len(parts) else None


def outside_paths(params: object) -> list[str]:
    """The relative paths of params that may leave the project: ``data_root`` and each backbone's
    ``vocab`` and ``path``."""
    found = [getattr(params, "data_root", None)]
    for backbone in getattr(params, "backbones", {}).values():
        found += [getattr(backbone, "vocab", None), getattr(backbone, "path", None)]
    return [path for path in found if isinstance(path, str) and outside_folder(path)]


def link_outside_folders(params: object, root: Path = PROJECT_ROOT) -> list[str]:
    """Give DVC's temporary copies of the project at ``root`` the folders outside it that params name,
    as relative links; returns the problems (paths a copy cannot reach: too many levels up, or a real
    folder in the way), each one line. Nothing to do inside a temporary copy itself."""
    if in_temporary_copy(root):
        return []
    problems = []
    for path in sorted(set(outside_paths(params))):
        up, name = outside_folder(path)  # type: ignore[misc]
        target = Path(os.path.normpath(root / Path(*[".."] * up) / name))  # not resolved: the link stays relative
        for parent in COPY_PARENTS:
            link = (root / parent / Path(*[".."] * (up - 1)) / name) if up > 1 else root / parent / name
            link = Path(os.path.normpath(link))
            if root / ".dvc" / "tmp" not in link.parents:
                problems.append(f"{path!r} leaves the project by {up} folders, too many for DVC's temporary copies "
                                f"(dvc exp run --temp / --queue); hint: make it absolute, or at most two folders up")
                break
            problems += _link(link, target)
    return problems


def _link(link: Path, target: Path) -> list[str]:
    relative = os.path.relpath(target, link.parent)
    if link.is_symlink():
        if os.readlink(link) == relative:
            return []
        link.unlink()
    elif link.exists():
        return [f"{link}: a folder is in the way of the link to {target} for DVC's temporary copies; hint: remove it"]
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(relative, target_is_directory=True)
    return []

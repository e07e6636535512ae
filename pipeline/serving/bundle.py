"""A fine-tuned task as a self-contained directory: weights, backbone config, vocabulary, labels.

``models/tasks/<task>/`` holds ``model.weights.h5``, ``bert_config.json``, ``vocab.txt`` and
``task.json`` (kind, labels, the task's params, best dev scores). Everything needed to
predict is inside, so the directory can be copied or logged to MLflow and used elsewhere.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from pipeline.config.schema import TaskConfig
from pipeline.kinds.factory import build_kind
from pipeline.kinds.common.base import TaskKind
from pipeline.text.tokenization import TextTokenizer, build_tokenizer

WEIGHTS = "model.weights.h5"
META = "task.json"
CONFIG = "bert_config.json"
VOCAB = "vocab.txt"
RUN = "run.json"


@dataclass
class TaskBundle:
    """What a bundle directory holds, read back."""

    directory: Path
    meta: dict

    @property
    def cfg(self) -> TaskConfig:
        return TaskConfig.model_validate(self.meta["config"])

    @cached_property
    def kind(self) -> TaskKind:
        return build_kind(self.cfg)

    @property
    def labels(self) -> list[str]:
        return self.meta["labels"]

    def tokenizer(self) -> TextTokenizer:
        return build_tokenizer(self.meta["config"]["language"], self.directory / VOCAB, self.meta["lowercase"])

    def load_model(self) -> Any:
        """Rebuild the architecture from the bundle's config and load the fine-tuned weights. It computes
        in the config's precision as resolved on this machine (``auto``: bfloat16 only where the
        hardware has it), whatever the training machine had; the weights are float32 either way."""
        from pipeline.runtime import tf_runtime
        from pipeline.training.modeling import build_task_model

        previous = tf_runtime.keras.mixed_precision.global_policy().name
        tf_runtime.set_precision(self.cfg.precision)
        try:
            model = build_task_model(
                self.kind, self.directory / CONFIG, None, self.meta["model_type"], self.labels, self.cfg
            )
        finally:
            tf_runtime.keras.mixed_precision.set_global_policy(previous)
        model.load_weights(str(self.directory / WEIGHTS))
        return model

    def run_reference(self) -> dict:
        """The training run (:meth:`pipeline.tracking.run.TaskRun.reference`): server run id and/or outbox entry."""
        path = self.directory / RUN
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    def run_id(self) -> str | None:
        """The training run's id on the tracking server (None if it never reached it)."""
        return self.run_reference().get("run_id")


def start_bundle(directory: Path, config: Path, vocab: Path) -> None:
    """Create an empty bundle directory with the backbone's config and vocabulary copied in."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    shutil.copyfile(config, directory / CONFIG)
    shutil.copyfile(vocab, directory / VOCAB)


def write_meta(directory: Path, meta: dict) -> None:
    (directory / META).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_run(directory: Path, reference: dict) -> None:
    """Store the training run's reference (run id, outbox entry, tracking URI)."""
    (directory / RUN).write_text(json.dumps(reference) + "\n", encoding="utf-8")


def read_bundle(directory: str | Path) -> TaskBundle:
    """Open a bundle directory; a clear error when it is not one."""
    directory = Path(directory)
    if not (directory / META).is_file() or not (directory / WEIGHTS).is_file():
        raise FileNotFoundError(f"{directory}: not a trained task (no {META} / {WEIGHTS}); run the train stage")
    return TaskBundle(directory, json.loads((directory / META).read_text(encoding="utf-8")))

"""Per-epoch training state, so that an interrupted training resumes where it stopped.

``models/checkpoints/<task>/`` (outside DVC's outputs, which DVC deletes before re-running a stage):

* ``attempt.json`` -- the MLflow run of the attempt in progress (marked KILLED by the next attempt
  if the process died without closing it);
* ``epoch-<n>/`` -- after every completed epoch: a TensorFlow checkpoint of the model, the
  optimizer (Adam moments and the step counter that drives the warm-up/decay schedule) and the
  random generators of the dropout and sampling layers (so the resumed epochs draw the masks an
  uninterrupted training would have drawn), plus the best dev weights so far;
* ``state.json`` -- written last, atomically: the epochs done, the dev history, the best row, and a
  fingerprint of everything that shapes training (the task's params, labels, prepared data, backbone
  and training code).

A state whose fingerprint differs, or an epoch directory that ``state.json`` does not name (a save
cut short), is never resumed from. The directory is removed once training has finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable

from pipeline.runtime import interrupts
from pipeline.runtime.stage_timing import phase
from pipeline.runtime.code_closure import code_digest, stage_code
from pipeline.config.paths import PROJECT_ROOT
from pipeline.config.schema import TaskConfig
from pipeline.runtime.tf_runtime import keras, random_generators, tf

STATE = "state.json"
ATTEMPT = "attempt.json"
BEST = "best.weights.h5"


def checkpoint_dir(task: str, root: Path = PROJECT_ROOT) -> Path:
    """``models/checkpoints/<task>``."""
    return root / "models" / "checkpoints" / task


def fingerprint(cfg: TaskConfig, labels: list[str], files: Iterable[Path], root: Path = PROJECT_ROOT,
                precision: str | None = None) -> str:
    """A hash of the params, labels, input files (prepared data, backbone manifest and config), the
    training code (the train stage's import closure for the task's kind, as dvc.yaml lists it) and the
    dtype policy ``precision: auto`` resolved to on this machine: resuming is only safe when all of them
    are unchanged."""
    described = {"cfg": cfg.model_dump(), "labels": labels, **({"policy": precision} if precision else {})}
    digest = hashlib.sha256(json.dumps(described, sort_keys=True).encode())
    digest.update(code_digest(stage_code("train", cfg.kind)).encode())
    for path in files:
        digest.update(str(path.name).encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class TrainingCheckpoints:
    """Saves and restores the per-epoch state of one task's training."""

    def __init__(self, directory: Path, fingerprint: str) -> None:
        self.directory, self.fingerprint = directory, fingerprint
        self.directory.mkdir(parents=True, exist_ok=True)

    # --- the attempt in progress ------------------------------------------------------------------

    def previous_attempt(self) -> dict | None:
        """The run reference of an earlier attempt that never finished, if any."""
        path = self.directory / ATTEMPT
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def record_attempt(self, run_reference: dict) -> None:
        _write_json(self.directory / ATTEMPT, run_reference)

    # --- epoch state ------------------------------------------------------------------------------

    def state(self) -> dict | None:
        """The last completed epoch's state, if it belongs to this training (same fingerprint)."""
        path = self.directory / STATE
        if not path.is_file():
            return None
        state = json.loads(path.read_text(encoding="utf-8"))
        complete = (self.directory / state.get("checkpoint", "-") / BEST).is_file()
        return state if state.get("fingerprint") == self.fingerprint and complete else None

    def save(self, epoch: int, model: Any, history: list[dict], best: dict | None, best_weights: Path) -> None:
        """Save the model, optimizer and dev history after ``epoch`` (1-based) epochs."""
        name = f"epoch-{epoch}"
        tmp = self.directory / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        # slots of every trainable variable exist (layers unfrozen this epoch have none yet), so that the
        # restore, which creates them all, finds each in the checkpoint
        model.optimizer._create_all_weights(model.trainable_variables)
        training_state(model).write(str(tmp / "ckpt"))
        shutil.copyfile(best_weights, tmp / BEST)
        shutil.rmtree(self.directory / name, ignore_errors=True)
        os.replace(tmp, self.directory / name)
        interrupts.reached("checkpoint_write")
        _write_json(self.directory / STATE, {
            "fingerprint": self.fingerprint, "epochs_done": epoch, "checkpoint": name,
            "history": history, "best": best,
        })
        for old in self.directory.glob("epoch-*"):
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)

    def restore(self, model: Any, state: dict, best_weights: Path) -> None:
        """Load the model and optimizer of ``state`` (after ``model.compile``) and put its best dev
        weights at ``best_weights``."""
        optimizer = model.optimizer
        optimizer._create_all_weights(model.trainable_variables)  # slots exist, so they restore now
        checkpoint = training_state(model)
        checkpoint.read(str(self.directory / state["checkpoint"] / "ckpt")).assert_existing_objects_matched()
        best_weights.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.directory / state["checkpoint"] / BEST, best_weights)

    def clear(self) -> None:
        """Remove the state: training has finished and its outputs are in place."""
        shutil.rmtree(self.directory, ignore_errors=True)


def training_state(model: Any) -> tf.train.Checkpoint:
    """Everything a training step reads and changes: weights, optimizer slots and step, random generators,
    and the weight average when the model has one."""
    from pipeline.training.averaging import average_of

    average = average_of(model)
    extra = {"average": average.state} if average is not None else {}
    return tf.train.Checkpoint(model=model, optimizer=model.optimizer, random=random_generators(model), **extra)


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the state after each epoch; must follow the dev evaluation in the callback list."""

    def __init__(self, checkpoints: TrainingCheckpoints, evaluation: Any,
                 scope: Callable[[], ContextManager] = nullcontext) -> None:
        super().__init__()
        #: where variables are created (a distribution strategy's scope: the save creates missing slots)
        self.checkpoints, self.evaluation, self.scope = checkpoints, evaluation, scope

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        with phase("train: epoch checkpoint"), self.scope():
            self.checkpoints.save(
                epoch + 1, self.model, self.evaluation.history, self.evaluation.best, self.evaluation.weights_path
            )

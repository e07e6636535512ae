"""The fit loop shared by every kind: encode, batch, train, evaluate dev each epoch, keep the best."""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from pathlib import Path
from contextlib import nullcontext
from typing import Any, Callable, ContextManager, Sequence

from tqdm import tqdm

from pipeline.runtime import interrupts
from pipeline.runtime.stage_timing import phase
from pipeline.config.schema import TaskConfig
from pipeline.kinds.common.base import Features, TaskKind
from pipeline.runtime.tf_runtime import keras
from pipeline.text.tokenization import TextTokenizer
from pipeline.training.batching import TrainingBatches
from pipeline.training.checkpoints import EpochCheckpoint, TrainingCheckpoints
from pipeline.training.distribution import Placement
from pipeline.training.adversarial import fgm_train_step
from pipeline.training.averaging import attach_average
from pipeline.training.backbone_training import GradualUnfreezing, count_backbone_layers, set_backbone_trainable
from pipeline.training.loop import run_epochs, use_train_step
from pipeline.training.optimizer import build_optimizer

logger = logging.getLogger(__name__)


def encode_all(
    kind: TaskKind, records: Sequence[dict], tokenizer: TextTokenizer, labels: list[str], maxlen: int, what: str
) -> list[Features]:
    """Encode records into features, with a progress bar on long sets."""
    rows = tqdm(records, desc=f"encode {what}", unit="ex", disable=len(records) < 2000, mininterval=2)
    return [kind.encode(record, tokenizer, labels, maxlen) for record in rows]


class DevEvaluation(keras.callbacks.Callback):
    """Scores dev after every epoch, records the history and saves the best weights atomically."""

    def __init__(
        self,
        kind: TaskKind,
        dev: Sequence[dict],
        dev_features: Sequence[Features],
        labels: list[str],
        batch_size: int,
        weights_path: Path,
        on_epoch: Callable[[dict], None],
        metric: str | None = None,
    ) -> None:
        super().__init__()
        #: the dev metric that picks the saved epoch (default: the kind's primary metric)
        self.metric = metric or kind.primary_metric
        self.kind, self.dev, self.dev_features, self.labels = kind, dev, dev_features, labels
        self.batch_size, self.weights_path, self.on_epoch = batch_size, weights_path, on_epoch
        self.history: list[dict] = []
        self.best: dict | None = None
        self._started = time.monotonic()
        #: the weights dev is scored with and the best are saved with (the weight average's, with ``ema``)
        self.weights_in_use: Callable[[], ContextManager] = nullcontext

    def resume(self, history: list[dict], best: dict | None) -> None:
        """Continue from an interrupted training's history (its best weights already in place)."""
        self.history, self.best = list(history), best
        if history:
            self._started = time.monotonic() - history[-1].get("seconds", 0.0)
        for row in self.history:
            self.on_epoch(row)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        with self.weights_in_use():
            self._evaluate(epoch, logs)

    def _evaluate(self, epoch: int, logs: dict | None) -> None:
        with phase("train: dev evaluation"):
            predictions = self.kind.predict(self.model, self.dev, self.dev_features, self.labels, self.batch_size * 2)
            interrupts.reached("dev_evaluation")
            scores = self.kind.score(self.dev, predictions, self.labels)
        row = {
            "epoch": epoch + 1,
            "loss": float((logs or {}).get("loss", math.nan)),
            **{f"dev_{key}": value for key, value in scores.items()},
            "seconds": round(time.monotonic() - self._started, 1),
        }
        self.history.append(row)
        # ties go to the later epoch: with equal dev scores the model that trained longer is kept
        improved = self.best is None or scores[self.metric] >= self.best[f"dev_{self.metric}"]
        if improved:
            self.best = row
            tmp = self.weights_path.with_name("." + self.weights_path.name)
            with phase("train: save best weights"):
                self.model.save_weights(str(tmp))
                os.replace(tmp, self.weights_path)
        summary = ", ".join(f"{key} {value:.4f}" for key, value in scores.items())
        logger.info(f"\nepoch {epoch + 1}: dev {summary}" + (" (best so far, saved)" if improved else ""))
        self.on_epoch(row)


def epochs_without_gain(history: Sequence[dict], metric: str, min_delta: float) -> int:
    """Epochs at the end of ``history`` since the dev ``metric`` last beat the best before it by more
    than ``min_delta`` (the first epoch counts as a gain)."""
    best, since = None, 0
    for row in history:
        value = row[f"dev_{metric}"]
        if best is None or value > best + min_delta:
            best, since = value, 0
        else:
            since += 1
    return since


class EarlyStopping(keras.callbacks.Callback):
    """Stops training when the dev metric has not gained more than ``min_delta`` for ``patience``
    epochs; must follow the dev evaluation (and the epoch checkpoint) in the callback list."""

    def __init__(self, evaluation: DevEvaluation, patience: int, min_delta: float,
                 placement: Placement | None = None) -> None:
        super().__init__()
        self.evaluation, self.patience, self.min_delta = evaluation, patience, min_delta
        #: the workers of a multi-worker training stop together (when any of them sees the stall)
        self.placement = placement or Placement()

    def stalled(self) -> bool:
        stalled = epochs_without_gain(self.evaluation.history, self.evaluation.metric, self.min_delta) >= self.patience
        return self.placement.any_true(stalled)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.stalled():
            self.model.stop_training = True
            logger.info(f"early stopping after epoch {epoch + 1}: dev {self.evaluation.metric} has not gained more "
                        f"than {self.min_delta} for {self.patience} epoch(s)")


class BatchFaultPoint(keras.callbacks.Callback):
    """Marks the ``batch`` fault point after every training batch (added only when it is asked for:
    batch hooks cost time on every step)."""

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        interrupts.reached("batch")


def fit(
    kind: TaskKind,
    model: Any,
    cfg: TaskConfig,
    train_features: Sequence[Features],
    evaluation: DevEvaluation,
    checkpoints: TrainingCheckpoints | None = None,
    placement: Placement | None = None,
) -> int:
    """Compile with AdamW + warm-up and train ``cfg.epochs`` epochs on length-bucketed batches.

    With ``checkpoints``, the state is saved after every epoch, and a saved state of this same
    training is resumed: model, optimizer (hence the learning-rate schedule's position), dev history,
    best weights and batch shuffling continue from the last completed epoch. Returns the number of
    epochs that were resumed (0 for a fresh training). With ``cfg.early_stopping``, training ends
    once the dev metric stalls (``len(evaluation.history)`` tells how many epochs ran).

    With a ``placement`` (built in its scope), ``cfg.batch_size`` is the global batch, split across the
    replicas; every worker resumes only when all of them hold the same completed epoch.
    """
    placement = placement or Placement()
    batches = TrainingBatches(train_features, cfg.batch_size, cfg.seed, kind.train_inputs)
    layers = count_backbone_layers(model)
    with placement.scope():
        model.compile(
            loss=kind.loss(model),
            optimizer=build_optimizer(cfg.learning_rate, cfg.weight_decay, len(batches) * cfg.epochs,
                                      cfg.warmup_proportion, cfg.layerwise_lr_decay, layers),
        )
        callbacks = [evaluation, *technique_callbacks(model, cfg, evaluation)]
    done, start = 0, 0  # epochs resumed; the first epoch to train (0-based)
    if checkpoints is not None:
        state = checkpoints.state()
        if state is not None and state["epochs_done"] > cfg.epochs:
            state = None
        if not placement.all_agree([state["epochs_done"] if state else 0]):
            logger.info("the workers hold different completed epochs of this training: all of them start over")
            state = None
        if state is not None:
            if cfg.unfreeze_after_epochs and state["epochs_done"] >= cfg.unfreeze_after_epochs:
                set_backbone_trainable(model, layers, True)
            with placement.scope():
                checkpoints.restore(model, state, evaluation.weights_path)
            evaluation.resume(state["history"], state["best"])
            batches.skip_epochs(state["epochs_done"])
            done = start = state["epochs_done"]
            logger.info(
                f"resuming after epoch {done} of {cfg.epochs} (optimizer step {int(model.optimizer.iterations.numpy())})"
            )
        callbacks.append(EpochCheckpoint(checkpoints, evaluation, placement.scope))
    if cfg.early_stopping is not None:
        stopper = EarlyStopping(evaluation, cfg.early_stopping.patience, cfg.early_stopping.min_delta, placement)
        callbacks.append(stopper)
        if done and stopper.stalled():  # the interrupted training had already stopped early
            logger.info(f"early stopping had ended this training after epoch {done}")
            start = cfg.epochs
    if interrupts.wants("batch"):
        callbacks.append(BatchFaultPoint())
    run_epochs(
        model,
        batches.forever(),
        steps_per_epoch=len(batches),
        epochs=cfg.epochs,
        initial_epoch=start,
        callbacks=callbacks,
        class_weight=kind.class_weight(train_features, evaluation.labels, cfg),
        verbose=1 if sys.stdout.isatty() else 2,
        placement=placement,
    )
    warn_if_nothing_learnt(evaluation)
    return done


def technique_callbacks(model: Any, cfg: TaskConfig, evaluation: DevEvaluation) -> list[keras.callbacks.Callback]:
    """Set up ``cfg``'s adversarial training and weight averaging on the compiled ``model``; the callbacks
    of gradual unfreezing (to follow the dev evaluation)."""
    if cfg.adversarial is not None:
        use_train_step(model, fgm_train_step(model, cfg.adversarial.epsilon))
    if cfg.ema is not None:  # what trains now, or, with gradual unfreezing, at some point
        variables = None if cfg.unfreeze_after_epochs else model.trainable_weights
        evaluation.weights_in_use = attach_average(model, cfg.ema.decay, variables).applied
    if cfg.unfreeze_after_epochs:
        return [GradualUnfreezing(cfg.unfreeze_after_epochs, count_backbone_layers(model))]
    return []


def warn_if_nothing_learnt(evaluation: DevEvaluation) -> bool:
    """Log a warning (and return True) when the dev metric was 0 after every epoch: the kept weights
    are those of the last epoch, and the model predicts nothing useful."""
    scores = [row.get(f"dev_{evaluation.metric}") for row in evaluation.history]
    if not scores or any(score for score in scores):
        return False
    logger.warning(
        f"dev {evaluation.metric} was 0 after each of the {len(scores)} epochs: the model learnt nothing "
        "(the last epoch's weights are kept); check the data health report (labels, cut texts, token "
        "shares) and the learning rate"
    )
    return True

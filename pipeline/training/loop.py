"""The epoch loop: Keras's own ``train_step`` in one traced function, called batch by batch.

``model.fit`` on this stack sometimes runs a whole call on little more than one core: on a 2-vCPU
machine the same model and batches train at 9.4 or 15-16 samples/s (32 x 128 tokens), chosen anew
at each ``fit`` call. Calling the compiled train step directly never showed the slow mode
(``benchmarks/side_by_side.py`` measures both paths). The loop keeps what ``fit`` gave: Keras
callbacks (dev evaluation, checkpoints, progress bar), ``class_weight`` as per-example weights, and
the epoch's running mean loss. The step has a relaxed input signature (every dimension dynamic),
so it is traced once, not once per padded length.
"""

from __future__ import annotations

import time
import weakref
from contextlib import nullcontext
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from pipeline.runtime.stage_timing import add
from pipeline.runtime.tf_runtime import keras, random_generators, tf
from pipeline.training.distribution import Placement, distributed_step

Batch = tuple  # (inputs,) | (inputs, targets) | (inputs, targets, sample_weights)


def class_weight_table(class_weight: dict | None) -> np.ndarray | None:
    """``class_weight`` as an array indexed by label (None: every example counts the same)."""
    if not class_weight:
        return None
    table = np.zeros(max(class_weight) + 1, dtype=np.float32)
    for label, weight in class_weight.items():
        table[label] = weight
    return table


def with_class_weight(batch: Batch, table: np.ndarray | None) -> Batch:
    """Add per-example weights ``table[target]`` to a batch (as Keras's ``class_weight`` does)."""
    if table is None or len(batch) < 2:
        return batch
    return batch[0], batch[1], table[np.asarray(batch[1])]


def signature_of(batch: Batch) -> Any:
    """TensorSpecs of a batch's structure with every dimension dynamic (one trace for all lengths)."""
    return tf.nest.map_structure(
        lambda array: tf.TensorSpec((None,) * np.ndim(array), tf.as_dtype(np.asarray(array).dtype)), batch
    )


_STEPS: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


_TRAIN_STEPS: "weakref.WeakKeyDictionary[Any, Callable[[Batch], dict]]" = weakref.WeakKeyDictionary()


def use_train_step(model: Any, train_step: Callable[[Batch], dict]) -> None:
    """Train ``model`` with ``train_step`` instead of ``model.train_step`` (e.g. adversarial training)."""
    _TRAIN_STEPS[model] = train_step


def train_step_of(model: Any, placement: Placement | None = None) -> Callable[[Batch], dict]:
    """The model's training step, followed by the update of its weight average when it has one; under
    a strategy, the step runs on every replica's slice of the batch and the average updates once."""
    from pipeline.training.averaging import average_of

    step, average = _TRAIN_STEPS.get(model, model.train_step), average_of(model)
    if placement is not None and placement.strategy is not None:
        return distributed_step(placement.strategy, step, average.update if average is not None else None)
    if average is None:
        return step

    def step_and_average(batch: Batch) -> dict:
        logs = step(batch)
        average.update()
        return logs

    return step_and_average


def compiled_train_step(model: Any, example: Batch, placement: Placement | None = None) -> Callable[[Batch], dict]:
    """The training step traced once for batches structured like ``example`` and the model's current
    trainable variables, kept with the model (a second call of :func:`run_epochs` on the same model and
    compiled optimizer traces nothing; unfreezing layers traces a new step)."""
    signature = signature_of(example)
    steps = _STEPS.setdefault(model, {})
    key = (id(model.optimizer), repr(signature), len(model.trainable_variables))
    if key not in steps:
        with placement.scope() if placement is not None else nullcontext():
            create_state(model)
        steps[key] = tf.function(train_step_of(model, placement), input_signature=[signature])
    return steps[key]


def create_state(model: Any) -> None:
    """Create the optimizer's moments and the layers' random generators now: variables created while
    the step is traced make TensorFlow trace it a second time."""
    create = getattr(model.optimizer, "_create_all_weights", None)
    if create is not None:
        create(model.trainable_variables)
    random_generators(model)


def run_epochs(
    model: Any,
    batches: Iterator[Batch],
    steps_per_epoch: int,
    epochs: int,
    initial_epoch: int = 0,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    class_weight: dict | None = None,
    verbose: int = 2,
    placement: Placement | None = None,
) -> dict[str, float]:
    """Train epochs ``initial_epoch + 1 .. epochs`` on ``steps_per_epoch`` batches each, or until a
    callback sets ``model.stop_training``; return the last epoch's logs (``loss``: its mean training loss).
    With a ``placement`` that has a strategy, each global batch is split across its replicas."""
    callback_list = keras.callbacks.CallbackList(
        list(callbacks), add_history=True, add_progbar=verbose != 0, model=model, verbose=verbose,
        epochs=epochs, steps=steps_per_epoch,
    )
    step, weights = None, class_weight_table(class_weight)
    epoch_logs: dict[str, float] = {}
    model.stop_training = False
    callback_list.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        callback_list.on_epoch_begin(epoch)
        logs: dict = {}
        for index in range(steps_per_epoch):
            batch = with_class_weight(next(batches), weights)
            if index == 0:  # per epoch: a callback may have changed what trains (gradual unfreezing)
                step = compiled_train_step(model, batch, placement)
            callback_list.on_train_batch_begin(index)
            start = time.monotonic()
            logs = step(batch)
            if index == 0 and epoch == initial_epoch:  # the first call traces the step
                float(logs["loss"])
                add("train: first step (tracing)", time.monotonic() - start)
            else:
                add("train: steps", time.monotonic() - start)
            callback_list.on_train_batch_end(index, logs)  # 0-based, as model.fit passes it
        epoch_logs = {key: float(value) for key, value in logs.items()}
        callback_list.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:  # a callback asked to stop (early stopping), as under model.fit
            break
    callback_list.on_train_end(epoch_logs)
    return epoch_logs

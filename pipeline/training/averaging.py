"""An exponential moving average of a model's weights (``ema: {decay: d}``).

After every training step ``avg = d * avg + (1 - d) * w`` for each weight, from ``avg = 0``; the averaged
weights are ``avg / (1 - d ** t)`` after ``t`` steps (Adam's bias correction: an average of the weights
seen so far, not pulled towards zero or towards the initial weights). Before the first step the raw
weights are used: bert4keras's ``AdamEMA`` divided by ``1 - d ** 0 = 0`` there under TensorFlow 2
(bert4keras issue 332). Dev evaluation, the saved model and prediction use the averaged weights; the
raw weights go on training.
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from pipeline.runtime.tf_runtime import tf


class WeightAverage:
    """The moving average of ``model``'s floating-point weights, updated in the traced training step."""

    def __init__(self, model: Any, decay: float, variables: Sequence[Any] | None = None) -> None:
        self.decay = float(decay)
        #: the averaged weights (default: every floating-point weight of the model)
        self.targets = list(variables) if variables is not None else [w for w in model.weights if w.dtype.is_floating]
        #: what a training checkpoint saves and restores: the running sums and the step count
        self.state = tf.Module(name="weight_average")
        self.state.sums = [
            tf.Variable(tf.zeros_like(weight), trainable=False, name=f"average_{index}")
            for index, weight in enumerate(self.targets)
        ]
        self.state.steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="average_steps")

    def update(self) -> None:
        """One step of the average (graph ops: call it inside the traced training step)."""
        for total, weight in zip(self.state.sums, self.targets):
            total.assign(self.decay * total + (1.0 - self.decay) * tf.cast(weight, total.dtype))
        self.state.steps.assign_add(1)

    def averaged(self) -> list[Any]:
        """The averaged weights now (the raw ones before the first step)."""
        steps = int(self.state.steps.numpy())
        if steps == 0:
            return [weight.numpy() for weight in self.targets]
        correction = 1.0 - self.decay ** steps
        return [total.numpy() / correction for total in self.state.sums]

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block and its raw weights again after it."""
        raw = [weight.numpy() for weight in self.targets]
        for weight, value in zip(self.targets, self.averaged()):
            weight.assign(value)
        try:
            yield
        finally:
            for weight, value in zip(self.targets, raw):
                weight.assign(value)


_AVERAGES: "weakref.WeakKeyDictionary[Any, WeightAverage]" = weakref.WeakKeyDictionary()


def attach_average(model: Any, decay: float, variables: Sequence[Any] | None = None) -> WeightAverage:
    """Start averaging ``model``'s weights, or ``variables`` (before its training step is traced)."""
    _AVERAGES[model] = WeightAverage(model, decay, variables)
    return _AVERAGES[model]


def average_of(model: Any) -> WeightAverage | None:
    """The weight average attached to ``model``, if any."""
    return _AVERAGES.get(model)

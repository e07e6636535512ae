"""AdamW with a linear warm-up from 0 to the peak rate, then linear decay to 0.

The update is Keras's fused Adam op (one ``ResourceApplyAdam`` per variable) plus BERT's decoupled
weight decay, with the learning rate computed once per step. bert4keras's ``AdamW`` +
``extend_with_piecewise_linear_lr`` computed the schedule and the update from about fifty small
ops per variable: on MiniLM about 10,000 ops per training step, and three quarters of the time it
took to trace the step. The arithmetic is the same (bias-corrected Adam, ``x -= lr * wd * x`` for
every variable but LayerNorm gains and biases, the schedule evaluated at the step count before the
update), except that Adam's epsilon is added before the bias correction of the second moment, as
TensorFlow's fused op does.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from pipeline.runtime.tf_runtime import keras, tf  # noqa: F401  (patches the optimizer base before bert4keras loads)

from bert4keras.backend import piecewise_linear  # noqa: E402

#: parameters matching these name fragments get no weight decay (LayerNorm gains, biases)
NO_DECAY = ("Norm", "bias")


def warmup_schedule(total_steps: int, warmup_proportion: float) -> dict[int, float]:
    """Learning-rate multipliers by step: a piecewise-linear schedule (linear from 0 at step 0)."""
    warmup = int(round(total_steps * warmup_proportion))
    total = max(total_steps, warmup + 1)
    return {warmup: 1.0, total: 0.0} if warmup > 0 else {0: 1.0, total: 0.0}


class PiecewiseLinearRate(keras.optimizers.schedules.LearningRateSchedule):
    """``peak`` times bert4keras's ``piecewise_linear(step, schedule)``."""

    def __init__(self, peak: float, schedule: dict[int, float]) -> None:
        self.peak = peak
        self.schedule = {int(step): float(value) for step, value in schedule.items()}

    def __call__(self, step: Any) -> Any:
        return self.peak * piecewise_linear(step, self.schedule)

    def get_config(self) -> dict:
        return {"peak": self.peak, "schedule": self.schedule}


class AdamW(keras.optimizers.legacy.Adam):
    """Adam (fused op per variable) with decoupled weight decay ``x -= lr * weight_decay_rate * x``."""

    def __init__(
        self,
        learning_rate: Any,
        weight_decay_rate: float = 0.0,
        exclude_from_weight_decay: Sequence[str] = NO_DECAY,
        epsilon: float = 1e-6,
        name: str = "AdamW",
        lr_multiplier: Callable[[str], float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate=learning_rate, epsilon=epsilon, name=name, **kwargs)
        self.weight_decay_rate = weight_decay_rate
        self.exclude_from_weight_decay = tuple(exclude_from_weight_decay)
        #: variable name -> factor on the learning rate (layer-wise decay); None: 1 for every variable
        self.lr_multiplier = lr_multiplier

    def learning_rate_multiplier(self, var: Any) -> float:
        """The factor on the scheduled learning rate for ``var`` (its update and its weight decay)."""
        return 1.0 if self.lr_multiplier is None else float(self.lr_multiplier(var.name))

    def decays(self, var: Any) -> bool:
        """Whether ``var`` gets weight decay (not a LayerNorm gain or a bias)."""
        return self.weight_decay_rate > 0 and not any(part in var.name for part in self.exclude_from_weight_decay)

    def _resource_apply_dense(self, grad: Any, var: Any, apply_state: dict | None = None) -> Any:
        key = (var.device, var.dtype.base_dtype)
        coefficients = (apply_state or {}).get(key) or self._fallback_apply_state(*key)
        multiplier = self.learning_rate_multiplier(var)
        if multiplier != 1.0:
            coefficients = {**coefficients, "lr_t": coefficients["lr_t"] * multiplier}
            apply_state = {**(apply_state or {}), key: coefficients}
        if self.decays(var):
            var.assign_sub(coefficients["lr_t"] * self.weight_decay_rate * var, read_value=False)
        return super()._resource_apply_dense(grad, var, apply_state)

    def _resource_apply_sparse(self, grad: Any, var: Any, indices: Any, apply_state: dict | None = None) -> Any:
        # an embedding's gradient: made dense, so moments decay on every row as bert4keras's Adam did
        dense = tf.math.unsorted_segment_sum(grad, indices, tf.shape(var)[0])
        return self._resource_apply_dense(dense, var, apply_state)

    def get_config(self) -> dict:
        return {**super().get_config(), "weight_decay_rate": self.weight_decay_rate,
                "exclude_from_weight_decay": list(self.exclude_from_weight_decay)}


def layerwise_multiplier(decay: float, num_layers: int) -> Callable[[str], float]:
    """Layer-wise learning-rate decay: ``decay ** depth`` for a backbone variable at ``depth`` below the
    top layer (the embeddings are deepest), 1 for the head's."""
    from pipeline.training.backbone_training import depth_of

    def multiplier(name: str) -> float:
        depth = depth_of(name, num_layers)
        return 1.0 if depth is None else decay ** depth

    return multiplier


def build_optimizer(
    learning_rate: float, weight_decay: float, total_steps: int, warmup_proportion: float,
    layerwise_decay: float | None = None, num_layers: int = 0, no_decay: Sequence[str] = NO_DECAY,
) -> Any:
    """AdamW + warm-up/decay schedule (+ layer-wise learning rates), ready for ``model.compile``;
    ``no_decay``: name fragments of the variables without weight decay."""
    return AdamW(
        learning_rate=PiecewiseLinearRate(learning_rate, warmup_schedule(total_steps, warmup_proportion)),
        weight_decay_rate=weight_decay,
        exclude_from_weight_decay=no_decay,
        lr_multiplier=layerwise_multiplier(layerwise_decay, num_layers) if layerwise_decay else None,
    )

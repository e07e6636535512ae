"""AdamW with a linear warm-up from 0 to the peak rate, then linear decay to 0 (bert4keras optimizers)."""

from __future__ import annotations

from typing import Any

from pipeline.runtime.tf_runtime import keras  # noqa: F401  (patches the optimizer base before bert4keras loads)

from bert4keras.optimizers import Adam, extend_with_piecewise_linear_lr, extend_with_weight_decay  # noqa: E402

AdamW = extend_with_weight_decay(Adam, "AdamW")
AdamWLR = extend_with_piecewise_linear_lr(AdamW, "AdamWLR")

#: parameters matching these name fragments get no weight decay (LayerNorm gains, biases)
NO_DECAY = ["Norm", "bias"]


def warmup_schedule(total_steps: int, warmup_proportion: float) -> dict[int, float]:
    """Learning-rate multipliers by step for bert4keras's piecewise-linear schedule."""
    warmup = int(round(total_steps * warmup_proportion))
    total = max(total_steps, warmup + 1)
    return {warmup: 1.0, total: 0.0} if warmup > 0 else {0: 1.0, total: 0.0}


def build_optimizer(learning_rate: float, weight_decay: float, total_steps: int, warmup_proportion: float) -> Any:
    """AdamW + warm-up/decay schedule, ready for ``model.compile``."""
    return AdamWLR(
        learning_rate=learning_rate,
        weight_decay_rate=weight_decay,
        exclude_from_weight_decay=NO_DECAY,
        lr_schedule=warmup_schedule(total_steps, warmup_proportion),
    )

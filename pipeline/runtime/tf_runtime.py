"""The one place TensorFlow is imported and patched for bert4keras.

Import this module (``from pipeline.runtime.tf_runtime import tf, keras``) before anything
imports bert4keras: bert4keras's optimizers subclass the pre-2.11 ``OptimizerV2``,
so ``tf.keras.optimizers.Optimizer`` must point at the legacy class first.
"""

import os
import sys
import tempfile
import warnings
from contextlib import contextmanager
from typing import Iterator

import pipeline  # noqa: F401  (sets TF_KERAS / TF_USE_LEGACY_KERAS before TensorFlow loads)

#: start-up lines TensorFlow's C++ runtime writes to file descriptor 2 before its log level
#: (TF_CPP_MIN_LOG_LEVEL) applies: the same two on every import, not a problem of this run
NATIVE_STARTUP_NOISE = ("All log messages before absl::InitializeLog() is called", "oneDNN custom operations are on")


@contextmanager
def quiet_native_startup() -> Iterator[None]:
    """Drop TensorFlow's known C++ start-up lines from stderr; any other line written meanwhile is
    passed on (a file, not a pipe, holds them, so a long output cannot block)."""
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as held:
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [line for line in held.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not any(noise in line for noise in NATIVE_STARTUP_NOISE)]
            sys.stderr.write("".join(kept))


with quiet_native_startup():
    import tensorflow as tf

keras = tf.keras
keras.optimizers.Optimizer = keras.optimizers.legacy.Optimizer
# Random layers (dropout, the relation head's subject sampling) draw from a tf.random.Generator whose
# state is a variable: a training checkpoint saves it (pipeline.training.checkpoints), so a resumed
# training draws the same masks as an uninterrupted one. The legacy stateful ops keep their position
# in C++ only, and restart from the seed in every process.
keras.backend.experimental.enable_tf_random_generator()


def _attention_dropout(rate: float, **kwargs):
    """Stands in for ``Dropout`` inside ``bert4keras.layers``. Its attention layers create the dropout of
    the attention probabilities inside ``call``, a new layer on every call; with generator-backed random
    layers that would create a variable inside a traced training step. Here each attention layer
    creates that dropout once and keeps it as a sublayer (so its generator is checkpointed too);
    anything else gets a plain ``Dropout``."""
    from tf_keras.src.engine.base_layer_utils import call_context

    owner = call_context().layer
    if owner is None or not hasattr(owner, "attention_dropout"):
        return keras.layers.Dropout(rate, **kwargs)
    if getattr(owner, "attention_probs_dropout", None) is None:
        owner.attention_probs_dropout = keras.layers.Dropout(rate, **kwargs)
    return owner.attention_probs_dropout


import bert4keras.layers  # noqa: E402  (after the optimizer patch above)
import bert4keras.models  # noqa: E402,F401  (keeps the real Dropout class it imported from bert4keras.layers)

bert4keras.layers.Dropout = _attention_dropout

# bert4keras shares one initializer object across layers; the weights are loaded from a checkpoint anyway.
warnings.filterwarnings("ignore", message="The initializer TruncatedNormal is unseeded")


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow, and make TensorFlow's ops deterministic: the same params and
    seed on the same machine give the same weights and metrics."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def random_generators(model) -> dict[str, "tf.random.Generator"]:
    """The random generator of every layer of ``model`` that draws random numbers, keyed by the layer's
    position (the same keys in every process that builds the same model; automatic layer names are not)."""
    found = {}
    for i, layer in enumerate(model._flatten_layers(include_self=False, recursive=True)):
        rng = getattr(layer, "_random_generator", None)
        if rng is not None:
            rng._maybe_init()  # generators are created lazily; a restore must find them all
            if getattr(rng, "_generator", None) is not None:
                found[f"layer-{i}"] = rng._generator
    return found


def set_precision(precision: str) -> tuple[str, str]:
    """Select the Keras dtype policy for 'auto', 'float32', 'mixed_bfloat16' or 'mixed_float16' on this
    machine (:func:`pipeline.runtime.precision.resolve_precision`); return the policy and why. Under
    ``mixed_float16`` ``model.compile`` wraps the optimizer in Keras's loss scaling."""
    from pipeline.runtime.precision import gpu_capability, resolve_precision

    policy, reason = resolve_precision(precision, gpu=gpu_capability())
    keras.mixed_precision.set_global_policy(policy)
    return policy, reason

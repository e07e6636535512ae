"""The one place TensorFlow is imported and patched for bert4keras.

Import this module (``from pipeline.tf_runtime import tf, keras``) before anything
imports bert4keras: bert4keras's optimizers subclass the pre-2.11 ``OptimizerV2``,
so ``tf.keras.optimizers.Optimizer`` must point at the legacy class first.
"""

import warnings

import pipeline  # noqa: F401  (sets TF_KERAS / TF_USE_LEGACY_KERAS before TensorFlow loads)

import tensorflow as tf

keras = tf.keras
keras.optimizers.Optimizer = keras.optimizers.legacy.Optimizer

# bert4keras shares one initializer object across layers; the weights are loaded from a checkpoint anyway.
warnings.filterwarnings("ignore", message="The initializer TruncatedNormal is unseeded")


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow, and make TensorFlow's ops deterministic: the same params and
    seed on the same machine give the same weights and metrics."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def set_precision(precision: str) -> None:
    """Select the Keras dtype policy ('float32' or 'mixed_bfloat16')."""
    keras.mixed_precision.set_global_policy(precision)

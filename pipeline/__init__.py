"""Declarative fine-tuning of BERT-family models with bert4keras, run by DVC and recorded in MLflow.

Importing the package never imports TensorFlow; it only sets the environment variables
bert4keras needs, so that configuration errors are reported in well under a second.
Modules that need TensorFlow import :mod:`pipeline.runtime.tf_runtime` first.
"""

import os

# bert4keras on TF 2.16+ needs both: TF_KERAS selects tf.keras inside bert4keras,
# TF_USE_LEGACY_KERAS makes tf.keras resolve to tf-keras (Keras 2) instead of Keras 3.
os.environ.setdefault("TF_KERAS", "1")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

"""The masked-LM model: a bert4keras backbone with BERT's MLM head, scored on the masked positions only.

bert4keras's ``with_mlm`` model predicts every position (batch x length x vocabulary); continued
pretraining only needs the ~15% masked ones, so the top layer's states are gathered at those positions
first and the head (``MLM-Dense`` -> ``MLM-Norm`` -> tied ``Embedding-Token`` -> ``MLM-Bias``) runs on them
alone: about a seventh of the head's work. Weights load from a Google checkpoint by bert4keras's own
variable mapping; a checkpoint without the head (all-MiniLM-L6-v2 ships the encoder only) starts the head
fresh, and :func:`build_mlm_model` says so. :func:`checkpoint_arrays` gives the trained weights back under
the same Google names, to be written as a backbone in the format every other backbone has.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config.errors import ConfigError
from pipeline.runtime.tf_runtime import keras, tf

from bert4keras.models import build_transformer_model  # noqa: E402  (after tf_runtime's patch)

#: the layers of the MLM head in bert4keras's variable mapping
HEAD_LAYERS = ("MLM-Dense", "MLM-Norm", "MLM-Bias")
#: no weight decay for LayerNorm gains and biases, the output bias (``MLM-Bias/beta``) included, as Google's
NO_DECAY = ("Norm", "bias", "MLM-Bias")


def checkpoint_names(checkpoint: Path) -> set[str]:
    """The variable names a TF checkpoint holds."""
    return {name for name, _ in tf.train.list_variables(str(checkpoint))}


def build_mlm_model(config_path: Path, checkpoint: Path, model_type: str = "bert") -> tuple[Any, Any, list[str]]:
    """``(keras model, bert4keras backbone, head layers started fresh)``.

    The model takes ``token_ids, segment_ids, positions`` and returns the logits over the vocabulary at
    ``positions`` (batch x positions x vocabulary, float32). Only the MLM head may be missing from the
    checkpoint; any other missing variable is an error."""
    bert = build_transformer_model(config_path=str(config_path), checkpoint_path=None, model=model_type,
                                   with_mlm="linear", return_keras_model=False)
    available = checkpoint_names(checkpoint)
    mapping = bert.variable_mapping()
    mapping = {layer: names for layer, names in mapping.items() if layer in bert.layers}
    fresh = [layer for layer, names in mapping.items() if not all(name in available for name in names)]
    missing = [layer for layer in fresh if layer not in HEAD_LAYERS]
    if missing:
        raise ConfigError(f"the checkpoint {checkpoint.name} of {checkpoint.parent.name} lacks the weights of "
                          f"{', '.join(missing)}: it is not a complete BERT checkpoint")
    bert.load_weights_from_checkpoint(str(checkpoint), mapping={k: v for k, v in mapping.items() if k not in fresh})

    top = bert.layers[f"Transformer-{bert.num_hidden_layers - 1}-FeedForward-Norm"].output
    positions = keras.layers.Input(shape=(None,), dtype="int32", name="Input-Positions")
    states = keras.layers.Lambda(lambda args: tf.gather(args[0], args[1], batch_dims=1), name="MLM-Gather")(
        [top, positions])
    states = bert.layers["MLM-Norm"](bert.layers["MLM-Dense"](states))
    logits = bert.layers["MLM-Bias"](bert.layers["Embedding-Token"](states, mode="dense"))
    logits = keras.layers.Activation("linear", dtype="float32", name="MLM-Logits")(logits)
    model = keras.Model([*bert.model.inputs[:2], positions], logits)
    return model, bert, fresh


def checkpoint_arrays(bert: Any) -> dict[str, np.ndarray]:
    """Every weight of the backbone and its MLM head under its Google checkpoint name (float32)."""
    arrays = {}
    for layer, names in bert.variable_mapping().items():
        if layer in bert.layers:
            for weight, name in zip(bert.layers[layer].trainable_weights, names):
                arrays[name] = np.asarray(weight.numpy(), dtype=np.float32)
    return arrays


def masked_lm_loss(logits: Any, targets: Any, weights: Any) -> tuple[Any, Any]:
    """Mean cross-entropy and accuracy over the real (weight 1) masked positions."""
    losses = keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True)
    count = tf.maximum(tf.reduce_sum(weights), 1.0)
    correct = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), targets), tf.float32)
    return tf.reduce_sum(losses * weights) / count, tf.reduce_sum(correct * weights) / count

"""Adversarial training on the token embeddings (``adversarial: {method: fgm, epsilon: e}``).

FGM (Miyato et al., 2017), as bert4keras's adversarial-training example does it: each step computes the
gradients at the inputs, adds ``e * g / ||g||`` to the token embedding matrix (``g``: the loss's gradient
with respect to it), computes the gradients again at the perturbed embeddings, removes the perturbation
and applies the sum of both gradients. The logged training loss is the clean one. Under
``mixed_float16`` both gradients are taken of the loss scaled by Keras's ``LossScaleOptimizer`` and
unscaled before use, as its own ``minimize`` does (float16 gradients would underflow otherwise).
"""

from __future__ import annotations

from typing import Any, Callable

from pipeline.runtime.tf_runtime import keras, tf

TOKEN_EMBEDDING = "Embedding-Token"


def _add(first: Any, second: Any) -> Any:
    if first is None:
        return second
    if second is None:
        return first
    return tf.convert_to_tensor(first) + tf.convert_to_tensor(second)


def fgm_train_step(model: Any, epsilon: float) -> Callable[[Any], dict]:
    """A replacement for ``model.train_step`` that trains on clean and FGM-perturbed embeddings."""
    embeddings = model.get_layer(TOKEN_EMBEDDING).embeddings
    optimizer = model.optimizer
    scaling = isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer)

    def scaled(loss: Any) -> Any:
        return optimizer.get_scaled_loss(loss) if scaling else loss

    def unscaled(grads: list) -> list:
        return optimizer.get_unscaled_gradients(grads) if scaling else grads

    def train_step(data: Any) -> dict:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        variables = model.trainable_variables
        with tf.GradientTape() as tape:
            tape.watch(embeddings)
            y_pred = model(x, training=True)
            loss = model.compute_loss(x, y, y_pred, sample_weight)
            objective = scaled(loss)
        *grads, embedding_grad = unscaled(tape.gradient(objective, [*variables, embeddings]))
        embedding_grad = tf.convert_to_tensor(embedding_grad)
        delta = epsilon * embedding_grad / (tf.norm(embedding_grad) + 1e-8)
        # the running means of the loss (total and per output) that compute_loss updates (built by its first call)
        trackers = [variable for metric in model.compiled_loss.metrics for variable in metric.variables]
        kept = [tf.identity(variable) for variable in trackers]
        clean = tf.identity(embeddings)  # put back exactly (e + d - d is not always e in floating point)
        embeddings.assign_add(delta)
        with tf.GradientTape() as tape:
            adversarial_loss = scaled(model.compute_loss(x, y, model(x, training=True), sample_weight))
        adversarial_grads = unscaled(tape.gradient(adversarial_loss, variables))
        embeddings.assign(clean)
        for variable, value in zip(trackers, kept):
            variable.assign(value)  # the running training loss counts the clean loss only
        model.optimizer.apply_gradients(zip([_add(a, b) for a, b in zip(grads, adversarial_grads)], variables))
        return model.compute_metrics(x, y, y_pred, sample_weight)

    return train_step

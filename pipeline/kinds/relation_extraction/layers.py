"""Keras layers of the relation-extraction head: subject sampling, subject conditioning, pointer loss.

Imported only when a relation-extraction model is built (it imports TensorFlow).
"""

from __future__ import annotations

from pipeline.runtime.tf_runtime import keras, tf


def pointer_label_tensor(spans, selected, length, kinds: int):
    """``(batch, length, kinds, 2)`` float32 pointer labels: 1 at ``[b, start, kind, 0]`` and ``[b, end, kind, 1]``.

    ``spans`` is ``(batch, n, 3)`` int ``(kind, start, end)`` (end inclusive), ``selected`` a
    ``(batch, n)`` bool mask of the rows to mark; the others (padding) change nothing.
    The in-graph twin of :func:`pipeline.kinds.relation_extraction.pointers.pointer_labels`.
    """
    spans = tf.cast(spans, tf.int32)
    batch, rows = tf.shape(spans)[0], tf.shape(spans)[1]
    example = tf.tile(tf.range(batch)[:, None], [1, rows])
    kind, start, end = spans[..., 0], spans[..., 1], spans[..., 2]
    channel = tf.zeros_like(kind)
    indices = tf.stack(
        [tf.stack([example, start, kind, channel], -1), tf.stack([example, end, kind, channel + 1], -1)], 0
    )
    updates = tf.cast(tf.stack([selected, selected], 0), tf.float32)
    labels = tf.zeros(tf.stack([batch, length, kinds, 2]), tf.float32)
    return tf.tensor_scatter_nd_max(labels, tf.reshape(indices, [-1, 4]), tf.reshape(updates, [-1]))


@keras.utils.register_keras_serializable(package="pipeline")
class SampleSubject(keras.__internal__.layers.BaseRandomLayer):
    """Picks one gold subject per example: uniformly at random at every training step, the first otherwise.

    Input: ``(batch, n, 2)`` subject token spans, real ones first, padding rows ``(0, 0)`` after
    (an example without subjects has one padding row, i.e. the ``[CLS]`` position).
    Outputs: the chosen row ``(batch,)`` and its span ``(batch, 2)``. The draws come from the layer's
    random generator, whose state a training checkpoint saves (an exact resume).
    """

    def call(self, spans, training=None):
        spans = tf.cast(spans, tf.int32)
        count = tf.reduce_sum(tf.cast(spans[..., 1] > 0, tf.int32), axis=1)
        first = tf.zeros_like(count)

        def sampled():
            draw = self._random_generator.random_uniform(tf.shape(count)) * tf.cast(count, tf.float32)
            return tf.minimum(tf.cast(draw, tf.int32), tf.maximum(count - 1, 0))

        index = keras.backend.in_train_phase(sampled, first, training=training)
        return [index, tf.gather(spans, index, axis=1, batch_dims=1)]


@keras.utils.register_keras_serializable(package="pipeline")
class AddSpanMean(keras.layers.Layer):
    """``hidden + mean(hidden[start], hidden[end])`` at every position: the sequence conditioned on a span.

    Inputs: ``hidden`` (batch, length, dim) and ``span`` (batch, 2) token indices ``[start, end]``.
    The span vector, added at all ``length`` positions, would receive the SUM of their gradients:
    it gets their mean instead (the forward value is unchanged). With the sum, the object loss
    flowing into the two subject tokens dominated the encoder's updates and collapsed the weakly
    pretrained Chinese encoder to one vector at every position.
    """

    def call(self, inputs):
        hidden, span = inputs
        span = tf.cast(span, tf.int32)
        start = tf.gather(hidden, span[:, 0], axis=1, batch_dims=1)
        end = tf.gather(hidden, span[:, 1], axis=1, batch_dims=1)
        vector = (start + end) / 2
        length = tf.cast(tf.shape(hidden)[1], vector.dtype)
        vector = tf.stop_gradient(vector) + (vector - tf.stop_gradient(vector)) / length
        return hidden + vector[:, None, :]

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.utils.register_keras_serializable(package="pipeline")
class Power(keras.layers.Layer):
    """``x ** exponent``: sharpens sigmoid pointer probabilities (the bert4keras example squares
    subject and raises object probabilities to the 4th power against the rarity of positives)."""

    def __init__(self, exponent: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.exponent = exponent

    def call(self, inputs):
        return inputs**self.exponent

    def get_config(self) -> dict:
        return {**super().get_config(), "exponent": self.exponent}


@keras.utils.register_keras_serializable(package="pipeline")
class PointerLoss(keras.layers.Layer):
    """Adds the binary cross-entropy of subject and object pointers, averaged over non-padding tokens.

    Inputs: ``token_ids`` (padding is id 0), every subject span (b, S, 2), every triple as
    ``(subject row, predicate, object start, object end)`` (b, T, 4) (padding rows end at 0), the
    chosen subject row (b,), subject probabilities (b, L, 2) and object probabilities (b, L, P, 2)
    for the chosen subject. The labels are built here; the probabilities are returned unchanged
    and the loss goes to ``add_loss`` (the model is compiled without one). Per token, the subject
    loss is the mean over start/end and the object loss the sum over predicates of that mean (as in
    the bert4keras example).
    """

    def call(self, inputs):
        token_ids, subject_spans, object_spans, chosen, subject_probs, object_probs = inputs
        length = tf.shape(token_ids)[1]
        subject_spans, object_spans = tf.cast(subject_spans, tf.int32), tf.cast(object_spans, tf.int32)
        subjects = tf.concat([tf.zeros_like(subject_spans[..., :1]), subject_spans], -1)
        subject_labels = pointer_label_tensor(subjects, subject_spans[..., 1] > 0, length, 1)[:, :, 0]
        mine = (object_spans[..., 0] == tf.cast(chosen, tf.int32)[:, None]) & (object_spans[..., 3] > 0)
        object_labels = pointer_label_tensor(object_spans[..., 1:], mine, length, object_probs.shape[2])

        mask = tf.cast(tf.not_equal(token_ids, 0), tf.float32)
        subject_loss = keras.backend.binary_crossentropy(subject_labels, tf.cast(subject_probs, tf.float32))
        object_loss = keras.backend.binary_crossentropy(object_labels, tf.cast(object_probs, tf.float32))
        per_token = tf.reduce_mean(subject_loss, -1) + tf.reduce_sum(tf.reduce_mean(object_loss, -1), -1)
        self.add_loss(tf.reduce_sum(per_token * mask) / tf.maximum(tf.reduce_sum(mask), 1.0))
        return [tf.identity(subject_probs), tf.identity(object_probs)]

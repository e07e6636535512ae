"""Small Keras layers used by heads: registered classes, so saved models reload without Lambdas."""

from __future__ import annotations

from pipeline.runtime.tf_runtime import keras


@keras.utils.register_keras_serializable(package="pipeline")
class TokenAt(keras.layers.Layer):
    """The vector at one sequence position, e.g. ``[CLS]`` (index 0) of a transformer output."""

    def __init__(self, index: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.index = index

    def call(self, inputs):
        return inputs[:, self.index]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self) -> dict:
        return {**super().get_config(), "index": self.index}

"""What of the backbone trains: full fine-tuning, a frozen feature extractor (with the BERT paper's
feature-based head), only the top layers, gradual unfreezing, and each layer's depth for layer-wise
learning rates.

bert4keras names its layers ``Embedding-*`` and ``Transformer-<i>-*`` (``i`` from 0 at the bottom); the
head's layers have other names. A layer's *depth* counts from the top: the top transformer layer has
depth 0, layer ``i`` of ``n`` has ``n - 1 - i`` and the embeddings ``n``; head layers have none.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from pipeline.config.finetuning import BackboneTraining, FeatureHead, TopLayers
from pipeline.runtime.tf_runtime import keras

logger = logging.getLogger(__name__)

_TRANSFORMER = re.compile(r"^Transformer-(\d+)-")
_EMBEDDING = "Embedding-"


def depth_of(name: str, num_layers: int) -> int | None:
    """The depth below the top of the backbone layer (or variable) called ``name``; None for the head."""
    match = _TRANSFORMER.match(name)
    if match:
        return num_layers - 1 - int(match.group(1))
    if name.startswith(_EMBEDDING):
        return num_layers
    return None


def count_backbone_layers(model: Any) -> int:
    """The number of transformer layers in ``model``'s backbone (from its layer names)."""
    indices = [int(match.group(1)) for layer in model.layers if (match := _TRANSFORMER.match(layer.name))]
    return max(indices) + 1 if indices else 0


def backbone_layers(model: Any, num_layers: int) -> list[Any]:
    """The model's layers that belong to the backbone (embeddings and transformer layers)."""
    return [layer for layer in model.layers if depth_of(layer.name, num_layers) is not None]


def frozen_depth(training: BackboneTraining, num_layers: int) -> int | None:
    """Layers at this depth or deeper are frozen (None: nothing is)."""
    if training == "full":
        return None
    if training == "frozen":
        return 0
    assert isinstance(training, TopLayers)
    return training.top_layers


def apply_backbone_training(model: Any, training: BackboneTraining, num_layers: int) -> int:
    """Freeze the backbone layers ``training`` asks for (before ``compile``); the number frozen."""
    limit = frozen_depth(training, num_layers)
    if limit is None:
        return 0
    frozen = [layer for layer in backbone_layers(model, num_layers) if depth_of(layer.name, num_layers) >= limit]
    for layer in frozen:
        layer.trainable = False
    return len(frozen)


def set_backbone_trainable(model: Any, num_layers: int, trainable: bool) -> None:
    """Freeze or unfreeze every backbone layer (gradual unfreezing)."""
    for layer in backbone_layers(model, num_layers):
        layer.trainable = trainable


def backbone_is_trainable(model: Any, num_layers: int) -> bool:
    return any(layer.trainable for layer in backbone_layers(model, num_layers))


def hidden_states(backbone: Any, count: int) -> list[Any]:
    """The outputs of the backbone's last ``count`` transformer layers, bottom first."""
    num_layers = backbone.num_hidden_layers
    if count > num_layers:
        from pipeline.config.errors import ConfigError

        raise ConfigError(f"features.last_layers: {count} is more than the backbone's {num_layers} layers; "
                          f"hint: use at most {num_layers}")
    names = [f"Transformer-{index}-FeedForward-Norm" for index in range(num_layers - count, num_layers)]
    return [backbone.model.get_layer(name).output for name in names]


def feature_output(backbone: Any, features: FeatureHead) -> Any:
    """The feature-based representation per token: the last layers summed or concatenated, then a BiLSTM
    when ``features.bilstm_units`` is set (the padding mask flows through both)."""
    states = hidden_states(backbone, features.last_layers)
    if len(states) == 1:
        combined = states[0]
    elif features.combine == "sum":
        combined = keras.layers.Add(name="Features-sum")(states)
    else:
        combined = keras.layers.Concatenate(name="Features-concat")(states)
    if features.bilstm_units:
        lstm = keras.layers.LSTM(features.bilstm_units, return_sequences=True)
        combined = keras.layers.Bidirectional(lstm, name="Features-BiLSTM")(combined)
    return combined


class FeatureBackbone:
    """A bert4keras backbone as a kind's head sees it, with ``model.output`` replaced by features: kinds
    build on ``backbone.model.inputs``/``.output`` and need no change for the feature-based approach."""

    def __init__(self, backbone: Any, features: FeatureHead) -> None:
        self._backbone = backbone
        self.model = keras.Model(backbone.model.inputs, feature_output(backbone, features), name="feature_backbone")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backbone, name)


class GradualUnfreezing(keras.callbacks.Callback):
    """Trains the head alone for ``after_epochs`` epochs, then the whole model (the training loop traces
    a new step for the larger set of trainable variables at the next epoch)."""

    def __init__(self, after_epochs: int, num_layers: int) -> None:
        super().__init__()
        self.after_epochs, self.num_layers = after_epochs, num_layers

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch + 1 == self.after_epochs:
            set_backbone_trainable(self.model, self.num_layers, True)
            logger.info(f"epoch {epoch + 1}: the backbone is unfrozen; every layer trains from now on")

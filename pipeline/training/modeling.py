"""Building a task model on a bert4keras backbone, and predicting with it in length-sorted batches."""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from pipeline.runtime.tf_runtime import tf

from bert4keras.models import build_transformer_model  # noqa: E402  (after tf_runtime's patch)

from pipeline.config.schema import TaskConfig  # noqa: E402
from pipeline.training.batching import INPUT_KEYS, Features, bucketed_batches, collate  # noqa: E402

if TYPE_CHECKING:
    from pipeline.kinds.common.base import TaskKind


def build_task_model(
    kind: TaskKind, config_path: Path, checkpoint: Path | None, model_type: str, labels: list[str], cfg: TaskConfig
) -> Any:
    """The backbone (pretrained weights from ``checkpoint`` when given) with the kind's head, its layers
    frozen as ``cfg.backbone_training`` (and ``unfreeze_after_epochs``) say.

    A frozen backbone computes features without dropout; with ``cfg.features`` the kind's head reads the
    feature-based representation (last layers combined, optionally a BiLSTM) instead of the top layer.
    """
    from pipeline.training.backbone_training import FeatureBackbone, apply_backbone_training, set_backbone_trainable

    frozen = cfg.backbone_training == "frozen"
    backbone = build_transformer_model(
        config_path=str(config_path),
        checkpoint_path=str(checkpoint) if checkpoint else None,
        model=model_type,
        return_keras_model=False,
        **({"dropout_rate": 0.0, "attention_dropout_rate": 0.0} if frozen else {}),
    )
    model = kind.build_model(FeatureBackbone(backbone, cfg.features) if cfg.features else backbone, labels, cfg)
    apply_backbone_training(model, cfg.backbone_training, backbone.num_hidden_layers)
    if cfg.unfreeze_after_epochs:
        set_backbone_trainable(model, backbone.num_hidden_layers, False)
    return model


class Predictor:
    """Calls a Keras model through one traced function with dynamic batch and sequence length.

    ``model.predict_on_batch`` sometimes runs on a single core; a ``tf.function`` with a
    relaxed input signature uses both and is traced only once.
    """

    def __init__(self, model: Any, n_inputs: int = 2) -> None:
        spec = tf.TensorSpec(shape=(None, None), dtype=tf.int32)  # (batch, sequence), both dynamic
        self._call = tf.function(lambda *inputs: model(list(inputs), training=False), input_signature=[spec] * n_inputs)

    def outputs(self, features: Sequence[Features], batch_size: int, input_keys: Sequence[str] = INPUT_KEYS):
        """Yield ``(indices, outputs)`` per batch; batches are sorted by length to cut padding."""
        lengths = [len(f["token_ids"]) for f in features]
        for batch in bucketed_batches(lengths, batch_size, rng=None):
            inputs, _ = collate([features[i] for i in batch], input_keys, with_targets=False)
            result = self._call(*inputs)
            yield batch, tf.nest.map_structure(lambda t: np.asarray(t, dtype=np.float32), result)


_PREDICTORS: "weakref.WeakKeyDictionary[Any, Predictor]" = weakref.WeakKeyDictionary()


def predictor_for(model: Any, n_inputs: int = 2) -> Predictor:
    """The model's predictor, traced once and reused (e.g. after every epoch)."""
    if model not in _PREDICTORS:
        _PREDICTORS[model] = Predictor(model, n_inputs)
    return _PREDICTORS[model]

"""The fine-tuning technique options of a task (TF-free): what of the backbone trains, and how.

``backbone_training`` (full | frozen | {top_layers: N}), ``features`` (the feature-based head of a frozen
backbone), ``unfreeze_after_epochs``, ``layerwise_lr_decay``, ``ema``, ``adversarial`` and
``tokenizer.extend_vocab``. :func:`technique_problems` lists the combinations that make no sense, each
as ``(key, message)``, so the task's validator reports them one line per key.
"""

from __future__ import annotations

from typing import Literal, Union

from pydantic import Field

from pipeline.config.strict_model import StrictModel


class TopLayers(StrictModel):
    """Freeze the embeddings and every transformer layer but the top ``top_layers``."""

    top_layers: int = Field(ge=1)


BackboneTraining = Union[Literal["full", "frozen"], TopLayers]


class FeatureHead(StrictModel):
    """The BERT paper's feature-based approach: the frozen backbone's last ``last_layers`` hidden states,
    summed or concatenated per token, optionally through a BiLSTM, feed the kind's own head."""

    last_layers: int = Field(default=4, ge=1)
    combine: Literal["sum", "concat"] = "concat"
    #: units per direction of a bidirectional LSTM over the combined features (0: none)
    bilstm_units: int = Field(default=0, ge=0, le=4096)


class WeightAveraging(StrictModel):
    """An exponential moving average of the weights: ``avg = decay * avg + (1 - decay) * w`` after every
    step; dev evaluation, the saved model and prediction use the averaged weights."""

    decay: float = Field(gt=0, lt=1)


class Adversarial(StrictModel):
    """Adversarial training on the token embeddings: each step adds the loss at embeddings perturbed by
    ``epsilon`` along the normalised gradient (FGM, Miyato et al. 2017; bert4keras's example)."""

    method: Literal["fgm"]
    epsilon: float = Field(gt=0, le=100)


class ExtendVocab(StrictModel):
    """Map characters (zh) or words (en) seen at least ``min_count`` times in the training split and
    missing from the vocabulary onto free ``[unusedN]`` slots, at most ``max_new`` of them."""

    min_count: int = Field(ge=1)
    max_new: int = Field(ge=1)


class TokenizerOptions(StrictModel):
    """``tokenizer:`` options of a task."""

    extend_vocab: ExtendVocab | None = None


def technique_problems(
    backbone_training: BackboneTraining,
    features: FeatureHead | None,
    unfreeze_after_epochs: int | None,
    layerwise_lr_decay: float | None,
    epochs: int,
) -> list[tuple[str, str]]:
    """``(key, message)`` for each option that makes no sense with the others."""
    problems = []
    if features is not None and backbone_training != "frozen":
        problems.append(("features", "a feature-based head reads a frozen backbone; hint: set "
                                     "'backbone_training: frozen', or remove 'features'"))
    if unfreeze_after_epochs is not None:
        if backbone_training != "full":
            problems.append(("unfreeze_after_epochs", f"unfreezes the whole backbone, which contradicts "
                                                      f"backbone_training {_shown(backbone_training)}; hint: "
                                                      "use 'backbone_training: full' with it"))
        elif unfreeze_after_epochs >= epochs:
            problems.append(("unfreeze_after_epochs", f"{unfreeze_after_epochs} is not below epochs ({epochs}): "
                                                      "the backbone would never train; hint: lower it or raise epochs"))
    if layerwise_lr_decay is not None and backbone_training == "frozen":
        problems.append(("layerwise_lr_decay", "a frozen backbone has no layers to give learning rates; hint: "
                                               "remove it, or use 'backbone_training: full' or '{top_layers: N}'"))
    return problems


def _shown(value: BackboneTraining) -> str:
    return f"'{value}'" if isinstance(value, str) else f"{{top_layers: {value.top_layers}}}"

"""The contract every task kind fulfils; batching, training, tracking and reporting are shared.

A kind supplies only what differs between tasks (bert4keras's template-method style):
how a record becomes features, the head on top of the backbone, how outputs decode
into predictions, and how predictions are scored. Kinds are registered in
:data:`pipeline.kinds.REGISTRY`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.config.schema import TaskConfig
from pipeline.text.tokenization import TextTokenizer
from pipeline.training.batching import Features



class TaskKind(ABC):
    """A family of tasks sharing features, head, decoding and metrics."""

    #: the dev metric that picks the best checkpoint (a key of :meth:`score`'s result)
    primary_metric: str
    #: feature keys fed to the model, in order, when training and when predicting
    train_inputs: tuple[str, ...] = ("token_ids", "segment_ids")
    predict_inputs: tuple[str, ...] = ("token_ids", "segment_ids")

    def __init__(self, options: Any) -> None:
        #: the task's typed head options (``tasks.<task>.head``, the kind package's ``Options``)
        self.options = options

    @abstractmethod
    def label_space(self, train: Sequence[dict], cfg: TaskConfig) -> list[str]:
        """The ordered output labels, learnt from the training records."""

    @abstractmethod
    def encode(self, record: dict, tokenizer: TextTokenizer, labels: list[str], maxlen: int) -> Features:
        """Turn a canonical record into model features (with its target when labelled)."""

    @abstractmethod
    def build_model(self, backbone: Any, labels: list[str], cfg: TaskConfig) -> Any:
        """Put the head on a bert4keras model; return an uncompiled Keras model."""

    @abstractmethod
    def loss(self, model: Any) -> Any:
        """The Keras loss for ``model`` (built by :meth:`build_model`); None if the model adds its own."""

    @abstractmethod
    def decode(
        self, outputs: np.ndarray, records: Sequence[dict], labels: list[str], features: Sequence[Features] | None = None
    ) -> list[dict]:
        """Model outputs of a batch to predictions (one dict per record)."""

    @abstractmethod
    def score(self, records: Sequence[dict], predictions: Sequence[dict], labels: list[str]) -> dict[str, float]:
        """Headline metrics (flat, numeric) of predictions against gold records."""

    def detailed_scores(
        self, records: Sequence[dict], predictions: Sequence[dict], labels: list[str]
    ) -> dict[str, float]:
        """Finer metrics for the test report and MLflow (per type, per predicate...); flat, numeric."""
        return {}

    @abstractmethod
    def baseline(self, train: Sequence[dict], records: Sequence[dict], labels: list[str]) -> dict[str, float]:
        """The same metrics for a trivial predictor (majority class, O everywhere, ...)."""

    @abstractmethod
    def write_reports(
        self, records: Sequence[dict], predictions: Sequence[dict], labels: list[str], out_dir: Path
    ) -> list[Path]:
        """Detailed reports (per-class tables, plots) into ``out_dir``; return the files written."""

    @abstractmethod
    def mistakes(
        self, records: Sequence[dict], predictions: Sequence[dict], labels: list[str], limit: int = 25
    ) -> list[dict]:
        """The ``limit`` worst errors, worst first: one :func:`pipeline.reporting.mistake` row each (record
        id, input fields, gold, predicted and a short ``why``); correct predictions are left out."""

    def write_model_reports(
        self,
        model: Any,
        tokenizer: TextTokenizer,
        records: Sequence[dict],
        predictions: Sequence[dict],
        labels: list[str],
        maxlen: int,
        out_dir: Path,
    ) -> list[Path]:
        """Reports that need the trained model itself (e.g. saliency maps) into ``out_dir``; the files
        written. None by default."""
        return []

    def selection_metric(self, cfg: TaskConfig) -> str:
        """The dev metric (a key of :meth:`score`) that picks the saved epoch."""
        return self.primary_metric

    def class_weight(self, train_features: Sequence[Features], labels: list[str], cfg: TaskConfig) -> dict | None:
        """Keras ``class_weight`` for training (None: every example counts the same)."""
        return None

    def input_columns(self, cfg: TaskConfig) -> tuple[str, ...]:
        """The raw input fields a prediction needs (the columns of a served model's input)."""
        return ("text",)

    def record_from_input(self, row: dict, cfg: TaskConfig) -> dict:
        """A canonical, unlabelled record from one raw input row (fields of :meth:`input_columns`)."""
        return {column: row[column] for column in self.input_columns(cfg)}

    def public_output(self, prediction: dict) -> dict:
        """What a served model returns for one prediction (internal bookkeeping left out)."""
        return prediction

    def decode_context(self, model: Any) -> dict[str, Any]:
        """Extra keyword arguments :meth:`decode` takes from the trained model (CRF transitions, options)."""
        return {}

    def predict(
        self, model: Any, records: Sequence[dict], features: Sequence[Features], labels: list[str], batch_size: int
    ) -> list[dict]:
        """Predictions for ``records`` in their order: one traced model call per length-sorted batch,
        decoded with the batch's records and features and :meth:`decode_context`.

        Kinds whose decoding needs more than one model call (relation extraction) override this.
        """
        from pipeline.training.modeling import predictor_for

        context = self.decode_context(model)
        predictions: list[dict | None] = [None] * len(records)
        for batch, outputs in predictor_for(model, len(self.predict_inputs)).outputs(
            features, batch_size, self.predict_inputs
        ):
            decoded = self.decode(outputs, [records[i] for i in batch], labels, [features[i] for i in batch], **context)
            for index, prediction in zip(batch, decoded):
                predictions[index] = prediction
        return predictions  # type: ignore[return-value]

"""The contract every task kind fulfils; batching, training, tracking and reporting are shared.

A kind supplies only what differs between tasks (bert4keras's template-method style):
how a record becomes features, the head on top of the backbone, how outputs decode
into predictions, and how predictions are scored. Kinds are registered in
:data:`pipeline.kinds.KIND_MODULES`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.config import TaskConfig
from pipeline.tokenization import TextTokenizer

Features = dict[str, Any]
"""One encoded example: ``token_ids`` and ``segment_ids`` (lists) plus the kind's ``target``."""


class TaskKind(ABC):
    """A family of tasks sharing features, head, decoding and metrics."""

    #: the dev metric that picks the best checkpoint (a key of :meth:`score`'s result)
    primary_metric: str

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
    def loss(self) -> Any:
        """The Keras loss for :meth:`build_model`'s output."""

    @abstractmethod
    def decode(self, outputs: np.ndarray, records: Sequence[dict], labels: list[str]) -> list[dict]:
        """Model outputs of a batch to predictions (one dict per record)."""

    @abstractmethod
    def score(self, records: Sequence[dict], predictions: Sequence[dict], labels: list[str]) -> dict[str, float]:
        """Headline metrics (flat, numeric) of predictions against gold records."""

    @abstractmethod
    def baseline(self, train: Sequence[dict], records: Sequence[dict], labels: list[str]) -> dict[str, float]:
        """The same metrics for a trivial predictor (majority class, O everywhere, ...)."""

    @abstractmethod
    def write_reports(
        self, records: Sequence[dict], predictions: Sequence[dict], labels: list[str], out_dir: Path
    ) -> list[Path]:
        """Detailed reports (per-class tables, plots) into ``out_dir``; return the files written."""

    def target_of(self, features: Features) -> Any:
        """The training target stored in ``features`` (override for several targets)."""
        return features["target"]

"""A toy task kind in one module, for the test that adding a kind needs one module and one registry line:
``flag`` (yes/no) per text, from the [CLS] vector through one sigmoid unit."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from pydantic import Field

from pipeline.config.strict_model import StrictModel
from pipeline.kinds.common.base import Features, TaskKind
from pipeline.text.tokenization import TextTokenizer

LABELS = ["no", "yes"]


class Options(StrictModel):
    """``head:`` the probability above which a text is flagged."""

    threshold: float = Field(default=0.5, gt=0, lt=1)


class Kind(TaskKind):
    """yes/no per text."""

    primary_metric = "accuracy"

    def label_space(self, train: Sequence[dict], cfg: Any) -> list[str]:
        return LABELS

    def encode(self, record: dict, tokenizer: TextTokenizer, labels: list[str], maxlen: int) -> Features:
        encoding = tokenizer.encode(record["text"], maxlen=maxlen)
        features: Features = {"token_ids": encoding.token_ids, "segment_ids": encoding.segment_ids}
        if "flag" in record:
            features["target"] = float(record["flag"] == "yes")
        return features

    def build_model(self, backbone: Any, labels: list[str], cfg: Any) -> Any:
        from pipeline.kinds.common.layers import TokenAt
        from pipeline.runtime.tf_runtime import keras

        cls_vector = TokenAt(0, name="CLS-vector")(backbone.model.output)
        prob = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="flag-prob")(cls_vector)
        return keras.Model(backbone.model.inputs, prob, name="toy_flagger")

    def loss(self, model: Any) -> Any:
        return "binary_crossentropy"

    def decode(self, outputs: np.ndarray, records: Sequence[dict], labels: list[str],
               features: Sequence[Features] | None = None) -> list[dict]:
        return [{"flag": "yes" if p > self.options.threshold else "no"} for p in np.asarray(outputs).reshape(-1)]

    def score(self, records: Sequence[dict], predictions: Sequence[dict], labels: list[str]) -> dict[str, float]:
        right = sum(r["flag"] == p["flag"] for r, p in zip(records, predictions))
        return {"accuracy": right / len(records) if records else 0.0}

    def baseline(self, train: Sequence[dict], records: Sequence[dict], labels: list[str]) -> dict[str, float]:
        majority = max(LABELS, key=[r["flag"] for r in train].count)
        return self.score(records, [{"flag": majority}] * len(records), labels)

    def write_reports(self, records: Sequence[dict], predictions: Sequence[dict], labels: list[str],
                      out_dir: Path) -> list[Path]:
        return []

    def mistakes(self, records: Sequence[dict], predictions: Sequence[dict], labels: list[str],
                 limit: int = 25) -> list[dict]:
        return []

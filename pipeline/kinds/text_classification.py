"""Text and sentence-pair classification: the ``[CLS]`` vector, dropout and a softmax layer."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

from pipeline.config import TaskConfig
from pipeline.kinds.base import Features, TaskKind
from pipeline.reporting import plot_confusion, write_json
from pipeline.tokenization import TextTokenizer


class TextClassification(TaskKind):
    """One label per text (or per text pair, joined as ``[CLS] a [SEP] b [SEP]``)."""

    primary_metric = "accuracy"

    def label_space(self, train: Sequence[dict], cfg: TaskConfig) -> list[str]:
        return sorted({record["label"] for record in train}, key=_natural)

    def encode(self, record: dict, tokenizer: TextTokenizer, labels: list[str], maxlen: int) -> Features:
        encoding = tokenizer.encode(record["text"], record.get("text_b"), maxlen=maxlen)
        features: Features = {"token_ids": encoding.token_ids, "segment_ids": encoding.segment_ids}
        if "label" in record:
            features["target"] = labels.index(record["label"]) if record["label"] in labels else -1
        return features

    def build_model(self, backbone: Any, labels: list[str], cfg: TaskConfig) -> Any:
        from pipeline.kinds.layers import TokenAt
        from pipeline.tf_runtime import keras

        cls_vector = TokenAt(0, name="CLS-vector")(backbone.model.output)
        hidden = keras.layers.Dropout(cfg.dropout, name="CLS-dropout")(cls_vector)
        probs = keras.layers.Dense(len(labels), activation="softmax", dtype="float32", name="label-probs")(hidden)
        return keras.Model(backbone.model.inputs, probs, name="text_classifier")

    def loss(self, model: Any) -> Any:
        return "sparse_categorical_crossentropy"

    def decode(
        self, outputs: np.ndarray, records: Sequence[dict], labels: list[str], features: Sequence[Features] | None = None
    ) -> list[dict]:
        best = outputs.argmax(axis=-1)
        return [
            {"label": labels[index], "confidence": round(float(row[index]), 5)}
            for index, row in zip(best, outputs)
        ]

    def score(self, records: Sequence[dict], predictions: Sequence[dict], labels: list[str]) -> dict[str, float]:
        gold = [record["label"] for record in records]
        predicted = [prediction["label"] for prediction in predictions]
        return {
            "accuracy": float(accuracy_score(gold, predicted)),
            "macro_f1": float(f1_score(gold, predicted, labels=labels, average="macro", zero_division=0)),
        }

    def detailed_scores(
        self, records: Sequence[dict], predictions: Sequence[dict], labels: list[str]
    ) -> dict[str, float]:
        gold = [record["label"] for record in records]
        predicted = [prediction["label"] for prediction in predictions]
        scores = f1_score(gold, predicted, labels=labels, average=None, zero_division=0)
        return {f"f1.{label}": float(score) for label, score in zip(labels, scores)}

    def baseline(self, train: Sequence[dict], records: Sequence[dict], labels: list[str]) -> dict[str, float]:
        majority = Counter(record["label"] for record in train).most_common(1)[0][0]
        return self.score(records, [{"label": majority}] * len(records), labels)

    def write_reports(
        self, records: Sequence[dict], predictions: Sequence[dict], labels: list[str], out_dir: Path
    ) -> list[Path]:
        gold = [record["label"] for record in records]
        predicted = [prediction["label"] for prediction in predictions]
        report = classification_report(gold, predicted, labels=labels, output_dict=True, zero_division=0)
        matrix = confusion_matrix(gold, predicted, labels=labels).tolist()
        return [
            write_json(out_dir / "per_class.json", report),
            write_json(out_dir / "confusion.json", {"labels": labels, "matrix": matrix}),
            plot_confusion(matrix, labels, out_dir / "confusion.png", f"confusion matrix ({len(records)} examples)"),
        ]


def _natural(label: str) -> tuple[int, Any]:
    """Sort numeric labels numerically ('2' < '10'), others alphabetically."""
    return (0, int(label)) if label.lstrip("-").isdigit() else (1, label)


KIND = TextClassification()

"""Text and sentence-pair classification: the ``[CLS]`` vector, dropout and a softmax layer."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

from pipeline.config.schema import TaskConfig
from pipeline.kinds.common.base import Features, TaskKind
from pipeline.reporting.mistakes import mistake
from pipeline.reporting.plots import plot_confusion
from pipeline.reporting.files import write_json
from pipeline.text.tokenization import TextTokenizer

#: a wrong prediction at least this confident is called "confident and wrong"
CONFIDENT = 0.9
#: test examples shown in the saliency page
SALIENCY_EXAMPLES = 20


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

    def selection_metric(self, cfg: TaskConfig) -> str:
        return self.options.select_by

    def class_weight(self, train_features: Sequence[Features], labels: list[str], cfg: TaskConfig) -> dict | None:
        """``head.class_weight: balanced``: n / (classes x count) per class seen in training."""
        if self.options.class_weight == "none":
            return None
        counts = Counter(feature["target"] for feature in train_features)
        return {label: len(train_features) / (len(counts) * count) for label, count in counts.items()}

    def input_columns(self, cfg: TaskConfig) -> tuple[str, ...]:
        return ("text",)

    def build_model(self, backbone: Any, labels: list[str], cfg: TaskConfig) -> Any:
        from pipeline.kinds.common.layers import TokenAt
        from pipeline.runtime.tf_runtime import keras

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

    def mistakes(
        self, records: Sequence[dict], predictions: Sequence[dict], labels: list[str], limit: int = 25
    ) -> list[dict]:
        """Wrong predictions, the most confident first."""
        wrong = [(r, p) for r, p in zip(records, predictions) if p["label"] != r["label"]]
        wrong.sort(key=lambda pair: -pair[1].get("confidence", 0.0))
        return [
            mistake(record, record["label"], prediction["label"], _why_wrong(prediction.get("confidence", 0.0)))
            for record, prediction in wrong[:limit]
        ]

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
        """``saliency.html``: gradient saliency of each token for a mix of right and wrong test predictions."""
        from pipeline.kinds.common.saliency import write_saliency_page

        path = out_dir / "saliency.html"
        return [write_saliency_page(model, tokenizer, records, predictions, labels, maxlen, path, SALIENCY_EXAMPLES)]


def _why_wrong(confidence: float) -> str:
    return f"{'confident and wrong:' if confidence >= CONFIDENT else 'wrong at confidence'} {confidence:.2f}"


def _natural(label: str) -> tuple[int, Any]:
    """Sort numeric labels numerically ('2' < '10'), others alphabetically."""
    return (0, int(label)) if label.lstrip("-").isdigit() else (1, label)


class PairClassification(TextClassification):
    """One label per text pair (``text`` and ``text_b``), joined as ``[CLS] a [SEP] b [SEP]``."""

    def input_columns(self, cfg: TaskConfig) -> tuple[str, ...]:
        return ("text", "text_b")

"""Sequence labeling (NER): BIO tags per unit, a CRF (or softmax) head, entity-level scores.

Units are characters for Chinese (the tokenizer is length-preserving, one token per character)
and whitespace-delimited words for English. Alignment to word-pieces:

* training: a word's FIRST piece carries the word's tag; its other pieces continue it (``I-X``
  after ``B-X``/``I-X``, ``O`` after ``O``), so every token has a tag, the token sequence is valid
  BIO and the CRF learns ordinary transitions (no holes in the sequence); ``[CLS]``/``[SEP]`` are
  ``O``, padding is masked (the backbone's mask reaches the CRF, which sets padded scores to
  ``-inf`` and leaves them out of the loss).
* decoding: the best tag path over all tokens (Viterbi with the trained transitions, or argmax
  for ``decoder: softmax``) is read at first pieces only, the word tags are parsed as BIO
  (malformed ``I-`` repaired as in conlleval) and mapped back to character spans of whole words.

Head options (``head:``): :class:`pipeline.kinds.sequence_labeling.Options`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from pipeline.kinds.common.base import Features, TaskKind
from pipeline.reporting.plots import plot_bars
from pipeline.reporting.mistakes import set_mistakes
from pipeline.reporting.files import write_json
from pipeline.text.spans import (
    OUTSIDE,
    bio_to_spans,
    char_span_to_units,
    char_units,
    entity_scores,
    spans_to_bio,
    units_to_char_span,
    word_units,
)
from pipeline.kinds.sequence_labeling.decoding import CRF_LAYER, crf_transitions, first_pieces, piece_tags, token_units, viterbi
from pipeline.text.tokenization import ChineseCharTokenizer, TextTokenizer

if TYPE_CHECKING:
    from pipeline.config.schema import TaskConfig



def units_of(text: str, tokenizer: TextTokenizer) -> list[tuple[int, int]]:
    """The labelled units: characters with a length-preserving (Chinese) tokenizer, else words."""
    return char_units(text) if isinstance(tokenizer, ChineseCharTokenizer) else word_units(text)


def entity_spans(entities: Sequence[dict]) -> list[tuple[int, int, str]]:
    """``(start, end, type)`` of canonical entity dicts."""
    return [(e["start"], e["end"], e["type"]) for e in entities]


class SequenceLabeling(TaskKind):
    """BIO tags over characters (zh) or words (en); a CRF or softmax head; entity-level F1."""

    primary_metric = "f1"

    def label_space(self, train: Sequence[dict], cfg: TaskConfig) -> list[str]:
        types = sorted({entity["type"] for record in train for entity in record["entities"]})
        return [OUTSIDE] + [f"{prefix}-{label}" for label in types for prefix in ("B", "I")]

    def encode(self, record: dict, tokenizer: TextTokenizer, labels: list[str], maxlen: int) -> Features:
        """Ids, the unit alignment (``units``, ``first_pieces``) and, when labelled, per-token tag ids."""
        text = record["text"]
        encoding = tokenizer.encode(text, maxlen=maxlen)
        units = units_of(text, tokenizer)
        owners = token_units(encoding.offsets, units)
        features: Features = {
            "token_ids": encoding.token_ids,
            "segment_ids": encoding.segment_ids,
            "units": units,
            "first_pieces": first_pieces(owners, len(units)),
        }
        if "entities" in record:
            spans = []
            for entity in record["entities"]:
                covered = char_span_to_units(units, entity["start"], entity["end"])
                if covered is not None:
                    spans.append((*covered, entity["type"]))
            try:
                unit_tags = spans_to_bio(spans, len(units))
            except ValueError as exc:
                raise ValueError(f"record {record.get('id')!r}: entities cannot be tagged per unit: {exc}") from None
            index = {label: i for i, label in enumerate(labels)}
            # a type unseen in training (dev/test) is taught as O; it is still scored against gold
            features["target"] = [index.get(tag, 0) for tag in piece_tags(unit_tags, owners)]
        return features

    def build_model(self, backbone: Any, labels: list[str], cfg: TaskConfig) -> Any:
        from pipeline.runtime.tf_runtime import keras

        from bert4keras.layers import ConditionalRandomField

        options = self.options
        hidden = keras.layers.Dropout(cfg.dropout, name="tag-dropout")(backbone.model.output)
        if options.decoder == "softmax":
            output = keras.layers.Dense(len(labels), activation="softmax", dtype="float32", name="tag-probs")(hidden)
        else:
            scores = keras.layers.Dense(len(labels), dtype="float32", name="tag-scores")(hidden)
            crf = ConditionalRandomField(lr_multiplier=options.crf_lr_multiplier, dtype="float32", name=CRF_LAYER)
            output = crf(scores)
        return keras.Model(backbone.model.inputs, output, name="sequence_labeler")

    def loss(self, model: Any) -> Any:
        """The CRF's negative log-likelihood, or token cross-entropy (Keras masks the padding)."""
        try:
            return model.get_layer(CRF_LAYER).sparse_loss
        except ValueError:
            return "sparse_categorical_crossentropy"

    def decode_context(self, model: Any) -> dict[str, Any]:
        """Decode with the model's own (trained) CRF transitions."""
        return {"transitions": crf_transitions(model)}

    def decode(
        self,
        outputs: np.ndarray,
        records: Sequence[dict],
        labels: list[str],
        features: Sequence[Features] | None = None,
        transitions: np.ndarray | None = None,
    ) -> list[dict]:
        """Per-token scores -> ``{"entities": [...]}``; needs the batch's ``features`` (unit alignment).

        With ``transitions`` (a CRF) the path is Viterbi's, ``O`` on ``[CLS]``/``[SEP]``; else argmax.
        """
        if features is None:
            raise ValueError("sequence labeling decodes with the features' unit alignment: pass features")
        outside = labels.index(OUTSIDE)
        predictions = []
        for row, record, feature in zip(outputs, records, features):
            scores = row[: len(feature["token_ids"])]
            path = scores.argmax(-1) if transitions is None else viterbi(scores, transitions, outside, outside)
            predictions.append({"entities": self.entities_from_path(path, record["text"], feature, labels)})
        return predictions

    @staticmethod
    def entities_from_path(path: Sequence[int], text: str, feature: Features, labels: list[str]) -> list[dict]:
        """Entities of a token tag path, read at each unit's first piece (units without one: ``O``)."""
        units = feature["units"]
        unit_tags = [labels[path[token]] if token >= 0 else OUTSIDE for token in feature["first_pieces"]]
        entities = []
        for i, j, label in bio_to_spans(unit_tags):
            start, end = units_to_char_span(units, i, j)
            entities.append({"start": start, "end": end, "type": label, "text": text[start:end]})
        return entities

    def _scores(self, records: Sequence[dict], predictions: Sequence[dict]) -> tuple[dict, dict]:
        return entity_scores(
            [entity_spans(r["entities"]) for r in records], [entity_spans(p["entities"]) for p in predictions]
        )

    def score(self, records: Sequence[dict], predictions: Sequence[dict], labels: list[str]) -> dict[str, float]:
        micro, _ = self._scores(records, predictions)
        return {"f1": micro["f1"], "precision": micro["precision"], "recall": micro["recall"]}

    def detailed_scores(
        self, records: Sequence[dict], predictions: Sequence[dict], labels: list[str]
    ) -> dict[str, float]:
        _, per_type = self._scores(records, predictions)
        return {
            f"{metric}.{label}": float(row[metric])
            for label, row in per_type.items()
            for metric in ("f1", "precision", "recall")
        }

    def baseline(self, train: Sequence[dict], records: Sequence[dict], labels: list[str]) -> dict[str, float]:
        """``O`` everywhere: no entity predicted (F1 0)."""
        return self.score(records, [{"entities": []}] * len(records), labels)

    def write_reports(
        self, records: Sequence[dict], predictions: Sequence[dict], labels: list[str], out_dir: Path
    ) -> list[Path]:
        micro, per_type = self._scores(records, predictions)
        title = f"entity F1 per type ({len(records)} examples, micro F1 {micro['f1']:.3f})"
        return [
            write_json(out_dir / "per_type.json", {"micro": micro, "types": per_type}),
            plot_bars({label: row["f1"] for label, row in per_type.items()}, out_dir / "per_type_f1.png", title, "F1"),
        ]

    def mistakes(
        self, records: Sequence[dict], predictions: Sequence[dict], labels: list[str], limit: int = 25
    ) -> list[dict]:
        """Texts with the most entity errors (missed + spurious; exact span and type) first."""
        shown = [_shown_entities(r["entities"]) for r in records], [_shown_entities(p["entities"]) for p in predictions]
        return set_mistakes(records, *shown, "entities", limit)


def _shown_entities(entities: Sequence[dict]) -> dict[tuple, str]:
    """``{(start, end, type): "text (type)"}``: entities keyed as they are scored."""
    return {span: f"{entity['text']} ({entity['type']})" for span, entity in zip(entity_spans(entities), entities)}


Kind = SequenceLabeling

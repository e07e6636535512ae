"""Span extraction with query concatenation: event subjects (CCKS 2019), extractive QA (SQuAD).

The query and the text are joined into one input by the record's ``template`` (see
:mod:`pipeline.text.query_concat`); a ``Dense(2)`` layer gives start and end logits per token, masked
to the text's tokens (plus ``[CLS]`` as "no answer" with ``head.no_answer``), trained with softmax
cross-entropy over positions. Decoding takes the best ``start <= end`` pair within
``head.max_answer_len`` tokens and maps it back to characters of the original text.

Metrics: exact match and F1 with SQuAD v1.1's normalisation (lower case, ASCII punctuation and
English articles removed), extended for Chinese: CJK/full-width punctuation is removed too and
every CJK character is a token of its own (CMRC 2018's mixed segmentation), so Chinese F1 is
character-level and English F1 word-level. Each takes the best over the gold answers; an
unanswerable record counts as right only when the prediction is empty.
"""

from __future__ import annotations

import functools
import logging
import re
import string
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

from pipeline.config.schema import TaskConfig
from pipeline.kinds.common.base import Features, TaskKind
from pipeline.kinds.span_extraction import Options as SpanExtractionOptions
from pipeline.text.query_concat import (
    DEFAULT_TEMPLATE,
    query_type,
    answer_token_span,
    join_query,
    kept_text_chars,
    text_mask,
    text_offsets,
    token_span_to_text_span,
)
from pipeline.reporting.mistakes import mistake
from pipeline.reporting.plots import plot_bars
from pipeline.reporting.files import write_json
from pipeline.text.tokenization import TextTokenizer

logger = logging.getLogger(__name__)

#: more distinct query types than this in train: no per-type scores (the queries are free questions)
MAX_QUERY_TYPES = 100
#: what masked logits are lowered by
MASK_PENALTY = 1e12



class SpanExtraction(TaskKind):
    """One answer span (or none) of the text per query."""

    primary_metric = "f1"
    train_inputs = ("token_ids", "segment_ids", "text_mask")
    predict_inputs = ("token_ids", "segment_ids", "text_mask")

    def __init__(self, options: SpanExtractionOptions) -> None:
        super().__init__(options)
        #: answerable records encoded since the last model was built, and those whose answer truncation cut
        self.encoded = 0
        self.lost = 0

    def label_space(self, train: Sequence[dict], cfg: TaskConfig) -> list[str]:
        """The query types to score separately (none if there are too many: free questions)."""
        unanswerable = sum(1 for record in train if not record["answers"])
        if unanswerable and not self.options.no_answer:
            raise ValueError(
                f"{unanswerable} training records have no answer: set head.no_answer: true "
                "(the [CLS] pointer predicts 'no answer') or data.missing_answer: skip"
            )
        types = {query_type(record) for record in train}
        return sorted(types) if len(types) <= MAX_QUERY_TYPES else []

    def input_columns(self, cfg: TaskConfig) -> tuple[str, ...]:
        return ("query", "text")

    def record_from_input(self, row: dict, cfg: TaskConfig) -> dict:
        """The query joined to the text by the task's own template, as in training."""
        return {"query": row["query"], "text": row["text"], "template": list(cfg.data.template)}

    def public_output(self, prediction: dict) -> dict:
        return {key: value for key, value in prediction.items() if key != "kept_chars"}

    def encode(self, record: dict, tokenizer: TextTokenizer, labels: list[str], maxlen: int) -> Features:
        joined = join_query(record.get("template", DEFAULT_TEMPLATE), record["query"], record["text"])
        encoding = tokenizer.encode(*joined.segments, maxlen=maxlen)
        offsets = text_offsets(encoding, joined)
        features: Features = {
            "token_ids": encoding.token_ids,
            "segment_ids": encoding.segment_ids,
            "text_mask": text_mask(offsets),
            "offsets": offsets,
            "kept_chars": kept_text_chars(encoding, joined),
        }
        if "answers" in record:
            features["target"] = self._target(record, encoding, joined)
        return features

    def _target(self, record: dict, encoding: Any, joined: Any) -> list[int]:
        """``[start, end, weight]``: the first gold answer that survived truncation; ``[0, 0, 1]``
        (the [CLS] pointer) for no answer; weight 0 when truncation lost every answer (counted)."""
        if not record["answers"]:
            return [0, 0, 1]
        self.encoded += 1
        for answer in record["answers"]:
            span = answer_token_span(encoding, joined, answer["start"], answer["end"])
            if span is not None:
                return [span[0], span[1], 1]
        self.lost += 1
        return [0, 0, 0]

    def build_model(self, backbone: Any, labels: list[str], cfg: TaskConfig) -> Any:
        from pipeline.runtime.tf_runtime import keras

        options: SpanExtractionOptions = self.options
        mask = keras.layers.Input(shape=(None,), dtype="int32", name="Input-Text-Mask")
        hidden = keras.layers.Dropout(cfg.dropout, name="span-dropout")(backbone.model.output)
        logits = keras.layers.Dense(
            2, dtype="float32", kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02), name="span-logits"
        )(hidden)
        masked = _span_mask_layer()(options.no_answer, name="span-mask")([logits, mask])
        model = keras.Model([*backbone.model.inputs, mask], masked, name="span_extractor")
        self._report_truncation(cfg.maxlen)
        return model

    def _report_truncation(self, maxlen: int) -> None:
        """Print (and reset) how many answers the records encoded so far (train and dev when training,
        test when evaluating) lost to ``maxlen`` truncation; they train with weight 0."""
        if self.encoded:
            logger.info(
                f"[span_extraction] maxlen={maxlen} truncation cut the answer of {self.lost} of the {self.encoded} "
                f"answerable records encoded ({self.lost / self.encoded:.2%}; no loss on them)"
            )
        self.encoded = self.lost = 0

    def loss(self, model: Any) -> Any:
        from pipeline.runtime.tf_runtime import keras, tf

        def span_loss(y_true: Any, y_pred: Any) -> Any:
            """Mean of start and end cross-entropy over positions, times the example's weight."""
            y_true = tf.cast(y_true, tf.int32)
            ce = keras.losses.sparse_categorical_crossentropy
            start = ce(y_true[:, 0], y_pred[:, :, 0], from_logits=True)
            end = ce(y_true[:, 1], y_pred[:, :, 1], from_logits=True)
            return (start + end) / 2 * tf.cast(y_true[:, 2], y_pred.dtype)

        return span_loss

    def decode_context(self, model: Any) -> dict[str, Any]:
        """The decoding options of this task (its head options): the longest answer and the no-answer rule."""
        options: SpanExtractionOptions = self.options
        return {"max_answer_len": options.max_answer_len, "no_answer": options.no_answer}

    def decode(
        self,
        outputs: np.ndarray,
        records: Sequence[dict],
        labels: list[str],
        features: Sequence[Features] | None = None,
        max_answer_len: int = 30,
        no_answer: bool = False,
    ) -> list[dict]:
        """Logits ``(batch, seq, 2)`` to ``{"text", "start", "end", "score", "kept_chars"}`` per record
        (``text`` empty and ``start``/``end`` None for no answer); needs the records' features."""
        if features is None:
            raise ValueError("span decoding needs the encoded features (token offsets): use predict()")
        predictions = []
        for logits, record, feature in zip(outputs, records, features):
            n = len(feature["token_ids"])
            best = best_span(logits[:n, 0], logits[:n, 1], feature["text_mask"], max_answer_len)
            null = float(logits[0, 0] + logits[0, 1])
            prediction = {"text": "", "start": None, "end": None, "score": null, "kept_chars": feature["kept_chars"]}
            if best is not None and not (no_answer and null > best[2]):
                start, end = token_span_to_text_span(feature["offsets"], best[0], best[1])
                prediction.update(text=record["text"][start:end], start=start, end=end, score=best[2])
            prediction["score"] = round(prediction["score"], 4)
            predictions.append(prediction)
        return predictions

    def score(self, records: Sequence[dict], predictions: Sequence[dict], labels: list[str]) -> dict[str, float]:
        scores = _match_scores(records, [p["text"] for p in predictions])
        answerable = [record for record in records if record["answers"]]
        lost = [
            record
            for record, p in zip(records, predictions)
            if record["answers"] and all(a["end"] > p.get("kept_chars", len(record["text"])) for a in record["answers"])
        ]
        return {**scores, "answer_lost": len(lost) / len(answerable) if answerable else 0.0}

    def detailed_scores(
        self, records: Sequence[dict], predictions: Sequence[dict], labels: list[str]
    ) -> dict[str, float]:
        details: dict[str, float] = {}
        for name, row in per_type_scores(records, predictions, labels).items():
            details[f"em.{name}"], details[f"f1.{name}"] = row["em"], row["f1"]
        return details

    def baseline(self, train: Sequence[dict], records: Sequence[dict], labels: list[str]) -> dict[str, float]:
        """The empty span, and the first N characters of the text (N: median train answer length)."""
        lengths = [len(record["answers"][0]["text"]) for record in train if record["answers"]]
        n = round(median(lengths)) if lengths else 1
        first = {
            f"first_chars.{key}": value
            for key, value in _match_scores(records, [record["text"][:n] for record in records]).items()
        }
        return {**_match_scores(records, [""] * len(records)), **first}

    def write_reports(
        self, records: Sequence[dict], predictions: Sequence[dict], labels: list[str], out_dir: Path
    ) -> list[Path]:
        table = per_type_scores(records, predictions, labels)
        for index, (name, row) in enumerate(table.items(), start=1):
            row["chart_label"] = _chart_label(name, index)
        overall = _match_scores(records, [p["text"] for p in predictions])
        files = [
            write_json(out_dir / "per_type.json", {"overall": {**overall, "support": len(records)}, "types": table})
        ]
        if table:
            title = f"EM per query type ({len(records)} examples; T<n>: see per_type.json)"
            bars = {f"{row['chart_label']} (n={row['support']})": row["em"] for row in table.values()}
            files.append(plot_bars(bars, out_dir / "per_type_em.png", title, "exact match"))
        return files

    def mistakes(
        self, records: Sequence[dict], predictions: Sequence[dict], labels: list[str], limit: int = 25
    ) -> list[dict]:
        """Answers that are not an exact match, the lowest F1 (character-level for Chinese) first."""
        ranked = []
        for record, prediction in zip(records, predictions):
            golds = [answer["text"] for answer in record["answers"]]
            em, f1 = best_match(prediction["text"], golds)
            if em < 1 or f1 < 1:
                why = f"F1 {f1:.2f}"
                if not golds or not prediction["text"]:
                    why += ", the query has no answer" if not golds else ", no answer predicted"
                ranked.append(((f1, em), mistake(record, golds, prediction["text"], why)))
        ranked.sort(key=lambda pair: pair[0])
        return [row for _, row in ranked[:limit]]


# --- decoding ---------------------------------------------------------------------------------------


def best_span(
    start_logits: Sequence[float], end_logits: Sequence[float], allowed: Sequence[int], max_len: int
) -> tuple[int, int, float] | None:
    """The ``(i, j, start_logits[i] + end_logits[j])`` maximising the score with ``i <= j < i + max_len``,
    both allowed positions; None if no position is allowed."""
    positions = np.flatnonzero(np.asarray(allowed, dtype=bool))
    if positions.size == 0:
        return None
    starts = np.asarray(start_logits, dtype=np.float64)[positions]
    ends = np.asarray(end_logits, dtype=np.float64)[positions]
    gap = positions[None, :] - positions[:, None]
    scores = np.where((gap >= 0) & (gap < max_len), starts[:, None] + ends[None, :], -np.inf)
    a, b = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return int(positions[a]), int(positions[b]), float(scores[a, b])


@functools.cache
def _span_mask_layer() -> type:
    """A Keras layer lowering the logits of positions outside the text mask (bar [CLS] if allowed)."""
    from pipeline.runtime.tf_runtime import keras, tf

    class SpanMask(keras.layers.Layer):
        def __init__(self, allow_first: bool = False, **kwargs: Any) -> None:
            super().__init__(dtype="float32", **kwargs)
            self.allow_first = allow_first

        def call(self, inputs: Any) -> Any:
            logits, mask = inputs
            mask = tf.cast(mask, logits.dtype)
            if self.allow_first:
                mask = tf.concat([tf.ones_like(mask[:, :1]), mask[:, 1:]], axis=1)
            return logits - (1.0 - mask)[:, :, None] * MASK_PENALTY

        def get_config(self) -> dict:
            return {**super().get_config(), "allow_first": self.allow_first}

    return SpanMask


# --- metrics ----------------------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff"
_TOKENS = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+")
_ASCII_PUNCTUATION = frozenset(string.punctuation)


def _is_punctuation(ch: str) -> bool:
    """SQuAD's ASCII punctuation, plus CJK and full-width punctuation (U+3000 and above)."""
    return ch in _ASCII_PUNCTUATION or (ord(ch) >= 0x3000 and unicodedata.category(ch).startswith("P"))


def answer_tokens(text: str) -> list[str]:
    """Normalised tokens: lower case, no punctuation or English articles; CJK characters one by one."""
    text = "".join(ch for ch in text.lower() if not _is_punctuation(ch))
    return _TOKENS.findall(_ARTICLES.sub(" ", text))


def exact_match(prediction: str, gold: str) -> float:
    return float(answer_tokens(prediction) == answer_tokens(gold))


def f1_score(prediction: str, gold: str) -> float:
    """Token-overlap F1 of normalised answers; both empty (no answer) is 1, one empty is 0."""
    predicted, expected = answer_tokens(prediction), answer_tokens(gold)
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def best_match(prediction: str, golds: Sequence[str]) -> tuple[float, float]:
    """``(EM, F1)`` of ``prediction``, each the best over ``golds`` (``[""]`` for no answer)."""
    golds = list(golds) or [""]
    return max(exact_match(prediction, g) for g in golds), max(f1_score(prediction, g) for g in golds)


def _match_scores(records: Sequence[dict], predicted: Sequence[str]) -> dict[str, float]:
    """Mean F1 and EM, and EM over the answerable records."""
    pairs = [best_match(text, [a["text"] for a in record["answers"]]) for record, text in zip(records, predicted)]
    answerable = [em for (em, _), record in zip(pairs, records) if record["answers"]]
    return {
        "f1": float(np.mean([f1 for _, f1 in pairs])) if pairs else 0.0,
        "em": float(np.mean([em for em, _ in pairs])) if pairs else 0.0,
        "answerable_em": float(np.mean(answerable)) if answerable else 0.0,
    }



def per_type_scores(records: Sequence[dict], predictions: Sequence[dict], types: Sequence[str]) -> dict[str, dict]:
    """``{type: {"support", "em", "f1"}}`` for each of ``types`` seen in ``records``, most frequent first."""
    groups: dict[str, list[tuple[float, float]]] = defaultdict(list)
    wanted = set(types)
    for record, prediction in zip(records, predictions):
        if (name := query_type(record)) in wanted:
            groups[name].append(best_match(prediction["text"], [a["text"] for a in record["answers"]]))
    ordered = sorted(groups, key=lambda name: (-len(groups[name]), name))
    return {
        name: {
            "support": len(groups[name]),
            "em": float(np.mean([em for em, _ in groups[name]])),
            "f1": float(np.mean([f1 for _, f1 in groups[name]])),
        }
        for name in ordered
    }


def _chart_label(name: str, index: int) -> str:
    """Names the default font can draw (ASCII) as they are; others as ``T<index>`` (mapped in the JSON)."""
    return name if name.isascii() else f"T{index}"


Kind = SpanExtraction

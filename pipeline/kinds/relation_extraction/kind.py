"""Relation extraction, subject first then objects (bert4keras's examples/task_relation_extraction.py).

The model, on the backbone's sequence output ``H`` (after dropout):

* subject pointers: ``Dense(2, sigmoid)`` over every token, squared (start / end of a subject);
* given one subject ``(s, e)``, ``H + (H[s] + H[e]) / 2`` (the subject's start and end vectors
  averaged and ADDED to every position; the bert4keras example uses a conditional LayerNorm
  instead), then ``Dense(2P, sigmoid)`` to the 4th power, reshaped to ``(len, P, 2)``: the start /
  end pointers of the subject's object for each of the ``P`` predicates.

One Keras model is trained: its inputs also carry every gold subject span and every triple (as
token indices), a :class:`~pipeline.kinds.relation_extraction.layers.SampleSubject` layer picks ONE gold
subject per example at random at every training step (the example's generator re-draws it every
epoch; features here are encoded once, so the draw happens in the graph), and a
:class:`~pipeline.kinds.relation_extraction.layers.PointerLoss` layer builds the pointer labels and adds the
masked binary cross-entropy (so :meth:`RelationExtraction.loss` is None). Two departures keep a
weakly pretrained encoder (minilm-zh) from collapsing to one vector at every position: the pointer
biases start at a low prior (:data:`INITIAL_PROBABILITY`), and the subject vector receives the mean,
not the sum, of the gradients of the positions it is added to (:class:`~pipeline.kinds.relation_extraction.layers.AddSpanMean`).

Prediction runs the encoder once per example: the sequence output and subject probabilities come
from one batched call, subjects are decoded (a start above ``head.subject_threshold`` paired with
the nearest end above it), and the object head (cheap layers only) runs once for all subjects of a
batch. Token spans map back to characters through the encoding's offsets (first to last
word-piece for English).

Scores: triple-level micro P/R/F1; a predicted triple is right when its subject TEXT, predicate and
object TEXT equal a gold triple's (the DuIE/SKE evaluation's rule; duplicates count once).
``span_f1`` asks for the exact character spans instead (stricter; entity types are not predicted,
so it is looser than SpERT's "strict" CoNLL04 score).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np

from pipeline.kinds.common.base import Features, TaskKind
from pipeline.kinds.relation_extraction import Options as RelationExtractionOptions
from pipeline.kinds.relation_extraction.pointers import decode_pointers
from pipeline.data.readers.duie import locate
from pipeline.text.spans import entity_scores
from pipeline.text.tokenization import Encoding, TextTokenizer, char_span_to_token_span, token_span_to_char_span

if TYPE_CHECKING:
    from pipeline.config.schema import TaskConfig

#: layer names, used to rebuild the prediction sub-models from a trained model
SUBJECT_POINTERS, SUBJECT_PROBS = "subject-pointers", "subject-probs"
CONDITION, OBJECT_POINTERS = "subject-condition", "object-pointers"
OBJECT_POWER, OBJECT_PROBS = "object-power", "object-probs"

#: pointer probabilities start near this (their biases are set so): a pointer is rarely 1, and starting at
#: sigmoid(0) (0.25 / 0.0625 after the powers) makes the first updates push every token of the encoder
#: towards "no" at once
INITIAL_PROBABILITY = 0.01

#: at most this many subjects per example are passed to the object head (guards an untrained model)
MAX_SUBJECTS = 16

#: the per-predicate chart shows this many predicates, the most frequent first
CHART_PREDICATES = 25



class RelationExtraction(TaskKind):
    """Records ``{"id", "text", "triples": [{"subject", "predicate", "object"}]}``; labels are predicates."""

    primary_metric = "f1"
    train_inputs = ("token_ids", "segment_ids", "subject_spans", "object_spans")
    predict_inputs = ("token_ids", "segment_ids")

    def label_space(self, train: Sequence[dict], cfg: "TaskConfig") -> list[str]:
        return sorted({triple["predicate"] for record in train for triple in record["triples"]})

    def encode(self, record: dict, tokenizer: TextTokenizer, labels: list[str], maxlen: int) -> Features:
        """Token ids and offsets; with gold triples also ``subject_spans`` and ``object_spans`` (see
        :func:`pointer_targets`). Triples cut off by truncation give no labels."""
        encoding = tokenizer.encode(record["text"], maxlen=maxlen)
        features: Features = {
            "token_ids": encoding.token_ids,
            "segment_ids": encoding.segment_ids,
            "offsets": encoding.offsets,
        }
        if "triples" in record:
            features.update(pointer_targets(token_triples(record["triples"], encoding, labels)))
            # a placeholder: the loss is added by the model (Keras ignores y without a compiled loss); batches
            # without any target hit a tf_keras bug (pack_x_y_sample_weight's `isinstance(x, tuple or list)`
            # unpacks a list of inputs as (x, y, ...))
            features["target"] = 0
        return features

    def build_model(self, backbone: Any, labels: list[str], cfg: "TaskConfig") -> Any:
        from pipeline.kinds.relation_extraction.layers import AddSpanMean, PointerLoss, Power, SampleSubject
        from pipeline.runtime.tf_runtime import keras

        n = len(labels)
        token_ids, segment_ids = backbone.model.inputs
        subject_spans = keras.Input((None, 2), dtype="int32", name="subject-spans")
        object_spans = keras.Input((None, 4), dtype="int32", name="object-spans")
        hidden = keras.layers.Dropout(cfg.dropout, name="pointer-dropout")(backbone.model.output)

        def pointers(units: int, power: int, name: str) -> Any:
            bias = keras.initializers.Constant(prior_logit(INITIAL_PROBABILITY, power))
            init = backbone.initializer
            return keras.layers.Dense(
                units, "sigmoid", kernel_initializer=init, bias_initializer=bias, dtype="float32", name=name
            )

        subject_probs = Power(2, dtype="float32", name=SUBJECT_PROBS)(pointers(2, 2, SUBJECT_POINTERS)(hidden))
        head = ObjectHead(
            AddSpanMean(name=CONDITION),
            pointers(2 * n, 4, OBJECT_POINTERS),
            Power(4, dtype="float32", name=OBJECT_POWER),
            keras.layers.Reshape((-1, n, 2), dtype="float32", name=OBJECT_PROBS),
        )
        chosen, subject = SampleSubject(name="subject-sampler")(subject_spans)
        outputs = PointerLoss(dtype="float32", name="pointer-loss")(
            [token_ids, subject_spans, object_spans, chosen, subject_probs, head(hidden, subject)]
        )
        model = keras.Model([token_ids, segment_ids, subject_spans, object_spans], outputs, name="relation_extractor")
        return model

    def loss(self, model: Any) -> Any:
        return None

    def predict(
        self, model: Any, records: Sequence[dict], features: Sequence[Features], labels: list[str], batch_size: int
    ) -> list[dict]:
        """Subjects from one encoder call per length-sorted batch, then objects for all of a batch's subjects."""
        parts = prediction_parts(model)
        options: RelationExtractionOptions = self.options
        predictions: list[dict | None] = [None] * len(records)
        for batch, (hidden, subject_probs) in parts.encoder.outputs(features, batch_size, self.predict_inputs):
            pairs = []  # (row of the batch, subject token span)
            for row, index in enumerate(batch):
                n = len(features[index]["token_ids"])
                subjects = decode_pointers(subject_probs[row, :, None, :], options.subject_threshold, 1, n - 1)
                pairs += [(row, (start, end)) for _, start, end in subjects[:MAX_SUBJECTS]]
            found: dict[int, list[TokenTriple]] = {row: [] for row in range(len(batch))}
            for chunk in range(0, len(pairs), batch_size):
                rows = pairs[chunk : chunk + batch_size]
                probs = parts.objects(hidden[[row for row, _ in rows]], np.array([span for _, span in rows], np.int32))
                for (row, subject), object_probs in zip(rows, probs):
                    n = len(features[batch[row]]["token_ids"])
                    for predicate, start, end in decode_pointers(object_probs, options.object_threshold, 1, n - 1):
                        found[row].append((subject, predicate, (start, end)))
            for row, index in enumerate(batch):
                triples = char_triples(found[row], features[index], records[index]["text"], labels)
                predictions[index] = {"triples": triples}
        return predictions  # type: ignore[return-value]

    def decode(
        self, outputs: np.ndarray, records: Sequence[dict], labels: list[str], features: Sequence[Features] | None = None
    ) -> list[dict]:
        raise NotImplementedError("relation extraction decodes in predict(): objects need a second model call")

    def score(self, records: Sequence[dict], predictions: Sequence[dict], labels: list[str]) -> dict[str, float]:
        micro, _ = triple_scores(records, predictions, by="text")
        span_micro, _ = triple_scores(records, predictions, by="span")
        return {
            "f1": micro["f1"],
            "precision": micro["precision"],
            "recall": micro["recall"],
            "span_f1": span_micro["f1"],
        }

    def detailed_scores(
        self, records: Sequence[dict], predictions: Sequence[dict], labels: list[str]
    ) -> dict[str, float]:
        _, per_predicate = triple_scores(records, predictions, by="text")
        return {f"f1.{predicate}": row["f1"] for predicate, row in per_predicate.items()}

    def baseline(self, train: Sequence[dict], records: Sequence[dict], labels: list[str]) -> dict[str, float]:
        """Memorised triples: a training triple is predicted wherever its subject and object both occur.

        (Predicting nothing, the trivial baseline, scores 0 on every metric.)
        """
        return self.score(records, memorised_predictions(train, records), labels)

    def write_reports(
        self, records: Sequence[dict], predictions: Sequence[dict], labels: list[str], out_dir: Path
    ) -> list[Path]:
        from pipeline.reporting.plots import plot_bars
        from pipeline.reporting.files import write_json

        micro, per_predicate = triple_scores(records, predictions, by="text")
        span_micro, _ = triple_scores(records, predictions, by="span")
        top = sorted(per_predicate, key=lambda p: (-per_predicate[p]["support"], p))[:CHART_PREDICATES]
        shown = f"the {len(top)} most frequent of {len(per_predicate)}" if len(top) < len(per_predicate) else "all"
        title = f"triple F1 per predicate ({shown}; {len(records)} texts)"
        return [
            write_json(
                out_dir / "per_predicate.json",
                {"match": "text", "micro": micro, "span_micro": span_micro, "predicates": per_predicate},
            ),
            plot_bars(
                {f"{p} ({per_predicate[p]['support']})": per_predicate[p]["f1"] for p in top},
                out_dir / "per_predicate_f1.png",
                title,
                "F1 (gold support in brackets)",
            ),
        ]

    def mistakes(
        self, records: Sequence[dict], predictions: Sequence[dict], labels: list[str], limit: int = 25
    ) -> list[dict]:
        """Texts with the most triple errors (missed + spurious, matched as scored: by text) first."""
        from pipeline.reporting.mistakes import set_mistakes

        shown = [_shown_triples(r["triples"]) for r in records], [_shown_triples(p["triples"]) for p in predictions]
        return set_mistakes(records, *shown, "triples", limit)


def _shown_triples(triples: Iterable[dict]) -> dict[tuple, str]:
    """``{match key: "(subject, predicate, object)"}`` (repeats of a key count once, as in the scores)."""
    return {
        triple_key(t, "text"): f"({t['subject']['text']}, {t['predicate']}, {t['object']['text']})" for t in triples
    }


class ObjectHead:
    """The layers that turn the sequence output and one subject span into object pointers.

    Called once in :meth:`RelationExtraction.build_model`, and again on fresh inputs for prediction
    (:func:`prediction_parts`), sharing the trained layers found by name.
    """

    def __init__(self, condition: Any, dense: Any, power: Any, reshape: Any) -> None:
        self.layers = (condition, dense, power, reshape)

    @classmethod
    def of(cls, model: Any) -> "ObjectHead":
        return cls(*(model.get_layer(name) for name in (CONDITION, OBJECT_POINTERS, OBJECT_POWER, OBJECT_PROBS)))

    def __call__(self, hidden: Any, subject_ids: Any) -> Any:
        condition, dense, power, reshape = self.layers
        return reshape(power(dense(condition([hidden, subject_ids]))))


@dataclass
class PredictionParts:
    """The encoder (sequence output + subject probabilities) and a traced object-head call."""

    encoder: Any  #: a :class:`pipeline.training.modeling.Predictor`
    objects: Callable[[np.ndarray, np.ndarray], np.ndarray]


_PARTS: "weakref.WeakKeyDictionary[Any, PredictionParts]" = weakref.WeakKeyDictionary()


def prediction_parts(model: Any) -> PredictionParts:
    """Sub-models of a model built by :meth:`RelationExtraction.build_model`, made once per model."""
    if model in _PARTS:
        return _PARTS[model]
    from pipeline.training.modeling import Predictor
    from pipeline.runtime.tf_runtime import keras, tf

    hidden = model.get_layer(SUBJECT_POINTERS).input
    encoder = keras.Model(model.inputs[:2], [hidden, model.get_layer(SUBJECT_PROBS).output])
    dim = hidden.shape[-1]
    hidden_in = keras.Input((None, dim), name="hidden")
    span_in = keras.Input((2,), dtype="int32", name="subject")
    head = keras.Model([hidden_in, span_in], ObjectHead.of(model)(hidden_in, span_in))
    call = tf.function(
        lambda h, s: head([h, s], training=False),
        input_signature=[tf.TensorSpec((None, None, dim), tf.float32), tf.TensorSpec((None, 2), tf.int32)],
    )
    parts = PredictionParts(Predictor(encoder, 2), lambda h, s: np.asarray(call(h, s), dtype=np.float32))
    _PARTS[model] = parts
    return parts


# --- pure parts: labels, spans, scores -----------------------------------------------------------

TokenTriple = tuple[tuple[int, int], int, tuple[int, int]]
"""(subject token span, predicate index, object token span), token spans inclusive."""


def token_triples(triples: Iterable[dict], encoding: Encoding, labels: list[str]) -> list[TokenTriple]:
    """Gold triples on tokens; those with an unknown predicate or a span lost to truncation are left out."""
    index = {label: i for i, label in enumerate(labels)}
    placed = []
    for triple in triples:
        if triple["predicate"] not in index:
            continue
        subject = _token_span(encoding, triple["subject"])
        obj = _token_span(encoding, triple["object"])
        if subject and obj:
            placed.append((subject, index[triple["predicate"]], obj))
    return placed


def _token_span(encoding: Encoding, mention: dict) -> tuple[int, int] | None:
    if mention["end"] <= mention["start"]:
        return None
    return char_span_to_token_span(encoding, mention["start"], mention["end"])


def pointer_targets(placed: Sequence[TokenTriple]) -> Features:
    """Training targets as token indices (the model turns them into pointer labels).

    ``subject_spans``: (S, 2) every distinct subject span, sorted; ``object_spans``: (T, 4) each
    triple as ``(subject row, predicate, object start, object end)``. Without triples each holds one
    all-zero padding row (a real span never ends on ``[CLS]``), so batches always have a row.
    """
    subjects = sorted({subject for subject, _, _ in placed})
    row = {subject: i for i, subject in enumerate(subjects)}
    objects = sorted({(row[subject], predicate, *obj) for subject, predicate, obj in placed})
    return {
        "subject_spans": np.array(subjects or [(0, 0)], dtype=np.int32).reshape(-1, 2),
        "object_spans": np.array(objects or [(0, 0, 0, 0)], dtype=np.int32).reshape(-1, 4),
    }


def char_triples(found: Iterable[TokenTriple], features: Features, text: str, labels: list[str]) -> list[dict]:
    """Decoded token-level triples as canonical triples with character spans (repeats removed)."""
    encoding = Encoding(features["token_ids"], features["segment_ids"], [tuple(o) for o in features["offsets"]], [])
    triples, seen = [], set()
    for subject, predicate, obj in found:
        key = (subject, predicate, obj)
        if key in seen:
            continue
        seen.add(key)
        triples.append(
            {
                "subject": _mention(text, token_span_to_char_span(encoding, *subject)),
                "predicate": labels[predicate],
                "object": _mention(text, token_span_to_char_span(encoding, *obj)),
            }
        )
    return triples


def prior_logit(probability: float, power: int) -> float:
    """The sigmoid bias ``b`` with ``sigmoid(b) ** power == probability``."""
    root = probability ** (1.0 / power)
    return float(np.log(root / (1.0 - root)))


def _mention(text: str, span: tuple[int, int]) -> dict:
    return {"start": span[0], "end": span[1], "text": text[span[0] : span[1]]}


def triple_key(triple: dict, by: str) -> tuple:
    """What makes two triples equal: ``by="text"`` the subject and object strings, ``"span"`` their character spans.

    The predicate comes last (so :func:`pipeline.spans.entity_scores` counts per predicate).
    """
    subject, obj = triple["subject"], triple["object"]
    if by == "text":
        return subject["text"], obj["text"], triple["predicate"]
    if by == "span":
        return subject["start"], subject["end"], obj["start"], obj["end"], triple["predicate"]
    raise ValueError(f"unknown triple match {by!r} (text or span)")


def triple_scores(
    records: Sequence[dict], predictions: Sequence[dict], by: str = "text"
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Micro P/R/F1 of predicted against gold triples, and per predicate (with support, predicted, correct)."""
    gold = [{triple_key(t, by) for t in record["triples"]} for record in records]
    predicted = [{triple_key(t, by) for t in prediction["triples"]} for prediction in predictions]
    return entity_scores(gold, predicted)


def memorised_predictions(train: Sequence[dict], records: Sequence[dict]) -> list[dict]:
    """For each record, the training triples whose subject and object texts both occur in it (first occurrences)."""
    known: dict[str, set[tuple[str, str]]] = {}
    for record in train:
        for triple in record["triples"]:
            known.setdefault(triple["subject"]["text"], set()).add((triple["predicate"], triple["object"]["text"]))
    predictions = []
    for record in records:
        text, triples = record["text"], []
        for subject, pairs in known.items():
            subject_span = locate(text, subject)
            if subject_span is None:
                continue
            for predicate, obj in sorted(pairs):
                object_span = locate(text, obj)
                if object_span is not None:
                    subject_mention, object_mention = _mention(text, subject_span), _mention(text, object_span)
                    triples.append({"subject": subject_mention, "predicate": predicate, "object": object_mention})
        predictions.append({"triples": triples})
    return predictions


Kind = RelationExtraction

"""Gradient saliency of each input token for a classification model, rendered as an HTML page.

A token's saliency is the L2 norm of the gradient of the predicted class's probability with
respect to that token's embedding (the output of bert4keras's ``Embedding-Token`` layer), scaled
per example so that the most salient token scores 1 (``[CLS]``/``[SEP]`` score 0 and are not shown).

How the gradient is read: the embedding layer is a gather from its matrix, so the gradient of the
model output with respect to the MATRIX comes back from TensorFlow as ``tf.IndexedSlices`` whose
``values`` hold one row per looked-up position, in input order (``batch * seq`` rows, ``indices`` the
token ids), before any aggregation per vocabulary row: exactly the per-position gradients, with no
change to the model. :func:`gradient_saliency` checks that the slices are laid out so.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pipeline.reporting.files import write_text
from pipeline.text.tokenization import NO_SPAN, Encoding, TextTokenizer
from pipeline.training.batching import pad

#: the bert4keras layer whose embeddings the gradient is taken against
TOKEN_EMBEDDING = "Embedding-Token"


@dataclass(frozen=True)
class TokenSaliency:
    """One example's encoding and one score per token: 0 on special tokens, the others in [0, 1] with
    the largest 1 (all 0 when the gradient vanishes)."""

    encoding: Encoding
    scores: np.ndarray


def gradient_saliency(model: Any, token_ids: np.ndarray, segment_ids: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """``(batch, seq)`` raw saliency: the L2 norm of d p(``classes[b]``) / d (token embedding at each position).

    Raises RuntimeError if the embedding gradient is not per-position slices in input order (e.g. a
    model that uses the embedding matrix twice, or a one-hot-matmul embedding).
    """
    from pipeline.runtime.tf_runtime import tf

    matrix = model.get_layer(TOKEN_EMBEDDING).embeddings
    ids = tf.constant(token_ids, tf.int32)
    with tf.GradientTape() as tape:
        probs = model([ids, tf.constant(segment_ids, tf.int32)], training=False)
        # examples are independent at inference: the gradient of the sum is each example's own gradient
        chosen = tf.reduce_sum(tf.gather(probs, tf.constant(classes, tf.int32), axis=1, batch_dims=1))
    grad = tape.gradient(chosen, matrix)
    if not isinstance(grad, tf.IndexedSlices) or not np.array_equal(grad.indices.numpy(), token_ids.reshape(-1)):
        raise RuntimeError(f"the gradient of {TOKEN_EMBEDDING}'s matrix is not one slice per input position")
    values = tf.cast(grad.values, tf.float32).numpy().reshape(*token_ids.shape, -1)
    return np.linalg.norm(values, axis=-1)


def explain(
    model: Any,
    tokenizer: TextTokenizer,
    records: Sequence[dict],
    classes: Sequence[int],
    maxlen: int,
    batch_size: int = 8,
) -> list[TokenSaliency]:
    """The saliency of each record's tokens (``text`` and, for pairs, ``text_b``) for its class in ``classes``."""
    encodings = [tokenizer.encode(record["text"], record.get("text_b"), maxlen=maxlen) for record in records]
    explained = []
    for start in range(0, len(records), batch_size):
        batch = encodings[start : start + batch_size]
        raw = gradient_saliency(
            model,
            pad([e.token_ids for e in batch], tokenizer.pad_id).astype(np.int32),
            pad([e.segment_ids for e in batch]).astype(np.int32),
            classes[start : start + batch_size],
        )
        for encoding, row in zip(batch, raw):
            scores = np.where([span != NO_SPAN for span in encoding.offsets], row[: len(encoding)], 0.0)
            peak = scores.max(initial=0.0)
            explained.append(TokenSaliency(encoding, scores / peak if peak > 0 else scores))
    return explained


def pick_examples(records: Sequence[dict], predictions: Sequence[dict], n: int) -> list[int]:
    """Indices of up to ``n`` examples: about half wrong (the most confident first), then right ones
    spread evenly over the test set (more of one kind when the other runs short)."""
    wrong = [i for i, (r, p) in enumerate(zip(records, predictions)) if p["label"] != r["label"]]
    right = [i for i, (r, p) in enumerate(zip(records, predictions)) if p["label"] == r["label"]]
    wrong.sort(key=lambda i: -predictions[i].get("confidence", 0.0))
    n_wrong = min(len(wrong), max(n // 2, n - len(right)))
    n_right = min(len(right), n - n_wrong)
    return wrong[:n_wrong] + [right[k * len(right) // n_right] for k in range(n_right)]


def render_page(
    title: str, records: Sequence[dict], predictions: Sequence[dict], explained: Sequence[TokenSaliency]
) -> str:
    """A self-contained HTML page: per example its gold and predicted label, confidence, and its text
    with each token's background as opaque as its saliency (the score also shows on hover)."""
    blocks = []
    for record, prediction, saliency in zip(records, predictions, explained):
        ok = prediction["label"] == record["label"]
        meta = (
            f"<span class='id'>{html.escape(str(record.get('id', '')))}</span> gold <strong>"
            f"{html.escape(record['label'])}</strong> · predicted <strong>{html.escape(prediction['label'])}</strong> "
            f"({prediction.get('confidence', float('nan')):.2f}) {'&#10003;' if ok else '&#10007;'}"
        )
        texts = [record["text"], record.get("text_b")]
        lines = [
            f"<p>{_highlight(text, saliency, segment)}</p>" for segment, text in enumerate(texts) if text is not None
        ]
        verdict = "right" if ok else "wrong"
        blocks.append(f"<div class='ex {verdict}'><div class='meta'>{meta}</div>{''.join(lines)}</div>")
    return _PAGE.format(title=html.escape(title), body="\n".join(blocks))


def _highlight(text: str, saliency: TokenSaliency, segment: int) -> str:
    """``text`` escaped, its tokens of ``segment`` wrapped in spans shaded by saliency; a truncated tail greyed."""
    encoding, parts, position = saliency.encoding, [], 0
    for token, span, seg, score in zip(encoding.tokens, encoding.offsets, encoding.segment_ids, saliency.scores):
        start, end = span
        if seg != segment or span == NO_SPAN or start < position:
            continue  # another segment, a special token, or a second piece of an already shown character
        parts.append(html.escape(text[position:start]))
        parts.append(
            f"<span class='t' style='background:rgba(230,60,0,{score:.3f})' title='{html.escape(token)} {score:.2f}'>"
            f"{html.escape(text[start:end])}</span>"
        )
        position = end
    if position < len(text):
        parts.append(f"<span class='cut' title='beyond maxlen'>{html.escape(text[position:])}</span>")
    return "".join(parts)


def write_saliency_page(
    model: Any,
    tokenizer: TextTokenizer,
    records: Sequence[dict],
    predictions: Sequence[dict],
    labels: list[str],
    maxlen: int,
    path: Path,
    n: int = 20,
) -> Path:
    """Explain up to ``n`` test predictions (see :func:`pick_examples`) and write the page to ``path``."""
    chosen = pick_examples(records, predictions, n)
    picked, predicted = [records[i] for i in chosen], [predictions[i] for i in chosen]
    explained = explain(model, tokenizer, picked, [labels.index(p["label"]) for p in predicted], maxlen)
    title = f"Token saliency: {len(chosen)} of {len(records)} test examples (wrong ones first)"
    return write_text(path, render_page(title, picked, predicted, explained))


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; max-width: 60em; margin: 2em auto; line-height: 1.9; }}
.ex {{ border-left: 4px solid #2a2; padding: 0.2em 0.8em; margin: 1em 0; }}
.ex.wrong {{ border-color: #c22; }}
.meta {{ font-size: 0.85em; color: #444; }}
.id {{ font-family: monospace; }}
.t {{ border-radius: 3px; }}
.cut {{ color: #aaa; }}
</style></head><body>
<h1>{title}</h1>
<p>Background: how much the predicted class's probability moves with each token's embedding
(gradient L2 norm, the most salient token of each example darkest). Grey text was cut off by maxlen.</p>
{body}
</body></html>
"""

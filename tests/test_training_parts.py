"""Pure pieces of training and tracking on hand-made inputs: batching, schedule, metrics, flattening."""

from __future__ import annotations

import random

import numpy as np
import pytest

from pipeline.training.batching import bucketed_batches, collate, pad


@pytest.mark.unit
def test_bucketed_batches_cover_every_index_once_and_cut_padding() -> None:
    rng = random.Random(0)
    lengths = [rng.randint(3, 60) for _ in range(1000)]
    batches = bucketed_batches(lengths, 16, random.Random(1), bucket_batches=10)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(1000))
    assert all(len(batch) <= 16 for batch in batches)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    naive = sum(16 * max(lengths[i : i + 16]) for i in range(0, 1000, 16))
    assert padded < 0.75 * naive
    assert bucketed_batches(lengths, 16, random.Random(1), 10) == batches


@pytest.mark.unit
def test_prediction_batches_are_sorted_by_length() -> None:
    batches = bucketed_batches([5, 1, 3, 2], 2, rng=None)
    assert batches == [[1, 3], [2, 0]]


@pytest.mark.unit
def test_pad_and_collate() -> None:
    assert pad([[1, 2, 3], [4]]).tolist() == [[1, 2, 3], [4, 0, 0]]
    features = [
        {"token_ids": [2, 7, 3], "segment_ids": [0, 0, 0], "target": 1},
        {"token_ids": [2, 3], "segment_ids": [0, 0], "target": 0},
    ]
    (ids, segments), targets = collate(features)
    assert ids.dtype == np.int32 and ids.tolist() == [[2, 7, 3], [2, 3, 0]]
    assert segments.shape == (2, 3) and targets.tolist() == [1, 0]
    sequence_targets = [dict(f, target=[1] * len(f["token_ids"])) for f in features]
    assert collate(sequence_targets)[1].tolist() == [[1, 1, 1], [1, 1, 0]]


@pytest.mark.model
def test_warmup_schedule() -> None:
    from pipeline.training.optimizer import warmup_schedule

    assert warmup_schedule(1000, 0.1) == {100: 1.0, 1000: 0.0}
    assert warmup_schedule(1000, 0.0) == {0: 1.0, 1000: 0.0}
    assert warmup_schedule(5, 1.0) == {5: 1.0, 6: 0.0}


@pytest.mark.model
def test_subsample_is_seeded_and_order_preserving() -> None:
    from pipeline.data.splits import subsample

    records = [{"id": i} for i in range(100)]
    first = subsample(records, 10, seed=3)
    assert first == subsample(records, 10, seed=3) and len(first) == 10
    assert [r["id"] for r in first] == sorted(r["id"] for r in first)
    assert subsample(records, None, 3) is records and subsample(records, 500, 3) is records


@pytest.mark.unit
def test_classification_decode_score_and_baseline() -> None:
    from pipeline.kinds.factory import new_kind
    KIND = new_kind("text_classification")

    labels = ["negative", "positive"]
    outputs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    gold = [{"label": label} for label in ["negative", "positive", "positive", "positive"]]
    predictions = KIND.decode(outputs, gold, labels)
    assert [p["label"] for p in predictions] == ["negative", "positive", "negative", "positive"]
    assert predictions[0]["confidence"] == pytest.approx(0.9)
    scores = KIND.score(gold, predictions, labels)
    assert scores["accuracy"] == pytest.approx(0.75)
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    train = [{"label": "positive"}] * 3 + [{"label": "negative"}]
    baseline = KIND.baseline(train, gold, labels)
    assert baseline["accuracy"] == pytest.approx(0.75)
    assert baseline["macro_f1"] == pytest.approx((0.0 + 2 * 0.75 / 1.75) / 2)
    assert KIND.label_space([{"label": "10"}, {"label": "2"}, {"label": "1"}], None) == ["1", "2", "10"]


@pytest.mark.unit
def test_flatten_gives_dotted_keys() -> None:
    from pipeline.tracking.store import flatten

    assert flatten({"a": 1, "data": {"dir": "x", "carve": {"seed": 3}}}) == {"a": 1, "data.dir": "x", "data.carve.seed": 3}

"""Which epoch's weights training keeps: the best dev score, ties going to the later epoch; a dev score
of 0 after every epoch is reported as a model that learnt nothing."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest


class ScriptedDev:
    """The part of a task kind the dev evaluation calls, scoring each epoch from a script."""

    primary_metric = "f1"

    def __init__(self, scores: list[float]) -> None:
        self.scores = iter(scores)

    def predict(self, model, records, features, labels, batch_size):  # noqa: ANN001 - the kind's signature
        return []

    def score(self, records, predictions, labels) -> dict[str, float]:  # noqa: ANN001
        return {"f1": next(self.scores)}


def run_epochs(tmp_path: Path, scores: list[float]):
    """A DevEvaluation over ``len(scores)`` epochs of a one-weight model whose weight is the epoch number."""
    from pipeline.runtime.tf_runtime import keras
    from pipeline.training.trainer import DevEvaluation

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    evaluation = DevEvaluation(ScriptedDev(scores), [], [], [], 4, tmp_path / "best.weights.h5", lambda row: None)
    evaluation.set_model(model)
    for epoch, _ in enumerate(scores):
        model.set_weights([np.full((1, 1), epoch + 1.0)])
        evaluation.on_epoch_end(epoch, {"loss": 1.0})
    model.load_weights(str(tmp_path / "best.weights.h5"))
    return evaluation, int(model.get_weights()[0][0, 0])


@pytest.mark.model
def test_ties_keep_the_latest_epoch_with_the_best_dev_score(tmp_path: Path) -> None:
    evaluation, kept = run_epochs(tmp_path, [0.5, 0.7, 0.7, 0.6])
    assert kept == 3 and evaluation.best["epoch"] == 3


@pytest.mark.model
def test_a_dev_score_of_zero_at_every_epoch_keeps_the_last_and_warns(tmp_path: Path, caplog) -> None:
    from pipeline.training.trainer import warn_if_nothing_learnt

    evaluation, kept = run_epochs(tmp_path, [0.0, 0.0, 0.0])
    assert kept == 3
    with caplog.at_level(logging.WARNING, logger="pipeline.training.trainer"):
        assert warn_if_nothing_learnt(evaluation)
    assert "dev f1 was 0 after each of the 3 epochs: the model learnt nothing" in caplog.text
    learnt, _ = run_epochs(tmp_path, [0.0, 0.2])
    assert not warn_if_nothing_learnt(learnt)

"""An interrupted training resumes from its last completed epoch with the same model, optimizer state
(Adam moments and the step that drives the learning-rate schedule), dev history and best weights;
a state of another training, or a save cut short, is never resumed from. Real bert4keras training
on a tiny random BERT."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from pipeline.config.loading import load_params
from tests.tiny_project import make_tiny_backbone

pytestmark = pytest.mark.model

EPOCHS = 3


@pytest.fixture(scope="module")
def setup(module_tmp: Path, zh_vocab: Path) -> dict:
    from pipeline.kinds.factory import build_kind
    from pipeline.text.tokenization import build_tokenizer
    from pipeline.training.trainer import encode_all

    backbone = make_tiny_backbone(module_tmp / "tiny", zh_vocab)
    cfg = load_params().task("zh_sentiment").model_copy(update={"epochs": EPOCHS, "batch_size": 8, "maxlen": 24})
    kind = build_kind(cfg)
    rng = random.Random(0)
    good, bad = "好棒赞美喜欢满意", "差烂坏糟讨厌失望"
    records = [
        {"id": f"r{i}", "label": label, "text": "".join(rng.choice(chars) for _ in range(rng.randint(4, 20)))}
        for i in range(48)
        for label, chars in [("positive" if i % 2 else "negative", good if i % 2 else bad)]
    ]
    labels = kind.label_space(records, cfg)
    tokenizer = build_tokenizer("zh", backbone / "vocab.txt", True)
    features = encode_all(kind, records, tokenizer, labels, cfg.maxlen, "train")
    return {"backbone": backbone, "cfg": cfg, "kind": kind, "records": records, "labels": labels, "features": features}


def _model(setup: dict):
    from pipeline.runtime import tf_runtime
    from pipeline.training.modeling import build_task_model

    tf_runtime.set_seed(setup["cfg"].seed)
    backbone = setup["backbone"]
    return build_task_model(setup["kind"], backbone / "bert_config.json", backbone / "bert_model.ckpt", "bert",
                            setup["labels"], setup["cfg"])


def _train(setup: dict, work: Path, checkpoints, on_epoch=lambda row, model: None):
    from pipeline.training.trainer import DevEvaluation, fit

    model = _model(setup)
    evaluation = DevEvaluation(setup["kind"], setup["records"][:16], setup["features"][:16], setup["labels"], 8,
                               work / "model.weights.h5", lambda row: on_epoch(row, model))
    work.mkdir(parents=True, exist_ok=True)
    resumed = fit(setup["kind"], model, setup["cfg"], setup["features"], evaluation, checkpoints)
    return model, evaluation, resumed


class Interrupted(KeyboardInterrupt):
    pass


def test_interrupted_training_resumes_with_the_same_state(setup: dict, tmp_path: Path) -> None:
    from pipeline.training.checkpoints import TrainingCheckpoints

    checkpoints = TrainingCheckpoints(tmp_path / "checkpoints", "fingerprint-1")
    saved: dict = {}

    def interrupt_in_epoch_2(row: dict, model) -> None:
        if row["epoch"] == 1:
            saved.update(weights=[w.copy() for w in model.get_weights()],
                         optimizer=[w.copy() for w in model.optimizer.get_weights()],
                         step=int(model.optimizer.iterations.numpy()), row=dict(row))
        if row["epoch"] == 2:
            raise Interrupted  # before epoch 2's state is saved: as if killed during epoch 2

    with pytest.raises(Interrupted):
        _train(setup, tmp_path / "work", checkpoints, interrupt_in_epoch_2)
    state = checkpoints.state()
    assert state["epochs_done"] == 1 and state["history"] == [saved["row"]]

    # what a restore puts back: exactly the weights, Adam moments and step of the end of epoch 1
    from pipeline.training.optimizer import build_optimizer

    model = _model(setup)
    model.compile(loss=setup["kind"].loss(model), optimizer=build_optimizer(1e-3, 0.01, 18, 0.1))
    checkpoints.restore(model, state, tmp_path / "restored" / "model.weights.h5")
    assert int(model.optimizer.iterations.numpy()) == saved["step"] == 6  # 48 examples / 8 per batch
    for restored, original in zip(model.optimizer.get_weights(), saved["optimizer"]):
        np.testing.assert_array_equal(restored, original)
    for restored, original in zip(model.get_weights(), saved["weights"]):
        np.testing.assert_array_equal(restored, original)
    assert (tmp_path / "restored" / "model.weights.h5").is_file()

    # the second attempt trains epochs 2 and 3 only, and its history continues the first one's
    model, evaluation, resumed = _train(setup, tmp_path / "work2", checkpoints)
    assert resumed == 1
    assert [row["epoch"] for row in evaluation.history] == [1, 2, 3]
    assert evaluation.history[0] == saved["row"]
    assert int(model.optimizer.iterations.numpy()) == 3 * 6
    assert checkpoints.state()["epochs_done"] == 3

    # ... and equals, to the last bit, the history and weights of the same training never interrupted:
    # the dropout masks and batch order of epochs 2-3 are the ones an uninterrupted run draws
    straight, straight_evaluation, _ = _train(setup, tmp_path / "work3", None)
    assert _without_time(evaluation.history) == _without_time(straight_evaluation.history)
    for resumed_weights, straight_weights in zip(model.get_weights(), straight.get_weights()):
        np.testing.assert_array_equal(resumed_weights, straight_weights)


def _without_time(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def test_every_random_layer_is_part_of_the_training_checkpoint(setup: dict, tmp_path: Path) -> None:
    """Dropout (the backbone's, the attention probabilities', the head's) draws from generators that
    the epoch checkpoint saves; restoring one puts back the exact random stream."""
    from pipeline.runtime.tf_runtime import random_generators, tf
    from pipeline.training.checkpoints import training_state
    from pipeline.training.optimizer import build_optimizer

    model = _model(setup)
    model.compile(loss=setup["kind"].loss(model), optimizer=build_optimizer(1e-3, 0.01, 18, 0.1))
    generators = random_generators(model)
    tiny_layers = 2  # per transformer layer: attention-output, attention-probabilities and feed-forward dropout
    assert len(generators) >= 1 + 3 * tiny_layers + 1, sorted(generators)
    path = training_state(model).write(str(tmp_path / "ckpt"))
    saved_names = {name for name, _ in tf.train.list_variables(path)}
    assert sum(name.startswith("random/") for name in saved_names) == len(generators)
    before = [g.state.numpy().copy() for g in generators.values()]
    for generator in generators.values():
        generator.normal([3])  # move every stream on
    training_state(model).read(path).assert_existing_objects_matched()
    for generator, state in zip(generators.values(), before):
        np.testing.assert_array_equal(generator.state.numpy(), state)


def test_another_trainings_state_or_a_cut_short_save_is_not_resumed(setup: dict, tmp_path: Path) -> None:
    from pipeline.training.checkpoints import STATE, TrainingCheckpoints

    checkpoints = TrainingCheckpoints(tmp_path / "checkpoints", "fingerprint-A")
    _train(setup, tmp_path / "work", checkpoints)
    assert checkpoints.state()["epochs_done"] == EPOCHS
    assert TrainingCheckpoints(tmp_path / "checkpoints", "fingerprint-B").state() is None

    state_file = tmp_path / "checkpoints" / STATE
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "checkpoint": "epoch-99"}))  # names a save that never completed
    assert checkpoints.state() is None
    model, evaluation, resumed = _train(setup, tmp_path / "work2", checkpoints)
    assert resumed == 0 and [row["epoch"] for row in evaluation.history] == [1, 2, 3]


def test_fingerprint_changes_with_params_data_and_labels(setup: dict, tmp_path: Path) -> None:
    from pipeline.training.checkpoints import fingerprint

    data = tmp_path / "train.jsonl"
    data.write_text('{"text": "a"}\n')
    cfg, labels = setup["cfg"], setup["labels"]
    base = fingerprint(cfg, labels, [data])
    assert fingerprint(cfg, labels, [data]) == base
    assert fingerprint(cfg.model_copy(update={"learning_rate": 1e-3}), labels, [data]) != base
    assert fingerprint(cfg, labels[::-1], [data]) != base
    data.write_text('{"text": "b"}\n')
    assert fingerprint(cfg, labels, [data]) != base


def test_epochs_without_gain_counts_from_the_last_real_gain() -> None:
    from pipeline.training.trainer import epochs_without_gain

    rows = [{"dev_f1": value} for value in (0.50, 0.60, 0.605, 0.59)]
    assert epochs_without_gain(rows[:2], "f1", 0.0) == 0
    assert epochs_without_gain(rows, "f1", 0.0) == 1  # 0.605 was a gain, 0.59 was not
    assert epochs_without_gain(rows, "f1", 0.01) == 2  # 0.605 gained less than min_delta over 0.60
    assert epochs_without_gain([], "f1", 0.0) == 0


def test_early_stopping_ends_a_stalled_training_and_stays_ended_on_resume(setup: dict, tmp_path: Path) -> None:
    from pipeline.config.schema import EarlyStopping
    from pipeline.training.checkpoints import TrainingCheckpoints

    # no epoch can gain more than 1.0 in accuracy: the second epoch is the first without gain
    stopping = {**setup, "cfg": setup["cfg"].model_copy(update={"early_stopping": EarlyStopping(patience=1, min_delta=1.0)})}
    checkpoints = TrainingCheckpoints(tmp_path / "checkpoints", "fingerprint-early")
    model, evaluation, _ = _train(stopping, tmp_path / "work", checkpoints)
    assert EPOCHS == 3 and [row["epoch"] for row in evaluation.history] == [1, 2]
    assert int(model.optimizer.iterations.numpy()) == 2 * 6
    assert checkpoints.state()["epochs_done"] == 2

    # run again (as `dvc repro` after a kill at the end): the stopped training is not continued
    again, evaluation, resumed = _train(stopping, tmp_path / "work2", checkpoints)
    assert resumed == 2
    assert [row["epoch"] for row in evaluation.history] == [1, 2]
    assert int(again.optimizer.iterations.numpy()) == 2 * 6


def test_a_training_with_every_technique_resumes_to_the_same_weights(setup: dict, tmp_path: Path) -> None:
    """Gradual unfreezing (after epoch 1), layer-wise rates, FGM and the weight average (saved in the
    training checkpoint) resume exactly as the same training never interrupted."""
    from pipeline.config.finetuning import Adversarial, WeightAveraging
    from pipeline.training.averaging import average_of
    from pipeline.training.checkpoints import TrainingCheckpoints

    cfg = setup["cfg"].model_copy(update={
        "unfreeze_after_epochs": 1, "layerwise_lr_decay": 0.8, "ema": WeightAveraging(decay=0.9),
        "adversarial": Adversarial(method="fgm", epsilon=0.5),
    })
    variant = {**setup, "cfg": cfg}
    checkpoints = TrainingCheckpoints(tmp_path / "checkpoints", "fingerprint-techniques")

    def interrupt_in_epoch_2(row: dict, model) -> None:
        if row["epoch"] == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        _train(variant, tmp_path / "work", checkpoints, interrupt_in_epoch_2)
    model, evaluation, resumed = _train(variant, tmp_path / "work2", checkpoints)
    assert resumed == 1
    straight, straight_evaluation, _ = _train(variant, tmp_path / "work3", None)
    assert _without_time(evaluation.history) == _without_time(straight_evaluation.history)
    for resumed_weights, straight_weights in zip(model.get_weights(), straight.get_weights()):
        np.testing.assert_array_equal(resumed_weights, straight_weights)
    for resumed_average, straight_average in zip(average_of(model).averaged(), average_of(straight).averaged()):
        np.testing.assert_array_equal(resumed_average, straight_average)


@pytest.mark.parametrize("adversarial", [None, {"method": "fgm", "epsilon": 0.5}], ids=["plain", "fgm"])
def test_mixed_float16_trains_with_loss_scaling(setup: dict, tmp_path: Path, adversarial: dict | None) -> None:
    """``precision: mixed_float16`` (for GPUs of compute capability 7.x): Keras wraps the AdamW in dynamic
    loss scaling (FGM's own step scales and unscales too), and the model learns (on a CPU float16 is
    emulated, so this checks behaviour, not speed)."""
    from pipeline.config.schema import TaskConfig
    from pipeline.runtime.tf_runtime import keras, set_precision
    from pipeline.training.trainer import DevEvaluation, fit

    cfg = TaskConfig.model_validate({**setup["cfg"].model_dump(), "precision": "mixed_float16", "learning_rate": 2e-3,
                                     "epochs": 4, "adversarial": adversarial})
    assert set_precision(cfg.precision)[0] == "mixed_float16"
    try:
        model = _model({**setup, "cfg": cfg})
        assert any(layer.compute_dtype == "float16" for layer in model.layers)
        evaluation = DevEvaluation(setup["kind"], setup["records"][:16], setup["features"][:16], setup["labels"], 8,
                                   tmp_path / "model.weights.h5", lambda row: None)
        fit(setup["kind"], model, cfg, setup["features"], evaluation)
        assert isinstance(model.optimizer, keras.mixed_precision.LossScaleOptimizer)
        losses = [row["loss"] for row in evaluation.history]
        assert all(np.isfinite(losses)) and losses[-1] < 0.8 * losses[0], losses
    finally:
        keras.mixed_precision.set_global_policy("float32")

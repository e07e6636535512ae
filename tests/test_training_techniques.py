"""The fine-tuning techniques of params.yaml on a tiny random BERT: what trains (frozen, top layers,
gradual unfreezing), layer-wise learning rates, the weight average, FGM and the CRF's learning rate."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from pipeline.config.finetuning import FeatureHead, TopLayers, WeightAveraging
from pipeline.config.loading import load_params
from tests.tiny_project import make_tiny_backbone

pytestmark = pytest.mark.model

GOOD, BAD = "好棒赞美喜欢满意", "差烂坏糟讨厌失望"


@pytest.fixture(scope="module")
def tiny(module_tmp: Path, zh_vocab: Path) -> Path:
    return make_tiny_backbone(module_tmp / "tiny", zh_vocab)


def sentiment_records(count: int = 32) -> list[dict]:
    rng = random.Random(0)
    return [
        {"id": f"r{i}", "label": "positive" if i % 2 else "negative",
         "text": "".join(rng.choice(GOOD if i % 2 else BAD) for _ in range(rng.randint(4, 12)))}
        for i in range(count)
    ]


def build(tiny: Path, task: str = "zh_sentiment", records: list[dict] | None = None, **update):
    """A compiled-ready model of ``task``'s kind with ``update`` applied to its config, and its features."""
    from pipeline.kinds.factory import build_kind
    from pipeline.runtime import tf_runtime
    from pipeline.text.tokenization import build_tokenizer
    from pipeline.training.modeling import build_task_model
    from pipeline.training.trainer import encode_all

    cfg = load_params().task(task).model_copy(update={"epochs": 2, "batch_size": 8, "maxlen": 24, "seed": 1,
                                                      "warmup_proportion": 0.0, "weight_decay": 0.0, **update})
    kind = build_kind(cfg)
    records = records or sentiment_records()
    labels = kind.label_space(records, cfg)
    tf_runtime.set_seed(cfg.seed)
    model = build_task_model(kind, tiny / "bert_config.json", tiny / "bert_model.ckpt", "bert", labels, cfg)
    features = encode_all(kind, records, build_tokenizer("zh", tiny / "vocab.txt", True), labels, cfg.maxlen, "t")
    return model, cfg, kind, records, labels, features


def train(tiny: Path, tmp_path: Path, **update):
    """Train 2 epochs on the sentiment toy set; the model (raw weights) and its dev evaluation."""
    from pipeline.training.trainer import DevEvaluation, fit

    model, cfg, kind, records, labels, features = build(tiny, **update)
    before = {w.name: w.numpy().copy() for w in model.weights}
    evaluation = DevEvaluation(kind, records[:8], features[:8], labels, 8, tmp_path / "best.weights.h5", lambda row: None)
    fit(kind, model, cfg, features, evaluation)
    return model, before, evaluation


def changed(model, before: dict, prefix: str) -> list[bool]:
    return [not np.array_equal(w.numpy(), before[w.name]) for w in model.weights if w.name.startswith(prefix)]


def test_a_frozen_backbone_keeps_every_weight_while_the_feature_head_learns(tiny: Path, tmp_path: Path) -> None:
    features = FeatureHead(last_layers=2, combine="concat", bilstm_units=8)
    model, before, evaluation = train(tiny, tmp_path, backbone_training="frozen", features=features)
    assert model.get_layer("Features-BiLSTM") is not None and model.get_layer("Features-concat") is not None
    backbone = changed(model, before, "Embedding-") + changed(model, before, "Transformer-")
    assert backbone and not any(backbone), "a frozen backbone's weights are identical after training"
    # (the forward LSTM's recurrent kernel gets no gradient at [CLS], its first step: any, not all)
    assert any(changed(model, before, "Features-BiLSTM")) and all(changed(model, before, "label-probs"))
    assert len(evaluation.history) == 2


def test_top_layers_trains_only_the_top_transformer_layers(tiny: Path, tmp_path: Path) -> None:
    model, before, _ = train(tiny, tmp_path, backbone_training=TopLayers(top_layers=1))
    assert not any(changed(model, before, "Embedding-")) and not any(changed(model, before, "Transformer-0-"))
    assert all(changed(model, before, "Transformer-1-FeedForward"))


def test_gradual_unfreezing_trains_the_head_first_then_everything(tiny: Path, tmp_path: Path) -> None:
    from pipeline.training.trainer import DevEvaluation, fit

    model, cfg, kind, records, labels, features = build(tiny, unfreeze_after_epochs=1)
    before = {w.name: w.numpy().copy() for w in model.weights}
    after_epoch_1: dict = {}

    def snapshot(row: dict) -> None:
        if row["epoch"] == 1:
            after_epoch_1.update({w.name: w.numpy().copy() for w in model.weights})

    evaluation = DevEvaluation(kind, records[:8], features[:8], labels, 8, tmp_path / "best.weights.h5", snapshot)
    fit(kind, model, cfg, features, evaluation)
    layer_0 = [w.name for w in model.weights if w.name.startswith("Transformer-0-")]
    assert all(np.array_equal(after_epoch_1[name], before[name]) for name in layer_0), "epoch 1: head only"
    assert not np.array_equal(after_epoch_1["label-probs/kernel:0"], before["label-probs/kernel:0"])
    assert all(changed(model, after_epoch_1, "Transformer-0-MultiHeadSelfAttention")), "epoch 2: everything"


def test_layerwise_decay_scales_each_layers_learning_rate(tiny: Path) -> None:
    """The same step from the same weights moves each weight by multiplier x what it moves without the
    decay (Adam's update is linear in the learning rate): the top layer and the head x1, the layer below
    x d, the embeddings x d^2."""
    from pipeline.training.batching import TrainingBatches
    from pipeline.training.loop import compiled_train_step
    from pipeline.training.optimizer import build_optimizer

    decay = 0.5
    expected = {"Transformer-1-": 1.0, "Transformer-0-": decay, "Embedding-Token": decay ** 2, "label-probs": 1.0}
    moves = []
    for layerwise in (None, decay):
        model, cfg, kind, records, labels, features = build(tiny)
        model.compile(loss=kind.loss(model), optimizer=build_optimizer(1e-3, 0.01, 100, 0.0, layerwise, 2))
        if layerwise:
            for prefix, multiplier in expected.items():
                variables = [v for v in model.trainable_variables if v.name.startswith(prefix)]
                assert variables and all(model.optimizer.learning_rate_multiplier(v) == multiplier
                                         for v in variables), prefix
        before = {v.name: v.numpy().copy() for v in model.trainable_variables}
        batch = next(TrainingBatches(features, 8, 1, kind.train_inputs).forever())
        compiled_train_step(model, batch)(batch)
        moves.append({v.name: v.numpy() - before[v.name] for v in model.trainable_variables})
    plain, decayed = moves
    for prefix, multiplier in expected.items():
        for name in (name for name in plain if name.startswith(prefix)):
            np.testing.assert_allclose(decayed[name], multiplier * plain[name], rtol=1e-3, atol=1e-8, err_msg=name)


def test_the_weight_average_is_the_bias_corrected_average_of_the_weights_seen() -> None:
    """avg_t = sum_k (1-d) d^(t-k) w_k / (1 - d^t); the raw weights before any step (no division by 1 - d^0,
    bert4keras issue 332)."""
    from pipeline.runtime.tf_runtime import keras, tf
    from pipeline.training.averaging import attach_average
    from pipeline.training.loop import compiled_train_step

    tf.random.set_seed(0)
    model = keras.Sequential([keras.layers.Dense(3, input_shape=(4,))])
    model.compile(loss="mse", optimizer=keras.optimizers.legacy.SGD(0.1))
    decay = 0.7
    average = attach_average(model, decay)
    start = [w.copy() for w in model.get_weights()]
    for got, want in zip(average.averaged(), start):
        np.testing.assert_array_equal(got, want)
    rng = np.random.default_rng(0)
    batch = (rng.normal(size=(8, 4)).astype("float32"), rng.normal(size=(8, 3)).astype("float32"))
    step, seen = compiled_train_step(model, batch), []
    for _ in range(5):
        step(batch)
        seen.append([w.copy() for w in model.get_weights()])
    t = len(seen)
    for index, got in enumerate(average.averaged()):
        want = sum((1 - decay) * decay ** (t - 1 - k) * seen[k][index] for k in range(t)) / (1 - decay ** t)
        np.testing.assert_allclose(got, want, rtol=1e-5)
    raw = [w.copy() for w in model.get_weights()]
    with average.applied():
        for got, want in zip(model.get_weights(), average.averaged()):
            np.testing.assert_allclose(got, want, rtol=1e-6)
    for got, want in zip(model.get_weights(), raw):
        np.testing.assert_array_equal(got, want)


def test_ema_evaluates_and_saves_the_averaged_weights(tiny: Path, tmp_path: Path) -> None:
    from pipeline.training.averaging import average_of
    from pipeline.training.trainer import DevEvaluation, fit

    model, cfg, kind, records, labels, features = build(tiny, ema=WeightAveraging(decay=0.9))
    seen: dict[int, tuple] = {}

    def record(row: dict) -> None:  # called inside the evaluation: the model holds the averaged weights
        seen[row["epoch"]] = ([w.copy() for w in model.get_weights()], average_of(model).averaged())

    evaluation = DevEvaluation(kind, records[:8], features[:8], labels, 8, tmp_path / "best.weights.h5", record)
    fit(kind, model, cfg, features, evaluation)
    in_use, averaged = seen[evaluation.best["epoch"]]
    targets = {id(w): index for index, w in enumerate(average_of(model).targets)}
    for weight, value in zip(model.weights, in_use):
        if id(weight) in targets:
            np.testing.assert_allclose(value, averaged[targets[id(weight)]], rtol=1e-6)
    raw = [w.copy() for w in model.get_weights()]
    assert any(not np.allclose(a, b) for a, b in zip(raw, seen[2][0])), "training goes on with the raw weights"
    model.load_weights(str(tmp_path / "best.weights.h5"))
    for saved, value in zip(model.get_weights(), in_use):
        np.testing.assert_array_equal(saved, value)


def test_fgm_trains_on_perturbed_embeddings_and_logs_the_clean_loss(tiny: Path) -> None:
    """With a frozen backbone (no dropout) the clean loss of a step is deterministic: FGM's step logs it
    too, moves the head differently, and leaves the frozen embeddings as they were."""
    from pipeline.training.batching import TrainingBatches
    from pipeline.training.loop import compiled_train_step, use_train_step
    from pipeline.training.adversarial import fgm_train_step
    from pipeline.training.optimizer import build_optimizer

    results = []
    for epsilon in (None, 5.0):
        model, cfg, kind, records, labels, features = build(tiny, backbone_training="frozen")
        model.compile(loss=kind.loss(model), optimizer=build_optimizer(1e-2, 0.0, 100, 0.0))
        if epsilon:
            use_train_step(model, fgm_train_step(model, epsilon))
        embeddings = model.get_layer("Embedding-Token").embeddings.numpy().copy()
        batch = next(TrainingBatches(features, 8, 1, kind.train_inputs).forever())
        logs = compiled_train_step(model, batch)(batch)
        np.testing.assert_allclose(model.get_layer("Embedding-Token").embeddings.numpy(), embeddings, atol=1e-6)
        results.append((float(logs["loss"]), model.get_layer("label-probs").get_weights()[0]))
    (plain_loss, plain_head), (fgm_loss, fgm_head) = results
    assert fgm_loss == pytest.approx(plain_loss, rel=1e-5)
    assert not np.allclose(plain_head, fgm_head)


@pytest.mark.parametrize("multiplier", [1.0, 100.0])
def test_the_crf_transitions_move_at_the_configured_learning_rate(tiny: Path, multiplier: float) -> None:
    """Adam's first step moves the stored transitions by lr; the CRF multiplies them by its multiplier, so
    the transitions it decodes with move by lr x crf_lr_multiplier (bert4keras issue 144 left them still)."""
    from pipeline.kinds.sequence_labeling.decoding import crf_transitions
    from pipeline.training.batching import TrainingBatches
    from pipeline.training.loop import compiled_train_step
    from pipeline.training.optimizer import build_optimizer

    text = "张三在北京工作，李四去上海"
    records = [{"id": f"n{i}", "text": text, "entities": [
        {"start": 0, "end": 2, "type": "name", "text": "张三"}, {"start": 3, "end": 5, "type": "address", "text": "北京"},
    ]} for i in range(8)]
    lr = 1e-3
    model, cfg, kind, records, labels, features = build(tiny, "cluener", records, head={"crf_lr_multiplier": multiplier})
    model.compile(loss=kind.loss(model), optimizer=build_optimizer(lr, 0.0, 100, 0.0))
    before = crf_transitions(model).copy()
    batch = next(TrainingBatches(features, 8, 1, kind.train_inputs).forever())
    compiled_train_step(model, batch)(batch)
    moved = np.abs(crf_transitions(model) - before)
    assert moved.max() == pytest.approx(lr * multiplier, rel=0.05)

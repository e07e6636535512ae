"""The speed paths change no result: ``precision: auto`` picks bfloat16 only on hardware that computes it,
the epoch loop trains exactly as ``model.fit`` does, and each training step is traced once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.runtime.precision import cpu_flags, resolve_precision

ZEN5 = frozenset({"avx512f", "avx512_bf16", "avx512_vnni"})
XEON_VNNI = frozenset({"avx512f", "avx512_vnni"})
SAPPHIRE_RAPIDS = frozenset({"avx512f", "amx_bf16", "amx_tile"})


@pytest.mark.unit
@pytest.mark.parametrize(
    "flags, gpu, expected",
    [
        (ZEN5, None, "mixed_bfloat16"),
        (SAPPHIRE_RAPIDS, None, "mixed_bfloat16"),
        (XEON_VNNI, None, "float32"),
        (frozenset(), None, "float32"),
        (XEON_VNNI, (8, 0), "mixed_bfloat16"),  # an Ampere-or-later GPU decides, not the host CPU
        (ZEN5, (7, 5), "mixed_float16"),  # a T4: float16 tensor cores, no bfloat16
        (ZEN5, (6, 1), "float32"),
    ],
)
def test_auto_picks_a_16_bit_type_only_where_the_hardware_computes_it(flags, gpu, expected) -> None:
    policy, why = resolve_precision("auto", flags=flags, gpu=gpu)
    assert policy == expected
    assert why.startswith("auto: ")


@pytest.mark.unit
def test_an_explicit_precision_is_kept_and_emulated_bfloat16_warns(caplog) -> None:
    assert resolve_precision("float32", flags=ZEN5)[0] == "float32"
    assert resolve_precision("mixed_bfloat16", flags=ZEN5)[0] == "mixed_bfloat16"
    assert not caplog.records
    assert resolve_precision("mixed_bfloat16", flags=XEON_VNNI)[0] == "mixed_bfloat16"
    assert "emulated" in caplog.text
    caplog.clear()
    assert resolve_precision("mixed_float16", flags=ZEN5, gpu=(7, 5))[0] == "mixed_float16"
    assert not caplog.records
    assert resolve_precision("mixed_float16", flags=ZEN5)[0] == "mixed_float16"
    assert "float16 is emulated" in caplog.text
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("float16", flags=ZEN5)


@pytest.mark.unit
def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx512f avx512_bf16\n\n"
                       "processor\t: 1\nflags\t\t: fpu avx512f avx512_bf16\n", encoding="utf-8")
    assert cpu_flags(cpuinfo) == {"fpu", "avx512f", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


@pytest.mark.model
def test_class_weight_becomes_per_example_weights() -> None:
    from pipeline.training.loop import class_weight_table, with_class_weight

    inputs, targets = [np.zeros((3, 4), np.int32)], np.array([0, 2, 0])
    batch = with_class_weight((inputs, targets), class_weight_table({0: 0.5, 2: 3.0}))
    assert batch[2].tolist() == [0.5, 3.0, 0.5] and batch[2].dtype == np.float32
    assert with_class_weight((inputs, targets), class_weight_table(None)) == (inputs, targets)
    assert with_class_weight((inputs,), class_weight_table({0: 1.0})) == (inputs,)


def _toy_model(seed: int):
    from pipeline.runtime.tf_runtime import keras, set_seed

    set_seed(seed)
    ids = keras.layers.Input((None,), dtype="int32")
    hidden = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(20, 8)(ids))
    hidden = keras.layers.Dropout(0.3)(hidden)
    model = keras.Model(ids, keras.layers.Dense(3, activation="softmax")(hidden))
    model.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.legacy.Adam(0.05))
    return model


def _toy_batches(n: int = 12):
    rng = np.random.default_rng(0)
    return [([rng.integers(1, 20, size=(4, int(length))).astype(np.int32)], rng.integers(0, 3, size=4))
            for length in rng.integers(3, 9, size=n)]


@pytest.mark.model
def test_the_epoch_loop_trains_exactly_as_model_fit() -> None:
    """Same seed, batches (of varying lengths), class weights and callbacks: the same weights and losses."""
    from pipeline.runtime.tf_runtime import keras
    from pipeline.training.loop import run_epochs

    batches, weights = _toy_batches(), {0: 1.0, 1: 2.0, 2: 0.5}

    class Epochs(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.losses: list[float] = []

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.losses.append(round(float(logs["loss"]), 6))

    fitted, fit_epochs = _toy_model(3), Epochs()
    fitted.fit(iter(batches * 3), steps_per_epoch=4, epochs=3, class_weight=weights, callbacks=[fit_epochs], verbose=0)
    looped, loop_epochs = _toy_model(3), Epochs()
    logs = run_epochs(looped, iter(batches * 3), steps_per_epoch=4, epochs=3, callbacks=[loop_epochs],
                      class_weight=weights, verbose=0)
    assert loop_epochs.losses == fit_epochs.losses and logs["loss"] == pytest.approx(fit_epochs.losses[-1], abs=1e-6)
    for ours, theirs in zip(looped.get_weights(), fitted.get_weights()):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)
    assert int(looped.optimizer.iterations.numpy()) == 12


@pytest.mark.model
def test_the_train_step_is_traced_once_for_every_length_and_reused() -> None:
    from pipeline.training.loop import compiled_train_step, run_epochs

    model, batches = _toy_model(1), _toy_batches()
    assert len({batch[0][0].shape[1] for batch in batches}) > 2
    run_epochs(model, iter(batches), steps_per_epoch=6, epochs=1, verbose=0)
    run_epochs(model, iter(batches[6:]), steps_per_epoch=6, epochs=1, verbose=0)
    step = compiled_train_step(model, batches[0])
    assert step.experimental_get_tracing_count() == 1
    assert int(model.optimizer.iterations.numpy()) == 12


@pytest.mark.model
def test_the_fused_adamw_follows_bert4keras_adamw_with_its_schedule() -> None:
    """Same warm-up/decay schedule, bias-corrected Adam and decoupled weight decay (not on biases) as
    bert4keras's AdamW + piecewise-linear rate; only where epsilon enters differs (1e-6, negligible)."""
    from bert4keras.optimizers import Adam, extend_with_piecewise_linear_lr, extend_with_weight_decay

    from pipeline.runtime.tf_runtime import tf
    from pipeline.training.optimizer import NO_DECAY, build_optimizer, warmup_schedule

    reference_class = extend_with_piecewise_linear_lr(extend_with_weight_decay(Adam, "AdamW"), "AdamWLR")
    total, rate, decay = 10, 0.05, 0.1
    reference = reference_class(learning_rate=rate, weight_decay_rate=decay, exclude_from_weight_decay=list(NO_DECAY),
                                lr_schedule=warmup_schedule(total, 0.2))
    ours = build_optimizer(rate, decay, total, 0.2)
    rng = np.random.default_rng(0)
    start = {"kernel": rng.normal(size=(4, 3)).astype(np.float32), "bias": rng.normal(size=3).astype(np.float32)}
    grads = [{name: rng.normal(size=value.shape).astype(np.float32) for name, value in start.items()} for _ in range(total)]
    finals = []
    for optimizer in (reference, ours):
        variables = {name: tf.Variable(value, name=name) for name, value in start.items()}
        for step in grads:
            optimizer.apply_gradients([(tf.constant(step[name]), variables[name]) for name in variables])
        finals.append({name: variable.numpy() for name, variable in variables.items()})
    assert not np.allclose(finals[1]["kernel"], start["kernel"], atol=1e-3)
    for name in start:
        np.testing.assert_allclose(finals[1][name], finals[0][name], rtol=1e-4, atol=1e-5)
    assert ours.decays(tf.Variable(start["kernel"], name="Transformer-0-FeedForward/kernel"))
    assert not ours.decays(tf.Variable(start["bias"], name="Transformer-0-FeedForward-Norm/gamma"))

"""Writing Google-layout BERT backbones: TF1 checkpoints, ``bert_config.json`` and staged directories.

bert4keras reads weights with ``tf.train.load_variable(checkpoint, name)``, i.e. a TF1 name-based
checkpoint whose variable names are Google's (``bert/embeddings/word_embeddings``, ...). Its own
``save_weights_as_checkpoint`` does not work on TF 2.16+, so :func:`write_tf_checkpoint` builds a
throw-away graph of ``tf.compat.v1`` variables and saves it with ``tf.compat.v1.train.Saver``.
TensorFlow is imported only inside that function.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

#: the keys of Google's bert_config.json, in their usual order
BERT_CONFIG_KEYS = (
    "attention_probs_dropout_prob",
    "hidden_act",
    "hidden_dropout_prob",
    "hidden_size",
    "initializer_range",
    "intermediate_size",
    "max_position_embeddings",
    "num_attention_heads",
    "num_hidden_layers",
    "type_vocab_size",
    "vocab_size",
)


def write_tf_checkpoint(arrays: Mapping[str, np.ndarray], prefix: Path) -> Path:
    """Save ``arrays`` as a TF1 checkpoint ``<prefix>.index`` + ``<prefix>.data-*``, names exactly as given.

    The files are written into a temporary directory beside ``prefix`` and moved in afterwards,
    ``.index`` last, so a killed run never leaves a complete-looking half checkpoint.
    """
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{prefix.name}.", dir=prefix.parent) as tmp:
        _save_with_saver(arrays, Path(tmp) / prefix.name)
        index = prefix.with_name(prefix.name + ".index")
        index.unlink(missing_ok=True)
        for written in sorted(Path(tmp).iterdir(), key=lambda path: path.suffix == ".index"):
            os.replace(written, prefix.parent / written.name)
    return prefix


def _save_with_saver(arrays: Mapping[str, np.ndarray], prefix: Path) -> None:
    """Create one placeholder-initialised variable per array in a fresh graph and save them."""
    from pipeline.runtime.tf_runtime import tf

    v1 = tf.compat.v1
    with tf.Graph().as_default():
        feeds, variables = {}, {}
        for name, value in arrays.items():
            value = np.asarray(value)
            placeholder = v1.placeholder(tf.as_dtype(value.dtype), value.shape)
            variables[name] = v1.Variable(placeholder, name="v", trainable=False)
            feeds[placeholder] = value
        saver = v1.train.Saver(var_list=variables, max_to_keep=None)
        with v1.Session() as session:
            session.run(v1.initializers.variables(list(variables.values())), feed_dict=feeds)
            saver.save(session, str(prefix), write_meta_graph=False, write_state=False)


def write_bert_config(config: Mapping[str, Any], path: Path) -> Path:
    """Write a Google-style ``bert_config.json`` (only Google's keys, in their usual order)."""
    missing = [key for key in BERT_CONFIG_KEYS if key not in config]
    if missing:
        raise ValueError(f"BERT config lacks {', '.join(missing)}")
    data = {key: config[key] for key in BERT_CONFIG_KEYS}
    path = Path(path)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def bert_variable_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Google checkpoint name -> shape of every variable of a BERT encoder with pooler."""
    hidden, inner = config["hidden_size"], config["intermediate_size"]
    shapes: dict[str, tuple[int, ...]] = {
        "bert/embeddings/word_embeddings": (config["vocab_size"], hidden),
        "bert/embeddings/token_type_embeddings": (config["type_vocab_size"], hidden),
        "bert/embeddings/position_embeddings": (config["max_position_embeddings"], hidden),
        **_norm("bert/embeddings/LayerNorm", hidden),
        **_dense("bert/pooler/dense", hidden, hidden),
    }
    for index in range(config["num_hidden_layers"]):
        layer = f"bert/encoder/layer_{index}"
        for part in ("query", "key", "value"):
            shapes.update(_dense(f"{layer}/attention/self/{part}", hidden, hidden))
        shapes.update(_dense(f"{layer}/attention/output/dense", hidden, hidden))
        shapes.update(_norm(f"{layer}/attention/output/LayerNorm", hidden))
        shapes.update(_dense(f"{layer}/intermediate/dense", hidden, inner))
        shapes.update(_dense(f"{layer}/output/dense", inner, hidden))
        shapes.update(_norm(f"{layer}/output/LayerNorm", hidden))
    return shapes


def _dense(scope: str, fan_in: int, fan_out: int) -> dict[str, tuple[int, ...]]:
    return {f"{scope}/kernel": (fan_in, fan_out), f"{scope}/bias": (fan_out,)}


def _norm(scope: str, size: int) -> dict[str, tuple[int, ...]]:
    return {f"{scope}/gamma": (size,), f"{scope}/beta": (size,)}


def random_bert_arrays(config: Mapping[str, Any], seed: int) -> dict[str, np.ndarray]:
    """A randomly initialised BERT (float32, Google names): normal(0, initializer_range) weights,
    zero biases and LayerNorm beta, unit LayerNorm gamma."""
    rng = np.random.default_rng(seed)
    scale = float(config.get("initializer_range", 0.02))
    arrays = {}
    for name, shape in bert_variable_shapes(config).items():
        if name.endswith(("/bias", "/beta")):
            value = np.zeros(shape)
        elif name.endswith("/gamma"):
            value = np.ones(shape)
        else:
            value = rng.normal(0.0, scale, size=shape)
        arrays[name] = value.astype(np.float32)
    return arrays


@contextmanager
def staged_dir(out_dir: Path) -> Iterator[Path]:
    """Yield an empty temporary sibling of ``out_dir``; on success it replaces ``out_dir``.

    On any error the temporary directory is removed, so ``out_dir`` is either complete or absent
    (or, if it existed before, untouched).
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        stage.chmod(0o777 & ~_umask())
        yield stage
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(stage, out_dir)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask

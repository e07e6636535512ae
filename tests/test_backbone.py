"""Backbone stage: MiniLM conversion checked against an independent NumPy BERT, the Chinese
re-mapping, the ``path`` preset and the stage's error exit."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from pipeline.backbone.checkpoint import random_bert_arrays, staged_dir, write_bert_config, write_tf_checkpoint
from pipeline.backbone.manifest import BackboneFiles, read_manifest
from pipeline.backbone.minilm import (
    WORD_EMBEDDINGS,
    convert_minilm_en,
    convert_minilm_zh,
    minilm_dir,
    read_vocab,
    remap_embeddings,
)
from pipeline.backbone.path_preset import link_path_backbone, vocab_looks_cased
from pipeline.config.schema import PathBackbone

if TYPE_CHECKING:
    from pipeline.runtime.tf_runtime import tf

# TensorFlow and bert4keras are imported inside the tests: collecting this file (as `pytest -m unit` does)
# must not load them
pytestmark = [
    pytest.mark.model,
    pytest.mark.filterwarnings("ignore:The initializer TruncatedNormal is unseeded:UserWarning"),
]

ROOT = Path(__file__).resolve().parent.parent
erf = np.vectorize(math.erf, otypes=[np.float64])
SENTENCE = "The quick brown fox jumps over the lazy dog, doesn't it?"
TINY_CONFIG = {
    "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 16,
    "initializer_range": 0.02,
    "intermediate_size": 32,
    "max_position_embeddings": 64,
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "type_vocab_size": 2,
    "vocab_size": 12,
}


@pytest.fixture(scope="module")
def minilm_en(module_tmp: Path) -> BackboneFiles:
    return convert_minilm_en(module_tmp / "minilm-en")


@pytest.fixture(scope="module")
def hf_weights() -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(minilm_dir() / "model.safetensors"))


def build(files: BackboneFiles) -> tf.keras.Model:
    import pipeline.runtime.tf_runtime  # noqa: F401, I001  (patches TensorFlow before bert4keras loads it)
    from bert4keras.models import build_transformer_model

    return build_transformer_model(str(files.config), str(files.checkpoint), model="bert")


# --- an independent BERT forward pass over the Hugging Face arrays (float64) -----------------


def _layer_norm(x: np.ndarray, w: dict, prefix: str) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-12) * w[f"{prefix}.weight"] + w[f"{prefix}.bias"]


def _linear(x: np.ndarray, w: dict, prefix: str) -> np.ndarray:
    return x @ w[f"{prefix}.weight"].T + w[f"{prefix}.bias"]


def reference_bert(hf: dict[str, np.ndarray], token_ids: list[int], heads: int = 12) -> np.ndarray:
    """Sequence output of Hugging Face BertModel (eval mode, one unpadded segment-0 sentence)."""
    w = {name: value.astype(np.float64) for name, value in hf.items() if name != "embeddings.position_ids"}
    n = len(token_ids)
    x = (
        w["embeddings.word_embeddings.weight"][token_ids]
        + w["embeddings.position_embeddings.weight"][:n]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    x = _layer_norm(x, w, "embeddings.LayerNorm")
    layer = 0
    while f"encoder.layer.{layer}.attention.self.query.weight" in w:
        p = f"encoder.layer.{layer}"
        q, k, v = (
            _linear(x, w, f"{p}.attention.self.{part}").reshape(n, heads, -1).transpose(1, 0, 2)
            for part in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(1, 0, 2).reshape(n, -1)
        x = _layer_norm(x + _linear(context, w, f"{p}.attention.output.dense"), w, f"{p}.attention.output.LayerNorm")
        inner = _linear(x, w, f"{p}.intermediate.dense")
        inner = 0.5 * inner * (1.0 + erf(inner / np.sqrt(2.0)))
        x = _layer_norm(x + _linear(inner, w, f"{p}.output.dense"), w, f"{p}.output.LayerNorm")
        layer += 1
    return x


# --- (a) minilm-en ---------------------------------------------------------------------------


def test_minilm_en_matches_numpy_reference(minilm_en: BackboneFiles, hf_weights: dict) -> None:
    import pipeline.runtime.tf_runtime  # noqa: F401, I001  (patches TensorFlow before bert4keras loads it)
    from bert4keras.tokenizers import Tokenizer

    assert read_manifest(minilm_en.config.parent) == minilm_en
    assert (minilm_en.model_type, minilm_en.lowercase, minilm_en.preset) == ("bert", True, "minilm-en")
    tokenizer = Tokenizer(str(minilm_en.vocab), do_lower_case=True)
    token_ids, segment_ids = tokenizer.encode(SENTENCE)
    assert tokenizer.id_to_token(token_ids[0]) == "[CLS]" and "[UNK]" not in tokenizer.ids_to_tokens(token_ids)

    model = build(minilm_en)
    output = model.predict([np.array([token_ids]), np.array([segment_ids])], verbose=0)[0]
    expected = reference_bert(hf_weights, token_ids)

    assert output.shape == (len(token_ids), 384)
    np.testing.assert_allclose(output, expected, atol=1e-5, rtol=0)
    print(f"max |bert4keras - numpy| = {np.abs(output - expected).max():.2e}")


def test_minilm_en_checkpoint_names_and_config(minilm_en: BackboneFiles, hf_weights: dict) -> None:
    from pipeline.runtime.tf_runtime import tf

    names = dict(tf.train.list_variables(str(minilm_en.checkpoint)))
    assert len(names) == len(hf_weights) - 1  # everything but embeddings.position_ids
    assert names["bert/encoder/layer_5/intermediate/dense/kernel"] == [384, 1536]
    kernel = tf.train.load_variable(str(minilm_en.checkpoint), "bert/encoder/layer_0/attention/self/query/kernel")
    np.testing.assert_array_equal(kernel, hf_weights["encoder.layer.0.attention.self.query.weight"].T)
    config = json.loads(minilm_en.config.read_text())
    assert (config["vocab_size"], config["num_hidden_layers"], config["hidden_act"]) == (30522, 6, "gelu")


# --- (b) minilm-zh ---------------------------------------------------------------------------


def test_minilm_zh_copies_shared_rows(tmp_path: Path, zh_vocab: Path, en_vocab: Path, hf_weights: dict) -> None:
    from pipeline.runtime.tf_runtime import tf

    files = convert_minilm_zh(tmp_path / "minilm-zh", zh_vocab, "overlap", seed=7)
    table = tf.train.load_variable(str(files.checkpoint), WORD_EMBEDDINGS)
    zh, en = read_vocab(files.vocab), read_vocab(en_vocab)
    english = hf_weights["embeddings.word_embeddings.weight"]

    assert table.shape == (21128, 384) and len(zh) == 21128
    for token in ("的", "[CLS]", "7"):
        np.testing.assert_array_equal(table[zh.index(token)], english[en.index(token)])
    conversion = json.loads((files.config.parent / "conversion.json").read_text())
    assert conversion == {"init": "overlap", "copied_rows": len(set(zh) & set(en)), "total_rows": 21128, "seed": 7}
    assert json.loads(files.config.read_text())["vocab_size"] == 21128
    assert build(files).output.shape[-1] == 384


def test_random_init_copies_nothing_and_is_seeded(zh_vocab: Path, en_vocab: Path, hf_weights: dict) -> None:
    english = hf_weights["embeddings.word_embeddings.weight"]
    zh, en = read_vocab(zh_vocab), read_vocab(en_vocab)
    table, copied = remap_embeddings(english, en, zh, "random", seed=3)
    again, _ = remap_embeddings(english, en, zh, "random", seed=3)

    assert copied == 0 and table.shape == (21128, 384)
    np.testing.assert_array_equal(table, again)
    assert not any(np.array_equal(table[zh.index(t)], english[en.index(t)]) for t in ("的", "[CLS]", "7"))
    np.testing.assert_allclose(table.mean(0), english.mean(0), atol=0.01)


# --- (c) path preset -------------------------------------------------------------------------


def _tiny_google_backbone(directory: Path, vocab: list[str]) -> Path:
    directory.mkdir(parents=True)
    write_bert_config(TINY_CONFIG, directory / "bert_config.json")
    write_tf_checkpoint(random_bert_arrays(TINY_CONFIG, seed=0), directory / "bert_model.ckpt")
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return directory


VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "d", "e", "f", "##s"]


def test_path_preset_links_a_tiny_bert(tmp_path: Path) -> None:
    source = _tiny_google_backbone(tmp_path / "user-bert", VOCAB)
    cfg = PathBackbone(preset="path", path=str(source), model_type="bert")
    files = link_path_backbone(tmp_path / "out" / "tiny", cfg)

    assert sorted(p.name for p in (tmp_path / "out" / "tiny").iterdir()) == ["backbone.json"]
    assert files.checkpoint == source / "bert_model.ckpt" and files.lowercase is True
    model = build(files)
    output = model.predict([np.array([[2, 5, 6, 3]]), np.zeros((1, 4))], verbose=0)
    assert output.shape == (1, 4, 16) and np.isfinite(output).all()


def test_path_preset_names_missing_files(tmp_path: Path) -> None:
    source = _tiny_google_backbone(tmp_path / "user-bert", VOCAB)
    (source / "vocab.txt").unlink()
    cfg = PathBackbone(preset="path", path=str(source), model_type="bert")
    with pytest.raises(FileNotFoundError, match=r"backbones\.mine\.path: .* lacks vocab\.txt"):
        link_path_backbone(tmp_path / "mine", cfg)
    assert not (tmp_path / "mine").exists()


def test_cased_vocab_detection(tmp_path: Path, en_vocab: Path, zh_vocab: Path) -> None:
    cased = tmp_path / "vocab.txt"
    cased.write_text("\n".join(VOCAB + ["The", "Paris", "the", "##A"]) + "\n", encoding="utf-8")
    assert vocab_looks_cased(cased)
    assert not vocab_looks_cased(en_vocab) and not vocab_looks_cased(zh_vocab)


def test_staged_dir_is_complete_or_absent(tmp_path: Path) -> None:
    out = tmp_path / "backbone"
    with pytest.raises(RuntimeError):
        with staged_dir(out) as stage:
            (stage / "half.ckpt.data").write_text("partial")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    out.mkdir()
    (out / "stale.txt").write_text("old")
    with staged_dir(out) as stage:
        (stage / "backbone.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backbone"]
    assert [p.name for p in out.iterdir()] == ["backbone.json"]


# --- (d) the stage entry point ---------------------------------------------------------------


def test_stage_rejects_unknown_backbone_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.stages.backbone", "no-such-backbone"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "no backbone 'no-such-backbone'" in result.stderr and "minilm-en" in result.stderr

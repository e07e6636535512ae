"""Chinese NER in the usual one-character-per-line BIO layout (``中 B-LOC``, a blank line between sentences),
declared as a user would (a task block with ``format: conll``, ``language: zh``, ``backbone: minilm-zh``),
prepared, validated and learnt.

The conll reader once joined tokens with a space in every language: Chinese text became ``中 国 人``, every
other input token was the whitespace placeholder ``[unused1]`` and the model scored F1 0.000. Here short real
CLUENER train sentences (names and companies only) are written char per line and go through params.yaml,
the backbone, prepare and validate stages and the shared trainer: the text must come back as the original
sentence, with no placeholder, and a few epochs on the real minilm-zh must find entities (50-70 s on 2 cores;
over seeds 1, 7, 42 and 2024: train F1 0.62-0.80, best dev F1 0.40-0.43).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.config.loading import load_params
from pipeline.data.readers import ReadReport, read_split
from pipeline.data.readers.cluener import CluenerSource
from pipeline.reporting.files import read_jsonl
from pipeline.text.spans import spans_to_bio
from tests.helpers import edited

TASK = "cluener_chars"
#: two frequent CLUENER types: sentences with at least one entity and no entity of another type are kept
TYPES = {"name", "company"}
MAX_CHARS = 40
SIZES = {"train": 160, "dev": 60, "test": 30}
FILES = {split: f"{split}.char.bio" for split in SIZES}
# learning_rate: 5e-4 and above leave minilm-zh predicting only O on this slice; 3e-4 learns within 3-4 epochs
BLOCK = f"""
tasks:
  {TASK}:                          # CLUENER sentences, one character per line with its BIO tag
    kind: sequence_labeling
    language: zh
    backbone: minilm-zh
    data: {{format: conll, dir: {TASK}, train: {FILES['train']}, dev: {FILES['dev']}, test: {FILES['test']}}}
    maxlen: {MAX_CHARS + 2}
    batch_size: 8
    epochs: 5
    learning_rate: 3.0e-4
    warmup_proportion: 0.0
    head: {{decoder: crf, crf_lr_multiplier: 100.0}}

"""


def cluener_slice(shared_data: Path) -> dict[str, list[dict]]:
    """Short real CLUENER train sentences (see :data:`TYPES`), in file order, cut into train/dev/test."""
    path = shared_data / "zh" / "cluener" / "train.jsonl"
    raw = [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    source = CluenerSource(format="cluener_json", dir=".", train="train.jsonl", dev="dev.jsonl", test="dev.jsonl")
    records = read_split(source, path, "train", ReadReport())
    assert len(records) == len(raw)  # no line skipped: record i is line i
    chosen = [
        record for record, text in zip(records, raw)
        if record["text"] == text and len(text) <= MAX_CHARS and not any(ch.isspace() for ch in text)
        and record["entities"] and {e["type"] for e in record["entities"]} <= TYPES
    ]  # fmt: skip
    assert len(chosen) >= sum(SIZES.values())
    splits, start = {}, 0
    for split, size in SIZES.items():
        splits[split], start = chosen[start : start + size], start + size
    return splits


def write_char_per_line(path: Path, records: list[dict]) -> None:
    """``char TAG`` lines, a blank line after each sentence (the layout of MSRA, People's Daily, Resume NER)."""
    lines = []
    for record in records:
        spans = [(e["start"], e["end"], e["type"]) for e in record["entities"]]
        lines += [f"{char} {tag}" for char, tag in zip(record["text"], spans_to_bio(spans, len(record["text"])))]
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.model
def test_char_per_line_chinese_ner_is_prepared_without_spaces_and_learnt(
    tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.data_health import fatal
    from pipeline.kinds.factory import build_kind
    from pipeline.runtime import tf_runtime
    from pipeline.stages import backbone, prepare, validate
    from pipeline.text.tokenization import SPACE_TOKEN, build_tokenizer
    from pipeline.training.modeling import build_task_model
    from pipeline.training.trainer import DevEvaluation, encode_all, fit

    # the raw files in a data root of their own, and a user's task block in params.yaml
    originals = cluener_slice(shared_data)
    data_root = tmp_path / "data"
    for split, records in originals.items():
        write_char_per_line(data_root / TASK / FILES[split], records)
    path = edited(tmp_path, "\ntasks:\n", BLOCK)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("data_root: ../shared/data", f"data_root: {data_root}", 1), encoding="utf-8")
    params = load_params(path)
    cfg = params.task(TASK)
    assert cfg.data.format == "conll" and cfg.data.join is None  # the separator follows the language

    # the stages, writing under tmp_path: the real minilm-zh (MiniLM layers + the Chinese vocabulary)
    for module in (prepare, validate, fatal):
        monkeypatch.setattr(module, "prepared_dir", lambda task: tmp_path / "prepared" / task)
    monkeypatch.setattr(validate, "reports_dir", lambda task: tmp_path / "reports" / task)
    for module in (backbone, validate):
        monkeypatch.setattr(module, "backbone_dir", lambda name: tmp_path / "backbones" / name)
    files = backbone.build_backbone(params, cfg.backbone)

    # prepare: every sentence is the original text, no space between characters, with the original entities
    summary = prepare.prepare(params, TASK)
    assert summary["records"] == SIZES and summary["skipped"] == {}
    prepared = {split: read_jsonl(tmp_path / "prepared" / TASK / f"{split}.jsonl") for split in SIZES}
    for split, records in prepared.items():
        assert [r["text"] for r in records] == [r["text"] for r in originals[split]], split
        assert [r["entities"] for r in records] == [r["entities"] for r in originals[split]], split

    # no whitespace placeholder: one input token per character, as validate counts them too
    tokenizer = build_tokenizer(cfg.language, files.vocab, files.lowercase)
    for record in prepared["train"]:
        tokens = tokenizer.encode(record["text"], maxlen=cfg.maxlen).tokens
        assert SPACE_TOKEN not in tokens and len(tokens) == len(record["text"]) + 2, (record["text"], tokens)
    health = validate.validate(params, TASK)
    assert health["fatal"] == []
    placeholders = {split: part["tokens"]["space_placeholders"] for split, part in health["splits"].items()}
    assert placeholders == dict.fromkeys(SIZES, 0)

    # a short training through the shared trainer finds entities
    kind = build_kind(cfg)
    train, dev = prepared["train"], prepared["dev"]
    labels = kind.label_space(train, cfg)
    assert labels == ["O", "B-company", "I-company", "B-name", "I-name"]
    train_features = encode_all(kind, train, tokenizer, labels, cfg.maxlen, "train")
    dev_features = encode_all(kind, dev, tokenizer, labels, cfg.maxlen, "dev")
    tf_runtime.set_seed(cfg.seed)
    model = build_task_model(kind, files.config, files.checkpoint, files.model_type, labels, cfg)
    rows: list[dict] = []
    weights = tmp_path / "model.weights.h5"
    evaluation = DevEvaluation(kind, dev, dev_features, labels, cfg.batch_size, weights, rows.append)
    fit(kind, model, cfg, train_features, evaluation)
    predictions = kind.predict(model, train, train_features, labels, 32)
    train_f1 = kind.score(train, predictions, labels)["f1"]
    dev_f1 = [round(row["dev_f1"], 3) for row in rows]
    assert sum(len(p["entities"]) for p in predictions) > 0, dev_f1
    assert train_f1 > 0.3 and max(dev_f1) > 0.2, f"train F1 {train_f1:.3f}, dev F1 per epoch {dev_f1}"

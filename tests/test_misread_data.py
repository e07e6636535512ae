"""Signs of a misread file: whitespace placeholders and [UNK] among input tokens, labels that are
pieces of broken rows, and an exploded label space -- warned about or fatal in the validate stage."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pipeline.config.loading import load_params
from pipeline.config.schema import Params
from pipeline.data.readers import DataError
from pipeline.data_health.misread import misread_problems
from pipeline.data_health.report import split_health, warnings
from pipeline.data_health.tokens import char_count, token_shares
from pipeline.data_health.truncation import char_kept
from pipeline.text.tokenization import read_vocab
from tests.helpers import validate_in

SENTENCES = ["中国人民银行今天宣布降息", "上海市浦东新区发布新规", "北京大学的学生去了杭州"]


@pytest.fixture(scope="module")
def count(zh_vocab: Path):
    return char_count(read_vocab(zh_vocab), lowercase=True)


@pytest.fixture(scope="module")
def params() -> Params:
    return load_params()


def records(texts: list[str], split: str = "train", label: str | None = None) -> list[dict]:
    return [{"id": f"{split}-{i + 1}", "text": t, **({"label": label} if label else {})} for i, t in enumerate(texts)]


def health_of(splits: dict[str, list[dict]], count) -> dict:
    parts = {s: split_health(r, {}, char_kept, 128, "text_classification", count) for s, r in splits.items()}
    return {"splits": parts, "overlap": {}, "dedupe": {}, "label_field": "label"}


@pytest.mark.unit
def test_char_per_line_text_joined_with_spaces_is_half_placeholders(count) -> None:
    """'中 国 人' (a one-character-per-line corpus joined like English) shows up as ~50% [unused1]."""
    spaced = token_shares(records([" ".join(s) for s in SENTENCES]), count)
    plain = token_shares(records(SENTENCES), count)
    assert plain["space_placeholders"] == 0 and plain["space_share"] == 0.0
    assert spaced["space_share"] > 0.45 and spaced["most_spaced_ids"][0].startswith("train-")
    assert spaced["tokens"] == sum(2 * len(s) - 1 for s in SENTENCES)


@pytest.mark.unit
def test_unknown_characters_are_counted_and_warned_about(count) -> None:
    """Characters the vocabulary lacks become [UNK]; above 5% of a split's tokens that is a warning."""
    texts = ["\ue001\ue002\ue003 好"] * 3  # private-use characters are in no vocabulary
    health = health_of({"train": records(texts), "dev": records(SENTENCES, "dev"), "test": records(SENTENCES, "test")}, count)
    assert health["splits"]["train"]["tokens"]["unknown"] == 9
    found = warnings(health)
    assert any(w.startswith("train:") and "[UNK]" in w for w in found), found
    assert any(w.startswith("train:") and "whitespace placeholders" in w for w in found), found


@pytest.mark.unit
def test_a_third_of_placeholders_is_fatal_unless_allowed(count, params: Params) -> None:
    spaced = {s: records([" ".join(t) for t in SENTENCES], s) for s in ("train", "dev", "test")}
    health = health_of(spaced, count)
    source = params.task("cluener").data
    problems = misread_problems(spaced, health, source, "cluener")
    assert len(problems) == 1 and problems[0].field == "text"
    assert "whitespace placeholders (limit 33%)" in problems[0].what and "join" in problems[0].what
    relaxed = source.model_copy(update={"max_space_share": 0.6})
    assert misread_problems(spaced, health, relaxed, "cluener") == []
    assert misread_problems({s: records(SENTENCES, s) for s in spaced}, health_of(
        {s: records(SENTENCES, s) for s in spaced}, count), source, "cluener") == []


@pytest.mark.unit
def test_a_label_holding_a_quote_or_the_delimiter_is_fatal(count, params: Params) -> None:
    """The label of a row split inside a quoted field ('选什么专业好",0') stops validate at its field."""
    splits = {
        "train": [*records(SENTENCES, label="0"), {"id": "train-9", "text": "好", "label": '选什么专业好",0'}],
        "dev": records(SENTENCES, "dev", "1"), "test": records(SENTENCES, "test", "0"),
    }
    source = params.task("afqmc").data.model_copy(update={"label_names": None, "delimiter": ","})
    problems = misread_problems(splits, health_of(splits, count), source, "afqmc")
    assert [(p.record_id, p.field) for p in problems] == [("train-9", "label")]
    assert "quoting: true" in problems[0].what and "allow_suspicious_labels" in problems[0].what
    allowed = source.model_copy(update={"allow_suspicious_labels": True})
    assert misread_problems(splits, health_of(splits, count), allowed, "afqmc") == []


@pytest.mark.unit
def test_many_once_only_train_labels_absent_from_dev_and_test_are_fatal(count, params: Params) -> None:
    """59 train 'labels' for a binary task (the mis-split CSV of the issue) are not a label space."""
    train = records(SENTENCES * 4, label="0") + records(SENTENCES * 4, label="1")
    train += [{"id": f"train-{100 + i}", "text": "好", "label": f"句子{i}"} for i in range(57)]
    splits = {"train": train, "dev": records(SENTENCES, "dev", "1"), "test": records(SENTENCES, "test", "0")}
    source = params.task("tnews").data
    problems = misread_problems(splits, health_of(splits, count), source, "tnews")
    assert [(p.record_id, p.field) for p in problems] == [("train-100", "label")]
    assert problems[0].what.startswith("57 of train's 59 labels occur once in it and never in dev or test")
    few = {**splits, "train": train[:-54]}  # 3 rare labels: a real long tail, tolerated
    assert misread_problems(few, health_of(few, count), source, "tnews") == []


@pytest.mark.model
def test_validate_stops_on_a_spaced_chinese_file_naming_raw_file_line_and_field(
    params: Params, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stage counts tokens with the task's backbone vocabulary: built here (minilm-zh, real weights)."""
    from pipeline.stages import backbone

    rows = {
        split: [{"id": f"{split}-{3 * i + 1}", "text": " ".join(t), "entities": []} for i, t in enumerate(SENTENCES)]
        for split in ("train", "dev", "test")
    }
    stage, report_path = validate_in(tmp_path, monkeypatch, "cluener", rows)
    for module in (backbone, stage):
        monkeypatch.setattr(module, "backbone_dir", lambda name: tmp_path / "backbones" / name)
    backbone.build_backbone(params, params.task("cluener").backbone)
    raw = Path(params.data_root) / params.task("cluener").data.dir / "train.jsonl"
    with pytest.raises(DataError, match=f"^{re.escape(str(raw))}:\\d+: field 'text': \\d+% of all input tokens"):
        stage.validate(params, "cluener")
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert len(report["fatal"]) == 1 and report["splits"]["train"]["tokens"]["space_share"] > 0.45

"""``tokenizer.extend_vocab``: frequent out-of-vocabulary characters (zh) and words (en) of the training data take
free ``[unusedN]`` slots; the train stage encodes with and bundles the extended vocabulary, the validate stage
reports the ``[UNK]`` share before and after."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.config.finetuning import ExtendVocab, TokenizerOptions
from pipeline.config.loading import load_params
from pipeline.config.schema import Params, TaskConfig
from pipeline.data_health.tokens import char_count, extended_count, token_shares
from pipeline.text.tokenization import read_vocab
from pipeline.text.vocab_extension import (
    basic_words, extended_vocab, extension_for, free_slots, plan_extension, write_extended_vocab,
)

#: CJK characters the Chinese BERT vocabulary lacks (each would be [UNK])
RARE_ZH = "丂丄丅丆"
#: English words the MiniLM vocabulary lacks (WordPiece splits them)
OOV_EN = ("covid", "zoomers")


def zh_records() -> list[dict]:
    """'丂' 6 times, '丄' 4 times, '丅' twice, '丆' once, among known characters; one pair record."""
    return [
        {"id": "r1", "text": "我们丂丂丂去了丄丄", "label": "positive"},
        {"id": "r2", "text": "丂丂他丄丅", "label": "negative"},
        {"id": "r3", "text": "你好丂", "text_b": "丄丅丆", "label": "positive"},
        {"id": "r4", "text": "很好", "label": "negative"},
    ]


def with_extension(cfg: TaskConfig, min_count: int, max_new: int) -> TaskConfig:
    return cfg.model_copy(update={"tokenizer": TokenizerOptions(extend_vocab=ExtendVocab(min_count=min_count, max_new=max_new))})


def with_task(params: Params, task: str, cfg: TaskConfig) -> Params:
    return params.model_copy(update={"tasks": {**params.tasks, task: cfg}})


def tiny_vocab(path: Path, slots: int) -> Path:
    """A vocabulary with ``[unused0]..[unused{slots}]`` ([unused1], the whitespace token, is no free slot)."""
    tokens = ["[PAD]", *[f"[unused{i}]" for i in range(slots + 1)], "[UNK]", "[CLS]", "[SEP]", "[MASK]", "我", "们"]
    path.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    return path


# --- planning and writing (no TensorFlow) ------------------------------------------------------------


@pytest.mark.unit
def test_frequent_unknown_chinese_characters_take_free_slots_in_id_order(zh_vocab: Path) -> None:
    vocab = read_vocab(zh_vocab)
    assert all(ch not in vocab for ch in RARE_ZH)
    plan = plan_extension(zh_records(), "zh", vocab, True, min_count=2, max_new=10)
    slots = [i for i, _ in free_slots(vocab)]
    assert vocab["[unused1]"] not in slots  # the whitespace token stays
    # most frequent first; text_b counts; '丆' (once) stays [UNK]
    assert plan.units == {"丂": slots[0], "丄": slots[1], "丅": slots[2]}
    assert plan.counts == {"丂": 6, "丄": 4, "丅": 2} and plan.candidates == 3 and plan.note is None
    extended = extended_vocab(vocab, plan)
    count = char_count(extended, True)
    assert count("丂丄丅") == (3, 0, 0) and count("丆") == (1, 0, 1)
    assert extended["丂"] == slots[0] and "[unused2]" not in extended


@pytest.mark.unit
def test_frequent_out_of_vocabulary_english_words_are_planned_as_whole_lowercased_words(en_vocab: Path) -> None:
    vocab = read_vocab(en_vocab)
    assert all(word not in vocab for word in OOV_EN) and "news" in vocab
    records = [{"id": "a", "text": "COVID news: Zoomers' covid!"}, {"id": "b", "text": "covid", "text_b": "zoomers Zoomers"}]
    plan = plan_extension(records, "en", vocab, True, min_count=3, max_new=5)
    assert list(plan.units) == ["covid", "zoomers"] and plan.counts == {"covid": 3, "zoomers": 3}
    assert list(plan.units.values()) == [i for i, _ in free_slots(vocab)[:2]]
    # the basic split: punctuation apart, lower-cased and accents stripped for a lowercase backbone
    assert basic_words("Zoomers' CAFÉ-Bar", True) == ["zoomers", "'", "cafe", "-", "bar"]
    assert basic_words("Zoomers' CAFÉ", False) == ["Zoomers", "'", "CAFÉ"]


@pytest.mark.unit
def test_max_new_and_the_free_slots_limit_the_units_and_a_shortage_is_reported(tmp_path: Path) -> None:
    vocab = read_vocab(tiny_vocab(tmp_path / "vocab.txt", slots=3))  # free: [unused0], [unused2], [unused3]
    records = [{"id": "1", "text": "丂丂丂丂丄丄丄丅丅乚乚"}]
    capped = plan_extension(records, "zh", vocab, True, min_count=1, max_new=2)
    assert list(capped.units) == ["丂", "丄"] and capped.wanted == 2 and capped.note is None
    short = plan_extension(records, "zh", vocab, True, min_count=1, max_new=10)
    # ties ('丅', '乚' twice each) go by the unit, so the outcome is deterministic
    assert short.units == {"丂": 1, "丄": 3, "丅": 4} and short.candidates == 4 and short.free_slots == 3
    assert short.note and "3 free [unusedN] slots for 4 wanted" in short.note and "1 units stay out" in short.note
    assert short.summary()["added"] == 3 and short.summary()["note"] == short.note
    assert short.note in short.describe()


@pytest.mark.unit
def test_the_extended_file_keeps_every_other_line_and_id(zh_vocab: Path, tmp_path: Path) -> None:
    plan = plan_extension(zh_records(), "zh", read_vocab(zh_vocab), True, min_count=2, max_new=10)
    out = tmp_path / "bundle" / "vocab.txt"
    mapping = write_extended_vocab(zh_vocab, plan, out)
    assert mapping == plan.units
    before = zh_vocab.read_text(encoding="utf-8").split("\n")
    after = out.read_text(encoding="utf-8").split("\n")
    assert len(after) == len(before)
    changed = {i: (before[i], after[i]) for i in range(len(before)) if before[i] != after[i]}
    assert changed == {i: (plan.slots[unit], unit) for unit, i in plan.units.items()}
    assert read_vocab(out) == extended_vocab(read_vocab(zh_vocab), plan)


@pytest.mark.unit
def test_the_unknown_share_drops_with_the_extension(zh_vocab: Path) -> None:
    records = zh_records()
    plan = plan_extension(records, "zh", read_vocab(zh_vocab), True, min_count=2, max_new=10)
    before = token_shares(records, char_count(read_vocab(zh_vocab), True))
    after = token_shares(records, extended_count("zh", zh_vocab, True, plan))
    assert before["unknown"] == 13 and after["unknown"] == 1 and after["unknown_share"] < before["unknown_share"]


@pytest.mark.unit
def test_the_option_unset_plans_nothing(zh_vocab: Path) -> None:
    cfg = load_params().task("zh_sentiment")
    assert cfg.tokenizer.extend_vocab is None and extension_for(cfg, zh_records(), zh_vocab, True) is None
    plan = extension_for(with_extension(cfg, 4, 1), zh_records(), zh_vocab, True)
    assert plan is not None and list(plan.units) == ["丂"] and plan.candidates == 2


# --- the validate stage (Chinese: no TensorFlow) ------------------------------------------------------


def validate_zh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zh_vocab: Path, cfg: TaskConfig) -> dict:
    from pipeline.backbone.manifest import BackboneFiles, write_manifest
    from tests.helpers import validate_in

    records = zh_records() * 3
    splits = {split: [{**r, "id": f"{split}{i}"} for i, r in enumerate(records)] for split in ("train", "dev", "test")}
    splits["dev"][0]["text"] = "丆丆丂"
    stage, report = validate_in(tmp_path, monkeypatch, "zh_sentiment", splits)
    backbone = tmp_path / "backbone"
    backbone.mkdir()
    write_manifest(backbone, BackboneFiles("bert", backbone / "bert_config.json", backbone / "bert_model.ckpt",
                                           zh_vocab, True, "minilm-zh"))
    monkeypatch.setattr(stage, "backbone_dir", lambda name: backbone)
    health = stage.validate(with_task(load_params(), "zh_sentiment", cfg), "zh_sentiment")
    assert json.loads(report.read_text(encoding="utf-8")) == health
    return health


@pytest.mark.unit
def test_validate_reports_each_splits_unknown_share_before_and_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zh_vocab: Path, capsys: pytest.CaptureFixture
) -> None:
    from pipeline.data_health.report import health_metrics

    health = validate_zh(tmp_path, monkeypatch, zh_vocab, with_extension(load_params().task("zh_sentiment"), 5, 10))
    ext = health["vocab_extension"]
    assert ext["added"] == 3 and list(ext["units"]) == ["丂", "丄", "丅"] and ext["units"]["丂"]["count"] == 18
    for split, part in health["splits"].items():
        shares = part["vocab_extension"]
        assert shares["unknown_share_before"] == part["tokens"]["unknown_share"] > shares["unknown_share_after"]
    assert health["splits"]["train"]["vocab_extension"]["unknown_after"] == 3  # '丆', once per copy
    assert health["splits"]["dev"]["vocab_extension"]["unknown_after"] == 3 + 2  # and '丆丆' in the changed record
    assert health_metrics(health)["data_health.unknown_share_extended.dev"] < health_metrics(health)["data_health.unknown_share.dev"]
    out = capsys.readouterr().out
    assert "[UNK] before -> after tokenizer.extend_vocab (+3 units: 丂, 丄, 丅)" in out
    assert f"train {health['splits']['train']['tokens']['unknown_share']:.1%} -> " in out


@pytest.mark.unit
def test_validate_without_the_option_reports_no_extension(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zh_vocab: Path, capsys: pytest.CaptureFixture
) -> None:
    health = validate_zh(tmp_path, monkeypatch, zh_vocab, load_params().task("zh_sentiment"))
    assert "vocab_extension" not in health and all("vocab_extension" not in part for part in health["splits"].values())
    assert health["splits"]["train"]["tokens"]["unknown"] > 0  # the before share is there as always
    assert "extend_vocab" not in capsys.readouterr().out


def unk_share(records: list[dict], tokenizer) -> float:
    """The share of [UNK] among the tokens the validate stage counts for ``records``."""
    from pipeline.data_health.tokens import token_shares, tokenizer_count

    shares = token_shares(records, tokenizer_count(tokenizer))
    return shares["unknown"] / shares["tokens"]  # unrounded (the report rounds its share)


# --- real tokenizers (TensorFlow) --------------------------------------------------------------------


@pytest.mark.model
def test_a_chinese_tokenizer_on_the_written_file_encodes_frequent_characters_to_their_slots(
    zh_vocab: Path, tmp_path: Path
) -> None:
    from pipeline.text.tokenization import build_tokenizer

    records = zh_records()
    plan = plan_extension(records, "zh", read_vocab(zh_vocab), True, min_count=2, max_new=10)
    path = tmp_path / "vocab.txt"
    write_extended_vocab(zh_vocab, plan, path)
    before, after = build_tokenizer("zh", zh_vocab, True), build_tokenizer("zh", path, True)
    encoding = after.encode("丂 丄丅丆好")
    assert encoding.token_ids[1:-1] == [plan.units["丂"], after.token_to_id("[unused1]"), plan.units["丄"],
                                        plan.units["丅"], after.unk_id, before.token_to_id("好")]
    assert after.vocab_size == before.vocab_size
    assert unk_share(records, before) == pytest.approx(13 / 22) and unk_share(records, after) == pytest.approx(1 / 22)


@pytest.mark.model
def test_frequent_english_words_become_single_tokens(en_vocab: Path, tmp_path: Path) -> None:
    from pipeline.text.tokenization import build_tokenizer

    records = [{"id": str(i), "text": f"The {word} story, {word.title()} ♫!"} for i, word in enumerate(OOV_EN * 2)]
    records.append({"id": "x", "text": "a ☃ again"})  # [UNK], once
    plan = plan_extension(records, "en", read_vocab(en_vocab), True, min_count=2, max_new=5)
    assert list(plan.units) == ["covid", "zoomers", "♫"] and plan.counts == {"covid": 4, "zoomers": 4, "♫": 4}
    path = tmp_path / "vocab.txt"
    write_extended_vocab(en_vocab, plan, path)
    before, after = build_tokenizer("en", en_vocab, True), build_tokenizer("en", path, True)
    assert len(before.encode("covid").tokens) > 3  # WordPiece split it
    encoding = after.encode("Covid zoomers, again")
    assert encoding.tokens[1:3] == ["covid", "zoomers"] and encoding.token_ids[1:3] == [plan.units[w] for w in OOV_EN]
    assert encoding.offsets[1:3] == [(0, 5), (6, 13)]
    assert after.encode("♫").token_ids[1] == plan.units["♫"] and before.encode("♫").token_ids[1] == before.unk_id
    # after: the one '☃' of 4 x 7 + 3 tokens; before: also the four '♫', among more tokens (the split words)
    assert unk_share(records, after) == pytest.approx(1 / 31) and unk_share(records, before) > 3 / 31
    # the TensorFlow-free basic split is bert4keras's (its WordPiece step made the identity)
    text = "Hello, Wörld! 你好 x\u200by  co-op\tİstanbul ÀÉ 3.14 ☃\x00z\ufffd"
    for lowercase in (True, False):
        bert = build_tokenizer("en", en_vocab, lowercase).bert4keras
        bert._word_piece_tokenize = lambda word: [word]
        assert basic_words(text, lowercase) == bert._tokenize(text)

"""The data-health checks and ``data.dedupe``, on small hand-made records and on the real zh sentiment data."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from pipeline.config.schema import Params, TaskConfig
from pipeline.config.loading import load_params
from pipeline.data_health.report import build_health, health_metrics, summary_lines
from pipeline.data_health.duplicates import across, overlap, within
from pipeline.data_health.fatal import Locator, find_problems
from pipeline.data_health.truncation import char_kept, truncation
from pipeline.data.readers import SPLITS, DataError, ReadReport, read_split
from pipeline.data.readers.base import dedupe_splits
from pipeline.data.readers.files import numbered_lines
from pipeline.text.spans import I_WITHOUT_B, TYPE_CHANGE
from tests.helpers import validate_in


def rec(rid: str, text: str, label: str = "pos", **extra) -> dict:
    return {"id": rid, "text": text, "label": label, **extra}


def span(text: str, start: int, end: int) -> dict:
    return {"start": start, "end": end, "text": text[start:end]}


def ent(text: str, start: int, end: int, kind: str = "LOC") -> dict:
    return {**span(text, start, end), "type": kind}


def with_data(params: Params, task: str, **data) -> Params:
    """``params`` with ``tasks.<task>.data`` updated."""
    cfg = params.tasks[task]
    new = cfg.model_copy(update={"data": cfg.data.model_copy(update=data)})
    return params.model_copy(update={"tasks": {**params.tasks, task: new}})


@pytest.fixture(scope="module")
def params() -> Params:
    return load_params()


@pytest.fixture(scope="module")
def ner_cfg(params: Params) -> TaskConfig:
    return params.task("cluener")


# --- duplicates ---------------------------------------------------------------------------------


@pytest.mark.unit
def test_duplicates_within_a_split_count_copies_exact_copies_and_conflicts() -> None:
    records = [rec("t-1", "x"), rec("t-2", "x"), rec("t-3", "x", "neg"), rec("t-4", "y"), rec("t-5", "y")]
    found = within(records)
    assert (found["same_input"], found["exact"]) == (3, 2)
    assert (found["conflicting_inputs"], found["conflicting_examples"]) == (1, 3)
    assert found["example_ids"] == ["t-2", "t-3", "t-5"]
    assert found["conflicting_ids"] == [["t-1", "t-2", "t-3"]]


@pytest.mark.unit
def test_the_second_text_of_a_pair_is_part_of_the_input() -> None:
    records = [rec("t-1", "a", text_b="b"), rec("t-2", "a", text_b="c")]
    assert within(records)["same_input"] == 0
    assert within(records + [rec("t-3", "a", text_b="b")])["same_input"] == 1


@pytest.mark.unit
def test_overlap_across_splits_counts_the_later_splits_examples() -> None:
    splits = {
        "train": [rec("train-1", "x"), rec("train-2", "y"), rec("train-3", "y")],
        "dev": [rec("dev-1", "y", "neg"), rec("dev-2", "z")],
        "test": [rec("test-1", "x"), rec("test-2", "x"), rec("test-3", "z"), rec("test-4", "w")],
    }
    found = across(splits)
    assert found["dev_in_train"] == {
        "examples": 1,
        "distinct_inputs": 1,
        "conflicting_labels": 1,
        "example_ids": ["dev-1"],
        "conflicting_ids": ["dev-1"],
    }
    assert (found["test_in_train"]["examples"], found["test_in_train"]["distinct_inputs"]) == (2, 1)
    assert found["test_in_train"]["conflicting_labels"] == 0
    assert found["test_in_dev"]["example_ids"] == ["test-3"]


@pytest.mark.unit
def test_real_zh_sentiment_test_texts_that_occur_in_train(params: Params) -> None:
    """The issue's figure: 649 distinct test texts occur verbatim in train. The readers strip surrounding
    whitespace, which makes it 652 distinct texts, 680 test examples (and 668 dev examples)."""
    source = params.task("zh_sentiment").data
    directory = params.data_dir("zh_sentiment")
    splits = {split: read_split(source, directory / getattr(source, split), split, ReadReport()) for split in SPLITS}
    found = across(splits)
    assert (found["test_in_train"]["examples"], found["test_in_train"]["distinct_inputs"]) == (680, 652)
    assert found["test_in_train"]["conflicting_labels"] == 2  # labels no train copy has
    assert found["dev_in_train"]["examples"] == 668

    def verbatim(split: str) -> list[dict]:
        """Text fields exactly as in the file (no stripping)."""
        lines = numbered_lines(directory / getattr(source, split))
        return [{"id": f"{split}-{n}", "text": line.rsplit("\t", 1)[0]} for n, line in lines if line.strip()]

    assert overlap(verbatim("test"), verbatim("train"))["distinct_inputs"] == 649


# --- truncation ---------------------------------------------------------------------------------


@pytest.mark.unit
def test_truncation_counts_cut_texts_and_entities_beyond_the_cut() -> None:
    text = "一二三四五六七八九"  # maxlen 8 keeps 6 characters
    records = [
        {"id": "t-1", "text": text, "entities": [ent(text, 0, 2), ent(text, 5, 7), ent(text, 4, 6)]},
        {"id": "t-2", "text": "一二三", "entities": [ent("一二三", 1, 3)]},
    ]
    cut = truncation(records, char_kept, 8, "entities")
    assert (cut["texts"], cut["units"], cut["units_lost"]) == (1, 4, 1)
    assert cut["example_ids"] == cut["lost_ids"] == ["t-1"]
    assert truncation(records, char_kept, 11, "entities")["texts"] == 0


@pytest.mark.unit
def test_truncation_of_answers_counts_the_query_in_front_of_the_text() -> None:
    text = "甲乙丙丁戊己庚辛"
    answers = [{"start": 1, "end": 3, "text": "乙丙"}, {"start": 3, "end": 4, "text": "丁"}]
    record = {"id": "t-1", "text": text, "query": "问", "answers": answers, "template": ["___{query}___{text}"]}
    # "___问___" (7 characters) + 8 text characters; maxlen 12 keeps 10: the text's first 3
    cut = truncation([record], char_kept, 12, "answers")
    assert (cut["texts"], cut["units"], cut["units_lost"]) == (1, 2, 1)
    # a pair [query, text]: maxlen 8 keeps 5 of the pair; the shorter query keeps its 1 character, the text 4
    pair = {**record, "template": ["{query}", "{text}"]}
    assert truncation([pair], char_kept, 8, "answers")["units_lost"] == 0
    assert truncation([pair], char_kept, 7, "answers")["units_lost"] == 1


@pytest.mark.unit
def test_a_triple_is_lost_when_either_argument_is_cut() -> None:
    text = "张三生于北京市海淀区"
    triple = {"subject": span(text, 0, 2), "predicate": "出生地", "object": span(text, 4, 10)}
    cut = truncation([{"id": "t-1", "text": text, "triples": [triple]}], char_kept, 10, "triples")
    assert (cut["units"], cut["units_lost"]) == (1, 1)
    assert truncation([{"id": "t-1", "text": text, "triples": [triple]}], char_kept, 12, "triples")["units_lost"] == 0


@pytest.mark.model
def test_the_length_measure_is_exactly_the_chinese_tokenizers_truncation(zh_vocab: Path) -> None:
    from pipeline.data_health.truncation import tokenizer_kept
    from pipeline.text.tokenization import ChineseCharTokenizer

    real = tokenizer_kept(ChineseCharTokenizer(zh_vocab))
    rng = random.Random(3)
    alphabet = "中文字 \t\u3000ab😀\ue000\ufffd，。"
    for _ in range(300):
        segments = tuple("".join(rng.choices(alphabet, k=rng.randint(0, 20))) for _ in range(rng.randint(1, 2)))
        maxlen = rng.randint(8, 24)
        assert char_kept(segments, maxlen) == real(segments, maxlen), (segments, maxlen)


# --- labels, encoding, reader skips, the whole report -------------------------------------------------


def ner_splits() -> dict[str, list[dict]]:
    text = "张三在北京"
    return {
        "train": [{"id": "train-1", "text": text, "entities": [ent(text, 0, 2, "PER"), ent(text, 3, 5)]}],
        "dev": [{"id": "dev-1", "text": "我\ufffd在上海", "entities": [ent("我\ufffd在上海", 3, 5, "CITY")]}],
        "test": [
            {"id": "test-1", "text": text, "entities": [ent(text, 3, 5)]},
            {"id": "test-2", "text": "\x07\ue000", "entities": []},
        ],
    }


@pytest.mark.unit
def test_report_counts_labels_unseen_types_encoding_and_reader_skips(ner_cfg: TaskConfig) -> None:
    skipped = {"train": {f"repaired BIO: {I_WITHOUT_B}": 2, f"repaired BIO: {TYPE_CHANGE}": 1, "empty text": 4}}
    health = build_health("t", ner_cfg, ner_splits(), {"skipped": skipped}, char_kept, "chars")
    train, dev, test = (health["splits"][s] for s in ("train", "dev", "test"))
    assert train["labels"] == {"LOC": 1, "PER": 1} and health["label_field"] == "entity type"
    assert train["bio_repairs"] == {"i_without_b": 2, "type_change": 1}
    assert train["empty_texts"] == {"skipped_by_reader": 4, "in_prepared_data": 0}
    assert dev["unseen_labels"] == {"CITY": 1} and test["unseen_labels"] == {}
    assert dev["encoding_problems"]["by_kind"] == {"replacement character U+FFFD": 1}
    assert test["encoding_problems"]["by_kind"] == {"control character": 1, "private-use character": 1}
    assert health["overlap"]["test_in_train"]["examples"] == 1
    text = "\n".join(health["warnings"])
    for expected in ("CITY (1)", "empty text (4)", I_WITHOUT_B, "replacement character", "also occurs in train"):
        assert expected in text
    assert health["fatal"] == [] and health["dedupe"]["mode"] == "none"
    assert len(summary_lines(health, "x.json")) <= 8


@pytest.mark.unit
def test_health_metrics_are_flat_numbers(ner_cfg: TaskConfig) -> None:
    health = build_health("t", ner_cfg, ner_splits(), {"skipped": {}}, char_kept, "chars")
    metrics = health_metrics(health)
    assert 10 <= len(metrics) <= 25
    assert all(isinstance(v, float) for v in metrics.values())
    assert metrics["data_health.examples.test"] == 2.0
    assert metrics["data_health.overlap.test_in_train"] == 1.0
    assert metrics["data_health.unseen_labels"] == 1.0
    assert metrics["data_health.encoding_problems"] == 2.0
    assert metrics["data_health.warnings"] == len(health["warnings"])
    json.dumps(health)  # the report is plain JSON


# --- fatal problems -------------------------------------------------------------------------------


@pytest.mark.unit
def test_fatal_problems_name_field_and_what() -> None:
    text = "上海"
    splits = {
        "train": [
            {"id": "train-3", "text": text, "entities": [{"start": 0, "end": 2, "type": "LOC", "text": "北京"}]},
            {"id": "train-4", "text": text, "entities": [{"start": 1, "end": 5, "type": "LOC", "text": "海"}]},
            {"id": "train-5", "text": text, "entities": [{"start": 0, "end": 1, "type": "", "text": "上"}]},
            {"id": "train-6", "entities": []},
            {"id": "train-8", "text": text, "entities": [ent(text, 0, 2), ent(text, 1, 2)]},
        ],
        "dev": [],
        "test": [],
    }
    found = [(p.record_id, p.field, p.what) for p in find_problems(splits, "sequence_labeling")]
    assert found == [
        ("train-3", "entities[0].text", "'北京' differs from text[0:2] '上海'"),
        ("train-4", "entities[0]", "span [1, 5) is empty or out of range of the text (length 2)"),
        ("train-5", "entities[0].type", "empty or not a string: ''"),
        ("train-6", "text", "missing"),
        ("train-8", "entities[1]", "overlaps entities[0] (BIO tags cannot hold both)"),
    ]
    labels = {"train": [rec("train-1", "x", ""), rec("train-2", "x", 3)], "dev": [], "test": []}
    assert [p.field for p in find_problems(labels, "text_classification")] == ["label", "label"]
    triple = {"subject": span("ab", 0, 1), "predicate": "p", "object": {"start": 1, "end": 2, "text": "x"}}
    triples = {"train": [{"id": "train-1", "text": "ab", "triples": [triple]}]}
    assert [p.field for p in find_problems(triples, "relation_extraction")] == ["triples[0].object.text"]


@pytest.mark.unit
def test_locations_are_raw_lines_or_prepared_lines(tmp_path: Path) -> None:
    problem = find_problems({"dev": [rec("dev-0", "x"), rec("train-12", "x", "")]}, "text_classification")[0]
    raw = {"train": tmp_path / "train.tsv"}
    what = "field 'label': empty or not a string: ''"
    assert Locator(raw, tmp_path, line_ids=True).message(problem) == f"{raw['train']}:12: {what}"
    # ids that are not line numbers (SQuAD question ids): the prepared file's line, naming the record
    assert Locator(raw, tmp_path, line_ids=False).message(problem) == (
        f"{tmp_path / 'dev.jsonl'}:2: {what} (record 'train-12' of {raw['train']})"
    )


@pytest.mark.unit
def test_the_stage_stops_on_a_span_mismatch_naming_raw_file_line_and_field(
    params: Params, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = {"id": "train-1", "text": "上海", "entities": [ent("上海", 0, 2, "address")]}
    bad = {"id": "train-7", "text": "上海", "entities": [{**ent("上海", 0, 2, "address"), "text": "北京"}]}
    stage, report_path = validate_in(tmp_path, monkeypatch, "cluener", {"train": [good, bad], "dev": [good], "test": [good]})
    raw = Path(params.data_root) / params.task("cluener").data.dir / "train.jsonl"  # as params.yaml spells it
    assert not raw.is_absolute()
    expected = f"{raw}:7: field 'entities[0].text': '北京' differs from text[0:2] '上海'"
    with pytest.raises(DataError, match=f"^{re.escape(expected)}$"):
        stage.validate(params, "cluener")
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert len(report["fatal"]) == 1 and report["fatal"][0].startswith(f"{raw}:7:")


# --- dedupe ---------------------------------------------------------------------------------------


def dedupe_input() -> dict[str, list[dict]]:
    return {
        "train": [rec("train-1", "a"), rec("train-2", "a"), rec("train-3", "a", "neg"), rec("train-4", "t"),
                  rec("train-5", "d"), rec("train-6", "k")],
        "dev": [rec("dev-1", "d"), rec("dev-2", "t"), rec("dev-3", "e"), rec("dev-4", "e")],
        "test": [rec("test-1", "t"), rec("test-2", "u"), rec("test-3", "u")],
    }


def ids(splits: dict[str, list[dict]]) -> dict[str, list[str]]:
    return {split: [r["id"] for r in rows] for split, rows in splits.items()}


@pytest.mark.unit
def test_dedupe_none_changes_nothing() -> None:
    splits = dedupe_input()
    assert dedupe_splits(splits, "none") == (splits, {})


@pytest.mark.unit
def test_dedupe_within_drops_later_exact_copies_only() -> None:
    result, report = dedupe_splits(dedupe_input(), "within")
    assert ids(result) == {
        "train": ["train-1", "train-3", "train-4", "train-5", "train-6"],  # train-3: same text, other label: kept
        "dev": ["dev-1", "dev-2", "dev-3"],
        "test": ["test-1", "test-2"],
    }
    assert report["removed"] == {split: {"exact duplicate": 1} for split in SPLITS}


@pytest.mark.unit
def test_dedupe_across_keeps_test_intact_and_test_wins_over_dev() -> None:
    original = dedupe_input()
    result, report = dedupe_splits(original, "across")
    assert result["test"] == original["test"]
    assert ids(result)["dev"] == ["dev-1", "dev-3", "dev-4"]  # dev-2 shares its text with test-1
    assert ids(result)["train"] == ["train-1", "train-2", "train-3", "train-6"]  # train-4 is in test, train-5 in dev
    assert report["removed"] == {"train": {"input in test": 1, "input in dev": 1}, "dev": {"input in test": 1}}
    assert report["removed_ids"] == {"train": ["train-4", "train-5"], "dev": ["dev-2"]}
    assert report["found"]["overlap"] == {"dev_in_train": 2, "test_in_train": 1, "test_in_dev": 1}
    assert report["found"]["exact_duplicates"] == {"train": 1, "dev": 1, "test": 1}


@pytest.mark.unit
def test_prepare_dedupes_the_real_sentiment_data_and_validate_reports_it(
    params: Params, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zh_vocab: Path
) -> None:
    from pipeline.backbone.manifest import BackboneFiles, write_manifest
    from pipeline.stages import prepare, validate

    for module in (prepare, validate):
        monkeypatch.setattr(module, "prepared_dir", lambda task: tmp_path / "prepared" / task)
    monkeypatch.setattr(validate, "reports_dir", lambda task: tmp_path / "reports" / task)
    # the Chinese tokenizer needs only the vocabulary: a manifest naming it stands in for the backbone stage
    backbone = tmp_path / "backbone"
    backbone.mkdir()
    write_manifest(backbone, BackboneFiles("bert", backbone / "bert_config.json", backbone / "bert_model.ckpt",
                                           zh_vocab, True, "minilm-zh"))
    monkeypatch.setattr(validate, "backbone_dir", lambda name: backbone)
    deduped = with_data(params, "zh_sentiment", dedupe="across")
    summary = prepare.prepare(deduped, "zh_sentiment")
    assert summary["records"]["test"] == 2111  # the evaluation set is untouched
    assert summary["dedupe"]["found"]["overlap"]["test_in_train"] == 680
    assert summary["dedupe"]["removed"]["dev"] == {"input in test": 90}  # dev examples; 89 test examples share them
    health = validate.validate(deduped, "zh_sentiment")
    assert [shared["examples"] for shared in health["overlap"].values()] == [0, 0, 0]
    assert health["dedupe"]["found_before_dedupe"]["overlap"]["test_in_train"] == 680
    assert health["dedupe"]["removed"] == summary["dedupe"]["removed"]
    removed = sum(sum(counts.values()) for counts in summary["dedupe"]["removed"].values())
    assert health_metrics(health)["data_health.dedupe_removed"] == removed == 879 + 826 + 90
    # default params: no dedupe section, so the prepared data stays byte for byte as before
    assert "dedupe" not in prepare.prepare(params, "zh_sentiment")


@pytest.mark.unit
def test_a_dedupe_setting_the_prepared_data_does_not_reflect_is_a_warning(ner_cfg: TaskConfig) -> None:
    cfg = ner_cfg.model_copy(update={"data": ner_cfg.data.model_copy(update={"dedupe": "all"})})
    health = build_health("t", cfg, ner_splits(), {"skipped": {}}, char_kept, "chars")
    assert health["dedupe"]["mode"] == "none"
    assert health["dedupe"]["found_before_dedupe"]["overlap"]["test_in_train"] == 1
    assert any("re-run prepare" in warning for warning in health["warnings"])

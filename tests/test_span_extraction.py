"""Span extraction with query concatenation: offsets, masking, decoding, metrics, readers, a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.config.schema import TaskConfig
from pipeline.kinds.span_extraction.kind import answer_tokens, best_match, best_span, exact_match, f1_score
from pipeline.kinds.factory import build_kind, new_kind
KIND = new_kind("span_extraction")
from pipeline.text.query_concat import (
    answer_token_span,
    check_template,
    join_query,
    kept_text_chars,
    text_mask,
    text_offsets,
    token_span_to_text_span,
)
from pipeline.data.readers import DataError, ReadReport
from pipeline.data.readers.query_csv import (
    MERGED,
    NO_ANSWER_KEPT,
    NO_ANSWER_SKIPPED,
    NOT_IN_TEXT,
    QueryCsvSource,
    read_query_csv,
)
from pipeline.data.readers.squad import SquadSource, question_bucket, read_squad
from pipeline.text.tokenization import NO_SPAN, build_tokenizer

CCKS_TEMPLATE = ["___{query}___{text}"]
PAIR_TEMPLATE = ["{query}", "{text}"]


# --- query concatenation and offsets ---------------------------------------------------------------


@pytest.mark.unit
def test_join_query_records_where_the_text_went() -> None:
    joined = join_query(CCKS_TEMPLATE, "业绩下滑", "恒泰艾普")
    assert joined.segments == ("___业绩下滑___恒泰艾普",)
    assert (joined.text_segment, joined.text_start, joined.text_length) == (0, 10, 4)
    pair = join_query(PAIR_TEMPLATE, "who {x}?", "a {text} b")  # braces in values are literal
    assert pair.segments == ("who {x}?", "a {text} b") and (pair.text_segment, pair.text_start) == (1, 0)
    after = join_query(["{text} | asked: {query}"], "q", "abc")
    assert after.segments == ("abc | asked: q",) and after.text_start == 0
    for bad in ([], ["{query}"], ["{text}"], ["{query}{text}", "{text}"], ["a", "b", "{query}{text}"]):
        with pytest.raises(ValueError):
            check_template(bad)


@pytest.mark.model
def test_chinese_offsets_with_spaces_and_unknown_characters(zh_vocab: Path) -> None:
    tokenizer = build_tokenizer("zh", zh_vocab, lowercase=True)
    text = "恒泰 艾普😀公司(300157)涉嫌违规"
    joined = join_query(CCKS_TEMPLATE, "信批违规", text)
    encoding = tokenizer.encode(*joined.segments, maxlen=64)
    offsets = text_offsets(encoding, joined)
    mask = text_mask(offsets)
    # [CLS] ___信批违规___ are not text, neither is the final [SEP]; every text character is one token
    assert mask == [0] * 11 + [1] * len(text) + [0]
    assert offsets[11:-1] == [(k, k + 1) for k in range(len(text))]
    assert encoding.tokens[11 + 2] == "[unused1]" and encoding.tokens[11 + 5] == "[UNK]"
    start = text.index("艾普😀")
    span = answer_token_span(encoding, joined, start, start + 3)
    assert span == (11 + 3, 11 + 5)
    assert token_span_to_text_span(offsets, *span) == (start, start + 3)
    assert kept_text_chars(encoding, joined) == len(text)
    # truncation: the answer near the end is lost, and said so
    short = tokenizer.encode(*joined.segments, maxlen=16)
    assert kept_text_chars(short, joined) == 4
    assert answer_token_span(short, joined, text.index("涉嫌"), text.index("涉嫌") + 4) is None
    assert answer_token_span(short, joined, 0, 2) == (11, 12)


@pytest.mark.model
def test_english_word_pieces_pair_and_single_templates(en_vocab: Path) -> None:
    tokenizer = build_tokenizer("en", en_vocab, lowercase=True)
    text = "The Walt Disney Company owns ABC, unbelievably."
    for template in (PAIR_TEMPLATE, ["question: {query} context: {text}"]):
        joined = join_query(template, "Who owns ABC?", text)
        encoding = tokenizer.encode(*joined.segments, maxlen=64)
        offsets = text_offsets(encoding, joined)
        mask = text_mask(offsets)
        assert mask[0] == 0 and mask[-1] == 0
        first_text = mask.index(1)
        assert encoding.tokens[first_text] == "the" and offsets[first_text] == (0, 3)
        assert "who" not in [t for t, m in zip(encoding.tokens, mask) if m]
        for answer in ("Walt Disney Company", "unbelievably", "ABC"):
            start = text.index(answer)
            i, j = answer_token_span(encoding, joined, start, start + len(answer))
            assert token_span_to_text_span(offsets, i, j) == (start, start + len(answer))
        if template == PAIR_TEMPLATE:
            assert {encoding.segment_ids[i] for i, m in enumerate(mask) if m} == {1}
        i, j = answer_token_span(encoding, joined, text.index("unbelievably"), text.index("unbelievably") + 12)
        assert j > i and encoding.tokens[j].startswith("##")  # several word-pieces, one answer


@pytest.mark.model
def test_a_token_straddling_the_text_edge_is_not_a_text_token(en_vocab: Path) -> None:
    tokenizer = build_tokenizer("en", en_vocab, lowercase=True)
    joined = join_query(["{query}{text}"], "un", "able to go")  # 'unable' is one word-piece
    encoding = tokenizer.encode(*joined.segments, maxlen=32)
    offsets = text_offsets(encoding, joined)
    assert encoding.tokens[1] == "unable" and tuple(offsets[1]) == NO_SPAN
    assert answer_token_span(encoding, joined, 0, 4) is None  # 'able' cannot be pointed at
    assert token_span_to_text_span(offsets, *answer_token_span(encoding, joined, 5, 10)) == (5, 10)


@pytest.mark.model
def test_encode_features_targets_and_lost_answers(zh_vocab: Path) -> None:
    tokenizer = build_tokenizer("zh", zh_vocab, lowercase=True)
    record = {
        "id": "train-3",
        "text": "甲公司涉嫌欺诈，乙公司无关",
        "query": "涉嫌欺诈",
        "template": CCKS_TEMPLATE,
        "answers": [{"start": 0, "end": 3, "text": "甲公司"}],
    }
    KIND.encoded = KIND.lost = 0
    features = KIND.encode(record, tokenizer, [], maxlen=64)
    assert features["target"] == [11, 13, 1]
    assert sum(features["text_mask"]) == len(record["text"]) == features["kept_chars"]
    unanswerable = KIND.encode({**record, "answers": []}, tokenizer, [], maxlen=64)
    assert unanswerable["target"] == [0, 0, 1]
    late = {**record, "id": "dev-4", "answers": [{"start": 8, "end": 11, "text": "乙公司"}]}
    assert KIND.encode(late, tokenizer, [], maxlen=16)["target"] == [0, 0, 0]  # lost: weight 0
    assert (KIND.encoded, KIND.lost) == (2, 1)  # answerable records, of which one lost to truncation
    unlabelled = {key: value for key, value in record.items() if key != "answers"}
    assert "target" not in KIND.encode(unlabelled, tokenizer, [], maxlen=64)


# --- decoding ---------------------------------------------------------------------------------------


@pytest.mark.unit
def test_best_span_keeps_start_before_end_within_the_length_limit() -> None:
    start = np.array([0, 1, 5, 0, 0, 9.0])
    end = np.array([0, 8, 0, 1, 2, 0.0])
    allowed = [0, 1, 1, 1, 1, 0]  # position 5 (start 9) and 0 are masked
    # the best start (2) lies after the best end (1): the best valid pair is (1, 1) = 9 vs (2, 4) = 7
    assert best_span(start, end, allowed, max_len=10)[:2] == (1, 1)
    start[2] = 7.5
    assert best_span(start, end, allowed, max_len=10)[:2] == (2, 4)  # 9.5
    assert best_span(start, end, allowed, max_len=2)[:2] == (1, 1)  # (2, 4) is 3 tokens long
    assert best_span(start, end, [0] * 6, max_len=3) is None
    huge = np.full(6, 100.0)
    i, j, _ = best_span(huge * [1, 0, 0, 1, 0, 1], huge * [1, 0, 0, 0, 1, 1], allowed, max_len=5)
    assert (i, j) == (3, 4)


@pytest.mark.unit
def test_decode_maps_back_to_characters_and_predicts_no_answer() -> None:
    record = {"text": "ab cd"}
    features = {
        "token_ids": [1] * 5,
        "text_mask": [0, 1, 1, 1, 0],
        "offsets": [NO_SPAN, (0, 1), (1, 2), (3, 5), NO_SPAN],
        "kept_chars": 5,
    }
    logits = np.zeros((1, 7, 2))  # padded beyond the 5 tokens
    logits[0, :, 0] = [0, 1, 3, 0, 0, 50, 50]
    logits[0, :, 1] = [0, 0, 0, 4, 0, 50, 50]
    [prediction] = KIND.decode(logits, [record], [], [features], max_answer_len=5)
    assert (prediction["text"], prediction["start"], prediction["end"]) == ("b cd", 1, 5)
    assert prediction["score"] == 7.0
    logits[0, 0] = [4, 4]  # [CLS] pair scores 8 > 7
    [prediction] = KIND.decode(logits, [record], [], [features], max_answer_len=5, no_answer=True)
    assert prediction["text"] == "" and prediction["start"] is None
    [prediction] = KIND.decode(logits, [record], [], [features], max_answer_len=5, no_answer=False)
    assert prediction["text"] == "b cd"
    with pytest.raises(ValueError, match="features"):
        KIND.decode(logits, [record], [])


# --- metrics ----------------------------------------------------------------------------------------


@pytest.mark.unit
def test_exact_match_and_f1() -> None:
    assert exact_match("The Walt Disney Company!", "walt  disney company") == 1.0
    assert f1_score("Walt Disney", "the Walt Disney Company") == pytest.approx(2 * 1 * (2 / 3) / (1 + 2 / 3))
    assert f1_score("Disney", "ABC") == 0.0
    assert answer_tokens("《酒鬼酒》A股 300157。") == ["酒", "鬼", "酒", "a", "股", "300157"]
    assert exact_match("酒鬼酒。", "酒鬼酒") == 1.0
    assert f1_score("酒鬼酒公司", "酒鬼酒") == pytest.approx(0.75)  # character-level: P 3/5, R 1
    assert best_match("", []) == (1.0, 1.0) and best_match("x", []) == (0.0, 0.0)  # unanswerable
    assert best_match("", ["a b"]) == (0.0, 0.0)
    assert best_match("Disney Company", ["ABC", "Disney Company", "Walt Disney Company"]) == (1.0, 1.0)


@pytest.mark.unit
def test_score_detailed_scores_and_baseline() -> None:
    records = [
        {"text": "甲公司出事", "query": "A", "query_type": "A", "answers": [{"start": 0, "end": 3, "text": "甲公司"}]},
        {"text": "乙公司出事", "query": "A", "query_type": "A", "answers": [{"start": 0, "end": 3, "text": "乙公司"}]},
        {"text": "无关新闻", "query": "其他", "query_type": "其他", "answers": []},
        {
            "text": "很长很长的丙公司",
            "query": "B",
            "query_type": "B",
            "answers": [{"start": 5, "end": 8, "text": "丙公司"}],
        },
    ]
    predictions = [{"text": "甲公司"}, {"text": "乙"}, {"text": ""}, {"text": "", "kept_chars": 4}]
    scores = KIND.score(records, predictions, [])
    assert next(iter(scores)) == KIND.primary_metric == "f1"
    assert scores["em"] == pytest.approx(0.5) and scores["answerable_em"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx((1 + 0.5 + 1 + 0) / 4)
    assert scores["answer_lost"] == pytest.approx(1 / 3)
    labels = build_kind(_cfg(no_answer=True)).label_space(records, _cfg(no_answer=True))
    assert labels == ["A", "B", "其他"]
    details = KIND.detailed_scores(records, predictions, labels)
    assert details["em.A"] == 0.5 and details["em.其他"] == 1.0 and details["f1.B"] == 0.0
    baseline = KIND.baseline(records, records, labels)
    assert baseline["em"] == 0.25 and baseline["first_chars.em"] == 0.5  # median answer length 3
    with pytest.raises(ValueError, match="no_answer"):
        build_kind(_cfg(no_answer=False)).label_space(records, _cfg(no_answer=False))


@pytest.mark.unit
def test_write_reports(tmp_path: Path) -> None:
    records = [
        {"text": "甲", "query": "类型", "answers": [{"start": 0, "end": 1, "text": "甲"}]},
        {"text": "b", "query": "kind", "answers": [{"start": 0, "end": 1, "text": "b"}]},
    ]
    files = KIND.write_reports(records, [{"text": "甲"}, {"text": ""}], ["kind", "类型"], tmp_path)
    table = json.loads((tmp_path / "per_type.json").read_text(encoding="utf-8"))
    assert table["types"]["类型"]["em"] == 1.0 and table["types"]["kind"]["chart_label"] == "kind"
    assert table["types"]["类型"]["chart_label"].startswith("T")
    assert (tmp_path / "per_type_em.png").stat().st_size > 1000 and len(files) == 2


# --- readers ----------------------------------------------------------------------------------------


def _csv_source(**overrides) -> QueryCsvSource:
    block = {
        "dir": ".",
        "format": "query_csv",
        "train": "t.csv",
        "carve": {"dev_fraction": 0.2, "test_fraction": 0.2, "seed": 1},
        "columns": ["_", "text", "query", "answer"],
        "header": False,
        "missing_answer": "keep",
        "template": CCKS_TEMPLATE,
    }
    return QueryCsvSource.model_validate({**block, **overrides})


@pytest.mark.unit
def test_query_csv_reader_counts_missing_and_absent_answers(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        '1,"甲公司,乙公司""涉嫌""欺诈",涉嫌欺诈,甲公司\n'
        "2,无关新闻,其他,NaN\n"
        "\n"
        "3,丙公司业绩下滑,业绩下滑,丁公司\n"
        '4,"多行\n文本戊公司",其他,NAN\n'
        '5,"甲公司,乙公司""涉嫌""欺诈",涉嫌欺诈,乙公司\n'
        '6," 戊公司 被查",信批违规, 戊公司 \n',
        encoding="utf-8",
    )
    report = ReadReport()
    records = list(read_query_csv(_csv_source(), path, "train", report))
    assert [r["id"] for r in records] == ["train-1", "train-2", "train-5", "train-8"]
    first = records[0]
    assert first["text"] == '甲公司,乙公司"涉嫌"欺诈' and first["query"] == first["query_type"] == "涉嫌欺诈"
    assert first["answers"] == [{"start": 0, "end": 3, "text": "甲公司"}, {"start": 4, "end": 7, "text": "乙公司"}]
    assert records[1]["answers"] == [] and records[2]["text"] == "多行\n文本戊公司"
    assert (
        records[3]["answers"] == [{"start": 0, "end": 3, "text": "戊公司"}] and records[3]["template"] == CCKS_TEMPLATE
    )
    assert report.as_dict() == {"train": {"empty line": 1, NOT_IN_TEXT: 1, MERGED: 1, NO_ANSWER_KEPT: 2}}

    report = ReadReport()
    skipped = list(read_query_csv(_csv_source(missing_answer="skip", merge_duplicates=False), path, "train", report))
    assert [r["id"] for r in skipped] == ["train-1", "train-7", "train-8"]
    assert report.as_dict()["train"][NO_ANSWER_SKIPPED] == 2

    path.write_text("text,query,answer\n甲公司,q,甲\n乙公司,q\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"t\.csv:3: expected 3 fields"):
        list(read_query_csv(_csv_source(columns=["text", "query", "answer"], header=True), path, "train", ReadReport()))
    with pytest.raises(ValueError, match="answer"):
        _csv_source(columns=["text", "query"])
    with pytest.raises(ValueError, match="exactly once"):
        _csv_source(template=["{query}"])


def _squad_source(**overrides) -> SquadSource:
    block = {
        "dir": ".",
        "format": "squad",
        "train": "s.json",
        "test": "s.json",
        "carve": {"dev_fraction": 0.1, "test_fraction": 0.0, "seed": 1},
        "missing_answer": "skip",
        "template": PAIR_TEMPLATE,
    }
    return SquadSource.model_validate({**block, **overrides})


@pytest.mark.unit
def test_squad_reader_keeps_all_answers(tmp_path: Path) -> None:
    context = "ABC is owned by the Walt Disney Company since 1996."
    qas = [
        {
            "id": "q1",
            "question": "Who owns ABC?",
            "answers": [
                {"text": "the Walt Disney Company", "answer_start": 16},
                {"text": "Walt Disney Company", "answer_start": 0},  # wrong start: re-located
                {"text": "the Walt Disney Company", "answer_start": 16},  # duplicate
                {"text": "Pixar", "answer_start": 3},
            ],
        },  # absent: dropped, counted
        {"id": "q2", "question": "How many owners?", "answers": [{"text": "Mickey", "answer_start": 0}]},
    ]
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]})
    )
    report = ReadReport()
    [record] = list(read_squad(_squad_source(), path, "train", report))
    assert record["id"] == "train-q1" and record["query"] == "Who owns ABC?" and record["query_type"] == "who"
    assert record["answers"] == [
        {"start": 16, "end": 39, "text": "the Walt Disney Company"},
        {"start": 20, "end": 39, "text": "Walt Disney Company"},
    ]
    assert report.as_dict() == {"train": {f"{NOT_IN_TEXT} (answer dropped)": 2, NO_ANSWER_SKIPPED: 1}}
    kept = list(read_squad(_squad_source(missing_answer="keep"), path, "train", ReadReport()))
    assert kept[1]["answers"] == [] and kept[1]["query_type"] == "how many"
    path.write_text(json.dumps({"data": [{"paragraphs": [{"qas": []}]}]}))
    with pytest.raises(DataError, match=r"data\[0\]\.paragraphs\[0\]\.context"):
        list(read_squad(_squad_source(), path, "train", ReadReport()))


@pytest.mark.unit
def test_question_buckets() -> None:
    assert question_bucket("In what year did it start?") == "what"
    assert question_bucket("How many people live there?") == "how many"
    assert question_bucket("Whom did he marry, and how?") == "whom"
    assert question_bucket("Name the river.") == "other"


@pytest.mark.unit
def test_real_files_read_with_the_documented_counts(shared_data: Path) -> None:
    report = ReadReport()
    path = shared_data / "zh/ccks2019_event/event_type_entity_extract_train.csv"
    records = list(read_query_csv(_csv_source(), path, "train", report))
    counts = report.as_dict()["train"]
    # 17,815 rows: 4 subjects absent from their text (the 5th documented one is 'NAN', i.e. no answer);
    # 1,074 rows repeat an earlier row's text and event type; the 3,141 NaN rows make 3,089 records
    assert counts == {NOT_IN_TEXT: 4, MERGED: 1074, NO_ANSWER_KEPT: 3089}
    assert len(records) + counts[NOT_IN_TEXT] + counts[MERGED] == 17815 == 16737 + 4 + 1074
    assert sum(1 for r in records if len(r["answers"]) > 1) == 487
    assert sum(1 for r in records if not r["answers"]) == counts[NO_ANSWER_KEPT]
    assert {r["query"] for r in records if not r["answers"]} == {"其他"}
    assert len({r["query"] for r in records}) == 22
    assert all(r["text"][a["start"] : a["end"]] == a["text"] for r in records for a in r["answers"])
    squad = shared_data / "en/squad_v1.1_dev"
    for part, expected in (("part1", 5696), ("part2", 4874)):
        report = ReadReport()
        records = list(read_squad(_squad_source(), squad / f"dev-v1.1.{part}.json", "test", report))
        assert len(records) == expected and report.as_dict() == {}
        assert all(r["text"][a["start"] : a["end"]] == a["text"] for r in records for a in r["answers"])


# --- a tiny model: build, train a few steps, save, rebuild, reload ----------------------------------

TINY = {
    "attention_probs_dropout_prob": 0.0,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "hidden_size": 32,
    "initializer_range": 0.02,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
    "num_attention_heads": 2,
    "num_hidden_layers": 1,
    "type_vocab_size": 2,
}
CHARS = "甲乙丙丁公司涉嫌欺诈业绩下滑其他新闻今日_"


def _cfg(no_answer: bool, **overrides) -> TaskConfig:
    block = {
        "kind": "span_extraction",
        "language": "zh",
        "backbone": "tiny",
        "data": {
            "dir": ".",
            "format": "query_csv",
            "train": "t.csv",
            "carve": {"dev_fraction": 0.2, "test_fraction": 0.2, "seed": 1},
            "columns": ["_", "text", "query", "answer"],
            "header": False,
            "missing_answer": "keep",
            "template": CCKS_TEMPLATE,
        },
        "maxlen": 32,
        "batch_size": 8,
        "epochs": 2,
        "learning_rate": 3e-3,
        "warmup_proportion": 0.0,
        "weight_decay": 0.0,
        "dropout": 0.0,
        "max_train_samples": None,
        "max_dev_samples": None,
        "max_test_samples": None,
        "seed": 1,
        "precision": "float32",
        "head": {"max_answer_len": 4, "no_answer": no_answer},
    }
    return TaskConfig.model_validate({**block, **overrides})


def _synthetic_records(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    records = []
    for k in range(n):
        filler = "".join(rng.choice(list("今日新闻下滑"), size=rng.integers(2, 8)))
        subject = rng.choice(["甲公司", "乙公司", "丙丁公司"])
        if k % 4 == 3:
            records.append(
                {"id": f"train-{k}", "text": filler + "其他", "query": "其他", "answers": [], "template": CCKS_TEMPLATE}
            )
            continue
        text = filler + subject + "涉嫌欺诈"
        answer = {"start": len(filler), "end": len(filler) + len(subject), "text": subject}
        records.append(
            {"id": f"train-{k}", "text": text, "query": "涉嫌欺诈", "answers": [answer], "template": CCKS_TEMPLATE}
        )
    return records


@pytest.mark.model
def test_tiny_model_trains_and_reloads(tmp_path: Path) -> None:
    from pipeline.backbone.checkpoint import random_bert_arrays, write_bert_config, write_tf_checkpoint
    from pipeline.training.modeling import build_task_model
    from pipeline.runtime.tf_runtime import set_seed
    from pipeline.training.trainer import DevEvaluation, encode_all, fit

    vocab = tmp_path / "vocab.txt"
    vocab.write_text(
        "\n".join(["[PAD]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *CHARS]) + "\n", encoding="utf-8"
    )
    config = {**TINY, "vocab_size": 6 + len(CHARS)}
    write_bert_config(config, tmp_path / "bert_config.json")
    write_tf_checkpoint(random_bert_arrays(config, seed=0), tmp_path / "bert_model.ckpt")
    cfg = _cfg(no_answer=True)
    kind = build_kind(cfg)
    tokenizer = build_tokenizer("zh", vocab, lowercase=True)
    train, dev = _synthetic_records(48, seed=1), _synthetic_records(12, seed=2)
    labels = kind.label_space(train, cfg)
    set_seed(1)
    train_features = encode_all(kind, train, tokenizer, labels, cfg.maxlen, "train")
    dev_features = encode_all(kind, dev, tokenizer, labels, cfg.maxlen, "dev")
    model = build_task_model(kind, tmp_path / "bert_config.json", tmp_path / "bert_model.ckpt", "bert", labels, cfg)
    weights = tmp_path / "model.weights.h5"
    evaluation = DevEvaluation(kind, dev, dev_features, labels, cfg.batch_size, weights, lambda row: None)
    fit(kind, model, cfg, train_features, evaluation)
    assert [row["epoch"] for row in evaluation.history] == [1, 2] and np.isfinite(evaluation.history[-1]["loss"])
    assert weights.is_file() and set(evaluation.best) >= {"dev_f1", "dev_em", "dev_answerable_em", "dev_answer_lost"}

    # masked positions ([CLS] aside, with no_answer) are far below every text position
    from pipeline.training.batching import collate

    inputs, _ = collate(dev_features[:4], kind.predict_inputs, with_targets=False)
    logits = np.asarray(model(inputs, training=False))
    masks = inputs[2].astype(bool)
    masks[:, 0] = True
    assert (logits[~masks] < -1e11).all() and (np.abs(logits[masks]) < 1e3).all()

    model.load_weights(str(weights))
    before = kind.predict(model, dev, dev_features, labels, batch_size=5)
    rebuilt = build_task_model(kind, tmp_path / "bert_config.json", None, "bert", labels, cfg)
    rebuilt.load_weights(str(weights))
    after = kind.predict(rebuilt, dev, dev_features, labels, batch_size=3)
    assert [p["text"] for p in after] == [p["text"] for p in before]
    assert np.allclose([p["score"] for p in after], [p["score"] for p in before], atol=1e-3)
    for prediction, record in zip(after, dev):
        if prediction["text"]:
            assert record["text"][prediction["start"] : prediction["end"]] == prediction["text"]
            assert prediction["end"] - prediction["start"] <= 4  # max_answer_len tokens = characters here

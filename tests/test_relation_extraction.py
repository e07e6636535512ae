"""Relation extraction: DuIE / CoNLL04 readers, pointer labels and decoding, triple scores, a tiny model round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.kinds.factory import new_kind
from pipeline.kinds.relation_extraction.kind import (
    char_triples,
    memorised_predictions,
    pointer_targets,
    token_triples,
    triple_scores,
)
from pipeline.kinds.relation_extraction.pointers import decode_pointers, pointer_labels
from pipeline.data.readers import READERS, DataError, ReadReport, read_split

KIND = new_kind("relation_extraction")

TINY = {
    "attention_probs_dropout_prob": 0.0, "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
    "hidden_size": 32, "initializer_range": 0.02, "intermediate_size": 64, "max_position_embeddings": 128,
    "num_attention_heads": 2, "num_hidden_layers": 2, "type_vocab_size": 2,
}


def source(fmt: str, **extra):
    model, _ = READERS[fmt]
    return model.model_validate({"format": fmt, "dir": ".", "train": "x", "dev": "x", "test": "x", **extra})


def triple(subject: tuple[int, int, str], predicate: str, obj: tuple[int, int, str]) -> dict:
    return {
        "subject": dict(zip(("start", "end", "text"), subject)),
        "predicate": predicate,
        "object": dict(zip(("start", "end", "text"), obj)),
    }


def placed_record(record_id: str, text: str, triples: list[tuple[str, str, str]]) -> dict:
    """A record whose mentions are placed at their first occurrence in ``text``."""

    def mention(value: str) -> tuple[int, int, str]:
        start = text.index(value)
        return start, start + len(value), value

    return {"id": record_id, "text": text, "triples": [triple(mention(s), p, mention(o)) for s, p, o in triples]}


# --- readers ---------------------------------------------------------------------------------------


@pytest.mark.unit
def test_duie_reader_places_first_occurrences_and_counts_skips(tmp_path: Path) -> None:
    lines = [
        {"text": "《青花瓷》由周杰伦演唱，周杰伦作曲", "spo_list": [
            {"subject": "青花瓷", "predicate": "歌手", "object": {"@value": "周杰伦"}},
            {"subject": "青花瓷", "predicate": "歌手", "object": {"@value": "周杰伦"}},
            {"subject": "青花瓷", "predicate": "作曲", "object": "周杰伦"},
            {"subject": "稻香", "predicate": "歌手", "object": {"@value": "周杰伦"}},
            {"subject": "青花瓷", "predicate": "作词", "object": {"@value": "方文山"}},
            {"subject": "周杰伦", "predicate": "饰演", "object": {"@value": "青花瓷", "inWork": "x"}},
        ]},
        {"text": "没有关系", "spo_list": []},
    ]
    path = tmp_path / "train.json"
    path.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n\n", encoding="utf-8")
    report = ReadReport()
    records = read_split(source("duie"), path, "train", report)
    assert [r["id"] for r in records] == ["train-1", "train-2"]
    first = records[0]
    assert [t["predicate"] for t in first["triples"]] == ["歌手", "作曲", "饰演"]
    singer = first["triples"][0]
    assert singer["subject"] == {"start": 1, "end": 4, "text": "青花瓷"}
    assert singer["object"] == {"start": 6, "end": 9, "text": "周杰伦"}  # the first of two occurrences
    assert records[1]["triples"] == []
    assert report.as_dict() == {"train": {
        "repeated triple": 1, "subject not found in text": 1, "object not found in text": 1,
        "object slot 'inWork' dropped (only '@value' is kept)": 1, "empty line": 1,
    }}


@pytest.mark.unit
def test_duie_reader_schema_and_errors(tmp_path: Path) -> None:
    (tmp_path / "schema.json").write_text(json.dumps([{"predicate": "歌手"}], ensure_ascii=False), encoding="utf-8")
    path = tmp_path / "train.json"
    spo_list = [
        {"subject": "稻香", "predicate": "作曲", "object": {"@value": "周杰伦"}},
        {"subject": "稻香", "predicate": "歌手", "object": {"@value": "周杰伦"}},
    ]
    path.write_text(json.dumps({"text": "周杰伦唱稻香", "spo_list": spo_list}, ensure_ascii=False), encoding="utf-8")
    report = ReadReport()
    records = read_split(source("duie", schema_file="schema.json"), path, "train", report)
    assert len(records[0]["triples"]) == 1 and report.as_dict() == {"train": {"predicate not in schema": 1}}
    path.write_text('{"text": "a"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"train.json:1: field 'spo_list' is missing"):
        read_split(source("duie"), path, "train", ReadReport())
    path.write_text('{"text": "a", "spo_list": [{"subject": "a", "predicate": "p"}]}\n{oops\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"train.json:1: spo_list\[0\]: field 'object' is missing"):
        read_split(source("duie"), path, "train", ReadReport())


@pytest.mark.unit
def test_conll04_reader_gives_exact_character_spans(tmp_path: Path) -> None:
    sentences = [
        {"tokens": ["John", "Smith", "works", "for", "U.S.", "Steel", "in", "Pittsburgh", "."],
         "entities": [[0, 2, "Peop"], [4, 6, "Org"], [7, 8, "Loc"]],
         "relations": [[0, 2, 4, 6, "Work_For"], [4, 6, 7, 8, "OrgBased_In"], [0, 2, 4, 6, "Work_For"]]},
    ]
    path = tmp_path / "train.json"
    path.write_text(json.dumps(sentences), encoding="utf-8")
    report = ReadReport()
    (record,) = read_split(source("conll04"), path, "train", report)
    assert record["text"] == "John Smith works for U.S. Steel in Pittsburgh ."
    for t in record["triples"]:
        for mention in (t["subject"], t["object"]):
            assert record["text"][mention["start"] : mention["end"]] == mention["text"]
    assert [(t["subject"]["text"], t["predicate"], t["object"]["text"]) for t in record["triples"]] == [
        ("John Smith", "Work_For", "U.S. Steel"), ("U.S. Steel", "OrgBased_In", "Pittsburgh")]
    assert record["triples"][0]["object"] == {"start": 21, "end": 31, "text": "U.S. Steel"}
    assert report.as_dict() == {"train": {"repeated relation": 1}}
    path.write_text(json.dumps([{"tokens": ["a"], "entities": [], "relations": [[0, 2, 0, 1, "R"]]}]), encoding="utf-8")
    with pytest.raises(DataError, match=r"sentence 0: relations\[0\]: head span \[0, 2\) is not within the 1 tokens"):
        read_split(source("conll04"), path, "train", ReadReport())


@pytest.mark.unit
def test_real_files_read_with_their_published_counts(shared_data: Path) -> None:
    report = ReadReport()
    duie_source = source("duie", schema_file="duie_schema.json")
    duie = read_split(duie_source, shared_data / "zh/duie/train_data_5000.json", "train", report)
    assert len(duie) == 5000
    kept = sum(len(r["triples"]) for r in duie)
    skipped = report.as_dict().get("train", {})
    dropped = sum(n for reason, n in skipped.items() if "slot" not in reason)
    assert kept + dropped == 8945 and dropped < 20
    assert len({t["predicate"] for r in duie for t in r["triples"]}) == 46
    for name, sentences, relations in (("train", 922, 1283), ("valid", 231, 343), ("test", 288, 422)):
        rows = read_split(source("conll04"), shared_data / f"en/conll04/{name}.CoNLL04.json", name, ReadReport())
        assert len(rows) == sentences and sum(len(r["triples"]) for r in rows) == relations
    assert len({t["predicate"] for r in rows for t in r["triples"]}) == 5


# --- pointers ------------------------------------------------------------------------------------


@pytest.mark.unit
def test_pointer_labels_and_decoding_round_trip() -> None:
    spans = [(0, 1, 3), (2, 4, 4), (0, 5, 7)]
    labels = pointer_labels(9, spans, 3)
    assert labels.shape == (9, 3, 2) and labels.sum() == 6 and labels[1, 0, 0] == labels[3, 0, 1] == 1
    assert decode_pointers(labels.astype(float), 0.5) == sorted(spans, key=lambda s: (s[1], s[0]))
    with pytest.raises(ValueError):
        pointer_labels(4, [(0, 3, 4)], 1)


@pytest.mark.unit
def test_decoder_pairs_each_start_with_the_nearest_end_inside_the_window() -> None:
    probs = np.zeros((8, 1, 2))
    probs[[1, 2, 6], 0, 0] = [0.9, 0.7, 0.8]  # starts
    probs[[3, 5, 7], 0, 1] = [0.6, 0.9, 0.95]  # ends
    assert decode_pointers(probs, 0.5) == [(0, 1, 3), (0, 2, 3), (0, 6, 7)]
    assert decode_pointers(probs, 0.5, lo=1, hi=7) == [(0, 1, 3), (0, 2, 3)]  # no end before 7 for start 6
    assert decode_pointers(probs, 0.75) == [(0, 1, 5), (0, 6, 7)]
    probs[0, 0, 0] = probs[0, 0, 1] = 1.0  # [CLS] is outside the window
    assert decode_pointers(probs, 0.75, lo=1)[0] == (0, 1, 5)


@pytest.mark.model
def test_targets_and_char_triples_on_a_chinese_encoding(zh_vocab: Path) -> None:
    from pipeline.text.tokenization import build_tokenizer

    tokenizer = build_tokenizer("zh", zh_vocab, lowercase=True)
    record = {"id": "train-1", "text": "周杰伦唱稻香，方文山作词", "triples": [
        triple((4, 6, "稻香"), "歌手", (0, 3, "周杰伦")),
        triple((4, 6, "稻香"), "作词", (7, 10, "方文山")),
        triple((7, 10, "方文山"), "朋友", (0, 3, "周杰伦")),
    ]}
    labels = ["作词", "歌手"]
    features = KIND.encode(record, tokenizer, labels, maxlen=32)
    assert features["subject_spans"].tolist() == [[5, 6]]  # 方文山 only has an unknown predicate
    assert features["object_spans"].tolist() == [[0, 0, 8, 10], [0, 1, 1, 3]]  # (subject row, predicate, span)
    found = [((5, 6), 1, (1, 3)), ((5, 6), 0, (8, 10)), ((5, 6), 1, (1, 3))]
    assert char_triples(found, features, record["text"], labels) == record["triples"][:2]
    truncated = KIND.encode(record, tokenizer, labels, maxlen=8)  # 方文山 is cut off
    assert truncated["object_spans"].tolist() == [[0, 1, 1, 3]]
    placed = token_triples(record["triples"], tokenizer.encode(record["text"]), labels + ["朋友"])
    both = pointer_targets(placed)
    assert both["subject_spans"].tolist() == [[5, 6], [8, 10]] and [1, 2, 1, 3] in both["object_spans"].tolist()
    empty = pointer_targets([])
    assert empty["subject_spans"].tolist() == [[0, 0]] and empty["object_spans"].tolist() == [[0, 0, 0, 0]]


@pytest.mark.model
def test_in_graph_labels_and_subject_sampling_match_the_numpy_reference() -> None:
    from pipeline.kinds.relation_extraction.layers import PointerLoss, SampleSubject, pointer_label_tensor
    from pipeline.runtime.tf_runtime import tf

    spans = np.array([[[1, 2, 4], [0, 1, 1], [0, 0, 0]], [[0, 3, 3], [0, 0, 0], [0, 0, 0]]], np.int32)
    selected = spans[..., 2] > 0
    labels = pointer_label_tensor(tf.constant(spans), tf.constant(selected), 6, 3).numpy()
    for row in range(2):
        expected = pointer_labels(6, [tuple(s) for s, keep in zip(spans[row], selected[row]) if keep], 3)
        assert np.array_equal(labels[row], expected)
    subject_spans = tf.constant([[[2, 3], [5, 5], [0, 0]], [[0, 0], [0, 0], [0, 0]]], tf.int32)
    sampler = SampleSubject()
    draws = {tuple(sampler(subject_spans, training=True)[1].numpy()[0]) for _ in range(40)}
    assert draws == {(2, 3), (5, 5)}
    index, span = sampler(subject_spans, training=False)
    assert index.numpy().tolist() == [0, 0] and span.numpy().tolist() == [[2, 3], [0, 0]]
    # padding tokens (id 0) do not count: appending one leaves the loss unchanged
    token_ids = tf.constant([[2, 7, 7, 7, 7, 7, 3], [2, 7, 7, 3, 0, 0, 0]])
    object_spans = tf.constant([[[0, 1, 4, 5], [1, 0, 1, 1]], [[0, 0, 0, 0], [0, 0, 0, 0]]], tf.int32)
    subject_probs = tf.random.stateless_uniform((2, 8, 2), (1, 2), 0.01, 0.99)
    object_probs = tf.random.stateless_uniform((2, 8, 2, 2), (3, 4), 0.01, 0.99)
    losses = []
    for pad in (0, 1):
        layer = PointerLoss()
        ids = tf.pad(token_ids, [[0, 0], [0, pad]])
        length = 7 + pad
        layer([ids, subject_spans, object_spans, index, subject_probs[:, :length], object_probs[:, :length]])
        losses.append(float(layer.losses[0]))
    assert losses[0] == pytest.approx(losses[1]) and losses[0] > 0


@pytest.mark.model
def test_english_spans_map_to_first_and_last_word_pieces(en_vocab: Path) -> None:
    from pipeline.text.tokenization import build_tokenizer

    tokenizer = build_tokenizer("en", en_vocab, lowercase=True)
    text = "Brzezinski lived in Dzerzhinsk ."
    record = placed_record("1", text, [("Brzezinski", "Live_In", "Dzerzhinsk")])
    features = KIND.encode(record, tokenizer, ["Live_In"], maxlen=32)
    # first to last word-piece: br ##ze ##zin ##ski, d ##zer ##zhi ##nsk
    assert features["subject_spans"].tolist() == [[1, 4]] and features["object_spans"].tolist() == [[0, 0, 7, 10]]
    assert char_triples([((1, 4), 0, (7, 10))], features, text, ["Live_In"]) == record["triples"]


# --- scores ----------------------------------------------------------------------------------------


@pytest.mark.unit
def test_triple_scores_text_and_span_matching() -> None:
    gold = [
        {"triples": [triple((0, 2, "ab"), "p", (3, 4, "c")), triple((0, 2, "ab"), "q", (5, 6, "d"))]},
        {"triples": [triple((0, 1, "x"), "p", (2, 3, "y"))]},
    ]
    predicted = [
        {"triples": [triple((0, 2, "ab"), "p", (7, 8, "c")), triple((0, 2, "ab"), "p", (7, 8, "c")),
                     triple((0, 2, "ab"), "r", (5, 6, "d"))]},
        {"triples": []},
    ]
    micro, per = triple_scores(gold, predicted, by="text")
    assert micro == pytest.approx({"precision": 0.5, "recall": 1 / 3, "f1": 0.4})
    assert per["p"]["f1"] == pytest.approx(2 / 3) and per["q"]["support"] == 1 and per["r"]["predicted"] == 1
    scores = KIND.score(gold, predicted, [])
    assert list(scores) == ["f1", "precision", "recall", "span_f1"]
    assert scores["f1"] == pytest.approx(0.4) and scores["span_f1"] == 0.0
    assert KIND.detailed_scores(gold, predicted, []) == pytest.approx({"f1.p": 2 / 3, "f1.q": 0.0, "f1.r": 0.0})
    assert KIND.score(gold, [{"triples": []}] * 2, [])["f1"] == 0.0


@pytest.mark.unit
def test_memorised_baseline_finds_known_pairs() -> None:
    train = [{"triples": [triple((0, 2, "ab"), "p", (3, 4, "c")), triple((0, 1, "z"), "q", (2, 3, "w"))]}]
    test = [{"text": "xx ab yc", "triples": [triple((3, 5, "ab"), "p", (7, 8, "c"))]}, {"text": "z", "triples": []}]
    predictions = memorised_predictions(train, test)
    assert predictions[0]["triples"] == test[0]["triples"] and predictions[1]["triples"] == []
    assert KIND.baseline(train, test, ["p", "q"])["f1"] == 1.0


@pytest.mark.unit
def test_reports_are_written(tmp_path: Path) -> None:
    gold = [{"triples": [triple((0, 2, "ab"), "p", (3, 4, "c"))]}]
    files = KIND.write_reports(gold, gold, ["p"], tmp_path)
    table = json.loads((tmp_path / "per_predicate.json").read_text(encoding="utf-8"))
    assert table["micro"]["f1"] == 1.0 and table["predicates"]["p"]["support"] == 1
    assert all(f.is_file() for f in files) and files[1].suffix == ".png"


# --- a tiny model: train a few steps, save, rebuild, predict -------------------------------------------


@pytest.mark.model
def test_tiny_model_trains_and_predicts_the_same_after_reload(tmp_path: Path, zh_vocab: Path) -> None:
    import shutil

    from pipeline.backbone.checkpoint import random_bert_arrays, write_bert_config, write_tf_checkpoint
    from pipeline.config.schema import TaskConfig
    from pipeline.training.modeling import build_task_model
    from pipeline.runtime.tf_runtime import set_seed
    from pipeline.text.tokenization import build_tokenizer
    from pipeline.training.trainer import DevEvaluation, fit

    shutil.copyfile(zh_vocab, tmp_path / "vocab.txt")
    config = {**TINY, "vocab_size": sum(1 for _ in open(zh_vocab, encoding="utf-8"))}
    write_bert_config(config, tmp_path / "bert_config.json")
    write_tf_checkpoint(random_bert_arrays(config, seed=1), tmp_path / "bert_model.ckpt")
    cfg = TaskConfig.model_validate({
        "kind": "relation_extraction", "language": "zh", "backbone": "tiny",
        "data": {"format": "duie", "dir": ".", "train": "x", "dev": "x", "test": "x"},
        "maxlen": 32, "batch_size": 4, "epochs": 2, "learning_rate": 1e-3, "warmup_proportion": 0.1,
        "weight_decay": 0.01, "dropout": 0.1, "max_train_samples": None, "max_dev_samples": None,
        "max_test_samples": None, "seed": 1, "precision": "float32",
        "head": {"subject_threshold": 0.005, "object_threshold": 0.0005},
    })
    from pipeline.kinds.factory import build_kind

    kind = build_kind(cfg)  # the thresholds of its head options decode the predictions
    records = [
        placed_record(f"r{i}", f"{a}唱{b}，{c}作词", [(b, "歌手", a), (b, "作词", c)])
        for i, (a, b, c) in enumerate(4 * [("张三", "春天", "李四"), ("王五", "夏天", "赵六"), ("孙七", "秋天", "周八")])
    ]
    set_seed(1)
    tokenizer = build_tokenizer("zh", tmp_path / "vocab.txt", lowercase=True)
    labels = kind.label_space(records, cfg)
    features = [kind.encode(r, tokenizer, labels, cfg.maxlen) for r in records]
    model = build_task_model(kind, tmp_path / "bert_config.json", tmp_path / "bert_model.ckpt", "bert", labels, cfg)
    weights = tmp_path / "model.weights.h5"
    rows = []
    evaluation = DevEvaluation(kind, records[:4], features[:4], labels, 4, weights, rows.append)
    fit(kind, model, cfg, features, evaluation)
    assert len(rows) == 2 and all(np.isfinite(row["loss"]) for row in rows) and rows[1]["loss"] < rows[0]["loss"]
    model.load_weights(str(weights))
    before = kind.predict(model, records, features, labels, 8)
    assert any(p["triples"] for p in before)
    for p, r in zip(before, records):
        for t in p["triples"]:
            assert t["predicate"] in labels
            assert r["text"][t["subject"]["start"] : t["subject"]["end"]] == t["subject"]["text"]
    rebuilt = build_task_model(kind, tmp_path / "bert_config.json", None, "bert", labels, cfg)
    rebuilt.load_weights(str(weights))
    after = kind.predict(rebuilt, records, features, labels, 8)
    assert after == before
    assert set(kind.score(records, after, labels)) == {"f1", "precision", "recall", "span_f1"}

"""Sequence labeling: span <-> BIO, token alignment, readers, entity scores, Viterbi, CRF head round trip."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.data.readers import DataError, ReadReport, read_split
from pipeline.data.readers.cluener import CluenerSource
from pipeline.data.readers.conll import ConllSource
from pipeline.text.spans import (
    I_WITHOUT_B,
    TYPE_CHANGE,
    MalformedBio,
    bio_to_spans,
    char_span_to_units,
    entity_scores,
    parse_bio,
    remove_overlaps,
    spans_to_bio,
    word_units,
)

# --- spans <-> BIO ------------------------------------------------------------------------------


@pytest.mark.unit
def test_spans_to_bio_and_back() -> None:
    spans = [(0, 2, "PER"), (2, 3, "PER"), (5, 8, "LOC")]
    tags = spans_to_bio(spans, 9)
    assert tags == ["B-PER", "I-PER", "B-PER", "O", "O", "B-LOC", "I-LOC", "I-LOC", "O"]
    assert bio_to_spans(tags, strict=True) == spans
    assert spans_to_bio([], 3) == ["O", "O", "O"] and bio_to_spans([]) == []


@pytest.mark.unit
@pytest.mark.parametrize(
    "spans, message",
    [
        ([(0, 3, "A"), (2, 4, "B")], "overlap"),
        ([(1, 1, "A")], "empty or outside"),
        ([(3, 6, "A")], "empty or outside"),
        ([(-1, 2, "A")], "empty or outside"),
        ([(0, 1, "")], "no valid type"),
    ],
)
def test_bad_spans_are_refused(spans: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        spans_to_bio(spans, 5)


@pytest.mark.unit
def test_malformed_bio_is_repaired_and_reported_or_refused() -> None:
    tags = ["I-PER", "I-PER", "O", "I-LOC", "B-ORG", "I-LOC", "I-LOC"]
    spans, repairs = parse_bio(tags)
    assert spans == [(0, 2, "PER"), (3, 4, "LOC"), (4, 5, "ORG"), (5, 7, "LOC")]
    assert repairs == [(0, I_WITHOUT_B), (3, I_WITHOUT_B), (5, TYPE_CHANGE)]
    assert bio_to_spans(tags) == spans
    with pytest.raises(MalformedBio, match=r"tag 0 \('I-PER'\)"):
        bio_to_spans(tags, strict=True)
    with pytest.raises(ValueError, match="not a BIO tag"):
        parse_bio(["O", "E-PER"])
    with pytest.raises(ValueError, match="not a BIO tag"):
        parse_bio(["B-"])


@st.composite
def typed_spans(draw: st.DrawFn) -> tuple[list, int]:
    """Non-overlapping, in-range spans (adjacent ones included) and the sequence length."""
    pieces = draw(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 4), st.sampled_from(["PER", "LOC", "X-Y"]))))
    spans, position = [], 0
    for gap, length, label in pieces:
        spans.append((position + gap, position + gap + length, label))
        position += gap + length
    return spans, position + draw(st.integers(0, 3))


@pytest.mark.unit
@settings(max_examples=300, deadline=None)
@given(typed_spans())
def test_span_bio_span_round_trip_is_exact(case: tuple[list, int]) -> None:
    spans, length = case
    tags = spans_to_bio(spans, length)
    assert len(tags) == length
    assert parse_bio(tags) == (spans, [])


@pytest.mark.unit
@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["O", "B-A", "I-A", "B-B", "I-B"]), max_size=12))
def test_any_tag_sequence_repairs_to_a_fixed_point(tags: list[str]) -> None:
    spans = bio_to_spans(tags)
    assert bio_to_spans(spans_to_bio(spans, len(tags)), strict=True) == spans


@pytest.mark.unit
def test_remove_overlaps_keeps_the_longest() -> None:
    spans = [(16, 20, "company"), (15, 35, "book"), (23, 27, "company"), (0, 2, "x"), (0, 2, "x")]
    kept, dropped = remove_overlaps(spans)
    assert kept == [(0, 2, "x"), (15, 35, "book")]
    assert sorted(dropped) == [(0, 2, "x"), (16, 20, "company"), (23, 27, "company")]


@pytest.mark.unit
def test_char_spans_grow_to_whole_units() -> None:
    units = word_units("  New York-based  firm ")
    assert units == [(2, 5), (6, 16), (18, 22)]
    assert char_span_to_units(units, 2, 16) == (0, 2)
    assert char_span_to_units(units, 6, 10) == (1, 2)  # 'York' inside 'York-based'
    assert char_span_to_units(units, 16, 18) is None  # whitespace only


# --- alignment with the tokenizers ----------------------------------------------------------------


def _entity(text: str, mention: str, label: str) -> dict:
    start = text.index(mention)
    return {"start": start, "end": start + len(mention), "type": label, "text": mention}


@pytest.fixture(scope="module")
def zh_tokenizer(zh_vocab: Path):
    from pipeline.text.tokenization import build_tokenizer

    return build_tokenizer("zh", zh_vocab, True)


@pytest.fixture(scope="module")
def en_tokenizer(en_vocab: Path):
    from pipeline.text.tokenization import build_tokenizer

    return build_tokenizer("en", en_vocab, True)


@pytest.mark.model
def test_chinese_tags_one_per_character_with_spaces_and_unknown_characters(zh_tokenizer) -> None:
    from pipeline.kinds.factory import new_kind
    KIND = new_kind("sequence_labeling")

    text = "我在 New York 工作😀"
    record = {"id": "z", "text": text, "entities": [_entity(text, "New York", "LOC"), _entity(text, "作😀", "X")]}
    labels = KIND.label_space([record], None)
    features = KIND.encode(record, zh_tokenizer, labels, maxlen=64)
    tokens = zh_tokenizer.encode(text).tokens
    assert tokens[3] == "[unused1]" and tokens[-2] == "[UNK]" and len(tokens) == len(text) + 2
    tags = [labels[i] for i in features["target"]]
    assert tags == ["O", "O", "O", "O"] + ["B-LOC"] + ["I-LOC"] * 7 + ["O", "O", "B-X", "I-X", "O"]
    assert features["first_pieces"] == list(range(1, len(text) + 1))
    decoded = KIND.entities_from_path(features["target"], text, features, labels)
    assert decoded == record["entities"]


@pytest.mark.model
def test_english_first_word_pieces_carry_the_word_tags(en_tokenizer) -> None:
    from pipeline.kinds.factory import new_kind
    KIND = new_kind("sequence_labeling")

    text = "Fischler proposed EU-wide measures in Brussels ."
    entities = [_entity(text, "Fischler", "PER"), _entity(text, "EU-wide", "MISC"), _entity(text, "Brussels", "LOC")]
    record = {"id": "e", "text": text, "entities": entities}
    labels = KIND.label_space([record], None)
    features = KIND.encode(record, en_tokenizer, labels, maxlen=64)
    tokens = en_tokenizer.encode(text).tokens
    pieces = list(zip(tokens, (labels[i] for i in features["target"])))
    assert pieces == [
        ("[CLS]", "O"), ("fis", "B-PER"), ("##ch", "I-PER"), ("##ler", "I-PER"), ("proposed", "O"),
        ("eu", "B-MISC"), ("-", "I-MISC"), ("wide", "I-MISC"), ("measures", "O"), ("in", "O"),
        ("brussels", "B-LOC"), (".", "O"), ("[SEP]", "O"),
    ]  # fmt: skip
    assert features["first_pieces"] == [1, 4, 5, 8, 9, 10, 11]
    # decoding reads first pieces only: junk on continuation pieces changes nothing
    path = list(features["target"])
    path[2], path[3], path[6] = labels.index("B-LOC"), labels.index("O"), labels.index("B-PER")
    assert KIND.entities_from_path(path, text, features, labels) == entities
    # a word lost to truncation is never predicted
    short = KIND.encode(record, en_tokenizer, labels, maxlen=8)
    assert short["first_pieces"][-3:] == [-1, -1, -1] and len(short["target"]) == 8
    assert KIND.entities_from_path(short["target"], text, short, labels) == entities[:2]


# --- readers ------------------------------------------------------------------------------------


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


CLUENER = CluenerSource(format="cluener_json", dir=".", train="train.jsonl", dev="dev.jsonl", test="dev.jsonl")
CONLL = ConllSource(format="conll", dir=".", train="t", dev="d", test="e")


@pytest.mark.unit
def test_cluener_reader_checks_every_span(tmp_path: Path) -> None:
    rows = [
        {"text": "浙商银行叶老桂", "label": {"company": {"浙商银行": [[0, 3]]}, "name": {"叶老桂": [[4, 6]]}}},
        {"text": "生生不息CSOL", "label": {"game": {"CSOL": [[4, 7], [4, 8]], "生不": [[0, 1]]}}},
        {"text": "《招商年报》", "label": {"book": {"《招商年报》": [[0, 5]]}, "company": {"招商": [[1, 2]]}}},
        {"text": "无实体", "label": {}},
    ]
    path = _write(tmp_path / "train.jsonl", [json.dumps(row, ensure_ascii=False) for row in rows] + ["", "  "])
    report = ReadReport()
    records = read_split(CLUENER, path, "train", report)
    assert [r["id"] for r in records] == ["train-1", "train-2", "train-3", "train-4"]
    assert records[0]["entities"] == [
        {"start": 0, "end": 4, "type": "company", "text": "浙商银行"},
        {"start": 4, "end": 7, "type": "name", "text": "叶老桂"},
    ]
    assert records[1]["entities"] == [{"start": 4, "end": 8, "type": "game", "text": "CSOL"}]
    assert [e["type"] for e in records[2]["entities"]] == ["book"] and records[3]["entities"] == []
    assert report.as_dict() == {
        "train": {
            "entity span outside the text": 1,
            "entity span does not spell its mention": 1,
            "entity overlapping a longer one (or a duplicate)": 1,
            "empty line": 2,
        }
    }


@pytest.mark.unit
@pytest.mark.parametrize(
    "line, message",
    [
        ('{"text": "abc", "label": ', r"x\.jsonl:2: not valid JSON"),
        ('{"label": {}}', r"x\.jsonl:2: field 'text' is missing"),
        ('{"text": "abc"}', r"x\.jsonl:2: field 'label' is missing"),
        ('{"text": "abc", "label": {"PER": {"ab": [[0, "1"]]}}}', r"x\.jsonl:2: field 'label\.PER\.ab' must be"),
        ('{"text": "abc", "label": {"PER": ["ab"]}}', r"x\.jsonl:2: field 'label\.PER' must be"),
    ],
)
def test_cluener_reader_names_file_line_and_field(tmp_path: Path, line: str, message: str) -> None:
    path = _write(tmp_path / "x.jsonl", ['{"text": "ok", "label": {}}', line])
    with pytest.raises(DataError, match=message):
        read_split(CLUENER, path, "dev", ReadReport())


@pytest.mark.unit
def test_conll_reader_builds_text_and_char_spans(tmp_path: Path) -> None:
    lines = [
        "-DOCSTART- -X- -X- O", "",
        "EU NNP B-NP B-ORG", "rejects VBZ B-VP O", "German JJ B-NP B-MISC", "call NN I-NP O", "",
        "Peter NNP B-NP I-PER", "Blackburn NNP I-NP I-PER", "New NNP I-NP I-LOC", "York NNP I-NP I-LOC", "",
        "-DOCSTART- -X- -X- O", "", "",
        "Last JJ O O",
    ]  # fmt: skip
    report = ReadReport()
    records = read_split(CONLL, _write(tmp_path / "t.txt", lines), "train", report)
    assert [r["id"] for r in records] == ["train-3", "train-8", "train-16"]
    assert records[0]["text"] == "EU rejects German call"
    assert records[0]["entities"] == [
        {"start": 0, "end": 2, "type": "ORG", "text": "EU"},
        {"start": 11, "end": 17, "type": "MISC", "text": "German"},
    ]
    assert records[1]["entities"] == [
        {"start": 0, "end": 15, "type": "PER", "text": "Peter Blackburn"},
        {"start": 16, "end": 24, "type": "LOC", "text": "New York"},
    ]
    assert records[2] == {"id": "train-16", "text": "Last", "entities": []}
    assert report.as_dict() == {"train": {f"repaired BIO: {I_WITHOUT_B}": 1, f"repaired BIO: {TYPE_CHANGE}": 1}}


@pytest.mark.unit
def test_conll_reader_tag_column_and_errors(tmp_path: Path) -> None:
    two_columns = ConllSource(format="conll", dir=".", train="t", dev="d", test="e", tag_column=1)
    records = read_split(two_columns, _write(tmp_path / "a.txt", ["Paris\tB-LOC\tx", "is\tO\ty"]), "dev", ReadReport())
    paris = {"start": 0, "end": 5, "type": "LOC", "text": "Paris"}
    assert records == [{"id": "dev-1", "text": "Paris is", "entities": [paris]}]
    with pytest.raises(DataError, match=r"b\.txt:2: field 'tag' \(column -1\): 'S-PER' is not an IOB2 tag"):
        read_split(CONLL, _write(tmp_path / "b.txt", ["A x y O", "B x y S-PER"]), "test", ReadReport())
    with pytest.raises(DataError, match=r"c\.txt:1: expected at least 2 .* found 1"):
        read_split(two_columns, _write(tmp_path / "c.txt", ["lonely"]), "test", ReadReport())


@pytest.mark.unit
def test_real_files_read_with_the_published_counts(shared_data: Path) -> None:
    cluener = shared_data / "zh" / "cluener"
    report = ReadReport()
    train = read_split(CLUENER, cluener / "train.jsonl", "train", report)
    dev = read_split(CLUENER, cluener / "dev.jsonl", "dev", report)
    assert (len(train), len(dev)) == (10_748, 1_343)
    # one train example nests two companies inside a book title: the book is kept
    assert report.as_dict() == {"train": {"entity overlapping a longer one (or a duplicate)": 2}}
    assert sum(len(r["entities"]) for r in dev) == 3_072
    conll = shared_data / "en" / "conll2003"
    counts = [len(read_split(CONLL, conll / f"{s}.txt", "x", report)) for s in ("train", "valid", "test")]
    assert counts == [14_041, 3_250, 3_453]


# --- scores ----------------------------------------------------------------------------------------


@pytest.mark.unit
def test_entity_scores_on_hand_made_cases() -> None:
    gold = [[(0, 2, "PER"), (5, 8, "LOC")], [(1, 3, "ORG")], []]
    predicted = [[(0, 2, "PER"), (5, 7, "LOC")], [(1, 3, "PER")], [(0, 1, "LOC")]]
    micro, per_type = entity_scores(gold, predicted)
    assert micro == pytest.approx({"precision": 1 / 4, "recall": 1 / 3, "f1": 2 / 7})
    assert per_type["PER"] == pytest.approx(
        {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1, "predicted": 2, "correct": 1}
    )
    assert per_type["LOC"]["f1"] == 0 and per_type["ORG"] == pytest.approx(
        {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1, "predicted": 0, "correct": 0}
    )
    assert entity_scores(gold, gold)[0]["f1"] == 1.0
    assert entity_scores([[(0, 1, "A"), (0, 1, "A")]], [[(0, 1, "A")]])[0]["f1"] == 1.0  # sets: duplicates count once
    with pytest.raises(ValueError, match="2 gold examples but 1 predicted"):
        entity_scores(gold[:2], predicted[:1])


@pytest.mark.unit
def test_kind_scores_baseline_and_reports(tmp_path: Path) -> None:
    from pipeline.kinds.factory import new_kind
    KIND = new_kind("sequence_labeling")

    def entities(*spans):
        return {"entities": [{"start": s, "end": e, "type": t, "text": ""} for s, e, t in spans]}

    records = [entities((0, 2, "PER"), (4, 6, "LOC")), entities((1, 2, "LOC"))]
    predictions = [entities((0, 2, "PER"), (4, 6, "PER")), entities((1, 2, "LOC"))]
    labels = KIND.label_space(records, None)
    assert labels == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert KIND.score(records, predictions, labels) == pytest.approx({"f1": 2 / 3, "precision": 2 / 3, "recall": 2 / 3})
    assert list(KIND.score(records, predictions, labels))[0] == KIND.primary_metric == "f1"
    detail = KIND.detailed_scores(records, predictions, labels)
    assert detail["f1.LOC"] == pytest.approx(2 / 3) and detail["recall.PER"] == 1.0 and detail["precision.PER"] == 0.5
    assert KIND.baseline(records, records, labels) == {"f1": 0.0, "precision": 0.0, "recall": 0.0}
    files = KIND.write_reports(records, predictions, labels, tmp_path)
    assert [f.name for f in files] == ["per_type.json", "per_type_f1.png"] and all(f.stat().st_size for f in files)
    assert json.loads(files[0].read_text())["types"]["LOC"]["support"] == 2


@pytest.mark.unit
def test_head_options_are_validated() -> None:
    from pipeline.config.schema import TaskConfig

    base = {
        "kind": "sequence_labeling", "language": "en", "backbone": "b",
        "data": {"format": "conll", "dir": ".", "train": "t", "dev": "d", "test": "e"},
        "maxlen": 32, "batch_size": 2, "epochs": 1, "learning_rate": 1e-3, "warmup_proportion": 0.0,
        "weight_decay": 0.0, "dropout": 0.0, "max_train_samples": None, "max_dev_samples": None,
        "max_test_samples": None, "seed": 1, "precision": "float32",
    }  # fmt: skip
    assert TaskConfig.model_validate(base).head_options.decoder == "crf"
    head = {"decoder": "softmax", "crf_lr_multiplier": 1000}
    options = TaskConfig.model_validate({**base, "head": head}).head_options
    assert options.decoder == "softmax" and options.crf_lr_multiplier == 1000.0
    with pytest.raises(ValueError, match="head.decoder"):
        TaskConfig.model_validate({**base, "head": {"decoder": "hmm"}})


# --- Viterbi ----------------------------------------------------------------------------------------


@pytest.mark.unit
def test_viterbi_uses_transitions_where_argmax_fails() -> None:
    from pipeline.kinds.sequence_labeling.kind import viterbi

    # tags: O, B-X, I-X; O -> I-X and start -> I-X are forbidden
    transitions = np.array([[0.0, 0.0, -1e4], [0.0, 0.0, 0.5], [0.0, 0.0, 0.5]])
    emissions = np.log(np.array([[0.9, 0.05, 0.05], [0.4, 0.2, 0.4], [0.2, 0.1, 0.7], [0.9, 0.05, 0.05]]))
    argmax = emissions.argmax(-1)
    assert argmax.tolist() == [0, 0, 2, 0]  # O O I-X O: an I-X after O
    best = viterbi(emissions, transitions)
    assert best.tolist() == [0, 1, 2, 0]  # O B-X I-X O
    tags = ["O", "B-X", "I-X"]
    gold = [(1, 3, "X")]
    assert bio_to_spans([tags[i] for i in best]) == gold
    assert bio_to_spans([tags[i] for i in argmax]) != gold  # the repaired argmax misses the boundary
    assert viterbi(emissions, transitions, start=0, end=0)[[0, -1]].tolist() == [0, 0]
    assert viterbi(np.zeros((0, 3)), transitions).tolist() == []


@pytest.mark.unit
def test_viterbi_matches_brute_force() -> None:
    from pipeline.kinds.sequence_labeling.kind import viterbi

    def total(path: tuple[int, ...], emissions: np.ndarray, transitions: np.ndarray) -> float:
        return sum(emissions[t, y] for t, y in enumerate(path)) + sum(transitions[a, b] for a, b in zip(path, path[1:]))

    rng = np.random.default_rng(0)
    for _ in range(20):
        n, k = rng.integers(1, 6), rng.integers(1, 4)
        emissions, transitions = rng.normal(size=(n, k)), rng.normal(size=(k, k))
        paths = itertools.product(range(k), repeat=n)
        best = max(paths, key=lambda path: total(path, emissions, transitions))
        assert viterbi(emissions, transitions).tolist() == list(best)


# --- CRF head: build, train, save, rebuild, reload ----------------------------------------------------


@pytest.mark.model
def test_crf_head_trains_and_decodes_the_same_after_reload(tmp_path: Path) -> None:
    from pipeline.backbone.checkpoint import random_bert_arrays, write_bert_config, write_tf_checkpoint
    from pipeline.config.schema import TaskConfig
    from pipeline.kinds.sequence_labeling.kind import CRF_LAYER, crf_transitions
    from pipeline.kinds.factory import new_kind
    KIND = new_kind("sequence_labeling")
    from pipeline.training.modeling import build_task_model
    from pipeline.runtime.tf_runtime import set_seed
    from pipeline.text.tokenization import build_tokenizer
    from pipeline.training.trainer import DevEvaluation, fit

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused1]", *"张三李四在北京上海工作住和去了"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    config = {
        "attention_probs_dropout_prob": 0.0, "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "hidden_size": 32,
        "initializer_range": 0.02, "intermediate_size": 64, "max_position_embeddings": 64, "num_attention_heads": 2,
        "num_hidden_layers": 1, "type_vocab_size": 2, "vocab_size": len(vocab),
    }  # fmt: skip
    write_bert_config(config, tmp_path / "bert_config.json")
    write_tf_checkpoint(random_bert_arrays(config, seed=0), tmp_path / "bert_model.ckpt")
    cfg = TaskConfig.model_validate({
        "kind": "sequence_labeling", "language": "zh", "backbone": "tiny",
        "data": {"format": "cluener_json", "dir": ".", "train": "a", "dev": "b", "test": "c"},
        "maxlen": 32, "batch_size": 4, "epochs": 1, "learning_rate": 3e-3, "warmup_proportion": 0.0,
        "weight_decay": 0.0, "dropout": 0.0, "max_train_samples": None, "max_dev_samples": None,
        "max_test_samples": None, "seed": 1, "precision": "float32", "head": {"crf_lr_multiplier": 100.0},
    })  # fmt: skip
    texts = ["张三在北京工作", "李四住上海", "张三和李四去了北京", "李四 在 上海", "王五在北京", "张三去了上海"] * 4
    names = {"张三": "PER", "李四": "PER", "北京": "LOC", "上海": "LOC"}
    records = [
        {"id": str(i), "text": text, "entities": [_entity(text, m, kind) for m, kind in names.items() if m in text]}
        for i, text in enumerate(texts)
    ]
    for record in records:
        record["entities"].sort(key=lambda entity: entity["start"])
    tokenizer = build_tokenizer("zh", tmp_path / "vocab.txt", True)
    labels = KIND.label_space(records, cfg)
    features = [KIND.encode(r, tokenizer, labels, cfg.maxlen) for r in records]

    set_seed(1)
    model = build_task_model(KIND, tmp_path / "bert_config.json", tmp_path / "bert_model.ckpt", "bert", labels, cfg)
    initial = crf_transitions(model)
    padded = model.predict([np.array([[2, 6, 7, 3, 0, 0]]), np.zeros((1, 6))], verbose=0)
    assert np.isneginf(padded[0, 4:]).all() and np.isfinite(padded[0, :4]).all()  # padding is masked
    weights = tmp_path / "model.weights.h5"
    evaluation = DevEvaluation(KIND, records, features, labels, 8, weights, on_epoch=lambda row: None)
    fit(KIND, model, cfg, features * 3, evaluation)
    assert evaluation.best["dev_f1"] > 0.5
    before = KIND.predict(model, records, features, labels, 8)
    assert not np.allclose(crf_transitions(model), initial)  # the transitions were trained

    rebuilt = build_task_model(KIND, tmp_path / "bert_config.json", None, "bert", labels, cfg)
    rebuilt.load_weights(str(weights))
    np.testing.assert_allclose(crf_transitions(rebuilt), crf_transitions(model), rtol=1e-6)
    assert rebuilt.get_layer(CRF_LAYER).lr_multiplier == 100.0
    assert KIND.predict(rebuilt, records, features, labels, 8) == before
    assert KIND.score(records, before, labels)["f1"] == evaluation.best["dev_f1"]

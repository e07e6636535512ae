"""What the model reads: the share of whitespace placeholders and of ``[UNK]`` among a split's input tokens.

A Chinese file read with spaces between its characters (a one-character-per-line corpus joined like
English) doubles every input with ``[unused1]`` tokens and trains to nothing; text in a script the
vocabulary lacks becomes ``[UNK]``. Both are counted here with the task's own tokenizer: the Chinese
one by characters (it makes one token per character, computed without TensorFlow), WordPiece by
tokenizing the inputs (whitespace makes no WordPiece token, so its placeholder share is 0).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Sequence

from pipeline.data.readers.base import INPUT_FIELDS
from pipeline.text.tokenization import (
    SPACE_TOKEN, TOKENIZERS, ChineseCharTokenizer, TextTokenizer, build_tokenizer, char_token, read_vocab,
)
from pipeline.text.vocab_extension import VocabExtension, extended_vocab, write_extended_vocab

TokenCount = Callable[[str], tuple[int, int, int]]
"""``text -> (tokens, whitespace placeholders, [UNK] tokens)``"""

#: above these shares of a split's tokens the report warns
WARN_SPACE_SHARE = 0.05
WARN_UNKNOWN_SHARE = 0.05

#: record ids listed per split
MAX_IDS = 5


def char_count(vocab: dict[str, int], lowercase: bool) -> TokenCount:
    """The count of :class:`ChineseCharTokenizer`: one token per character."""
    tokens: dict[str, str] = {}

    def count(text: str) -> tuple[int, int, int]:
        spaces = unknown = 0
        for ch in text:
            token = tokens.get(ch) or tokens.setdefault(ch, char_token(ch, vocab, lowercase))
            spaces += token == SPACE_TOKEN
            unknown += token == "[UNK]"
        return len(text), spaces, unknown

    return count


def tokenizer_count(tokenizer: TextTokenizer) -> TokenCount:
    """The count of a real tokenizer, from the tokens it makes of the whole text."""

    def count(text: str) -> tuple[int, int, int]:
        tokens = tokenizer.encode(text, maxlen=len(text) * 4 + 8).tokens[1:-1]
        return len(tokens), tokens.count(SPACE_TOKEN), tokens.count("[UNK]")

    return count


def count_for(language: str, vocab: str | os.PathLike[str], lowercase: bool) -> TokenCount:
    """The count for a task's tokenizer (the Chinese one without loading TensorFlow)."""
    if TOKENIZERS.get(language) is ChineseCharTokenizer:
        return char_count(read_vocab(vocab), lowercase)
    return tokenizer_count(build_tokenizer(language, vocab, lowercase))


def extended_count(
    language: str, vocab: str | os.PathLike[str], lowercase: bool, extension: VocabExtension,
) -> TokenCount:
    """The count for the task's tokenizer on the vocabulary extended by ``tokenizer.extend_vocab`` (the
    Chinese one without TensorFlow; WordPiece from the extended file, written to a temporary folder)."""
    if TOKENIZERS.get(language) is ChineseCharTokenizer:
        return char_count(extended_vocab(read_vocab(vocab), extension), lowercase)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "vocab.txt"
        write_extended_vocab(vocab, extension, path)
        return tokenizer_count(build_tokenizer(language, path, lowercase))


def token_shares(records: Sequence[dict], count: TokenCount) -> dict:
    """Input tokens of a split, how many are whitespace placeholders and ``[UNK]``, and the records
    with the most placeholders (by share)."""
    total = spaces = unknown = 0
    spaced: list[tuple[float, int, str]] = []
    for order, record in enumerate(records):
        n = s = u = 0
        for name in INPUT_FIELDS:
            if isinstance(value := record.get(name), str):
                a, b, c = count(value)
                n, s, u = n + a, s + b, u + c
        total, spaces, unknown = total + n, spaces + s, unknown + u
        if s:
            spaced.append((-s / n, order, record["id"]))
    return {
        "tokens": total,
        "space_placeholders": spaces,
        "unknown": unknown,
        "space_share": round(spaces / total, 4) if total else 0.0,
        "unknown_share": round(unknown / total, 4) if total else 0.0,
        "most_spaced_ids": [rid for _, _, rid in sorted(spaced)[:MAX_IDS]],
    }


def overall_space_share(parts: dict[str, dict]) -> float:
    """The whitespace-placeholder share of all splits' tokens together."""
    total = sum(part["tokens"] for part in parts.values())
    return sum(part["space_placeholders"] for part in parts.values()) / total if total else 0.0

"""Word boundaries of a tokenized text, for whole-word masking: Chinese words from jieba, English
words from WordPiece's ``##`` continuation pieces."""

from __future__ import annotations

import logging

from pipeline.text.tokenization import NO_SPAN, Encoding


def word_ids(text: str, encoding: Encoding, language: str) -> list[int | None]:
    """For each token of ``encoding`` (a single text, ``[CLS] text [SEP]``): ``None`` for special tokens,
    else the index of the word it belongs to.

    ``zh``: words are ``jieba.lcut(text)``; a token belongs to the word holding its first character.
    ``en``: a ``##`` piece belongs to the previous token's word; any other token starts a new word.
    """
    if language == "zh":
        return _jieba_word_ids(text, encoding)
    if language == "en":
        return _wordpiece_word_ids(encoding)
    raise ValueError(f"unknown language {language!r}; known: en, zh")


def _jieba_word_ids(text: str, encoding: Encoding) -> list[int | None]:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    char_word: list[int] = []
    for index, word in enumerate(jieba.lcut(text)):
        char_word += [index] * len(word)
    ids: list[int | None] = []
    for span in encoding.offsets:
        if span == NO_SPAN:
            ids.append(None)
        elif span[0] < len(char_word):
            ids.append(char_word[span[0]])
        else:  # past the words jieba returned (should not happen): a word of its own
            ids.append((char_word[-1] if char_word else -1) + 1 + len(ids))
    return ids


def _wordpiece_word_ids(encoding: Encoding) -> list[int | None]:
    ids: list[int | None] = []
    word = -1
    previous: int | None = None
    for token, span in zip(encoding.tokens, encoding.offsets):
        if span == NO_SPAN:
            ids.append(previous := None)
            continue
        if not (token.startswith("##") and previous is not None):
            word += 1
        ids.append(previous := word)
    return ids

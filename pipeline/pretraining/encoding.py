"""The corpus as token ids with each token's word, ready for masking (tqdm shows the progress)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.pretraining.loop import EncodedCorpus
from pipeline.pretraining.masking import per_token_words
from pipeline.pretraining.words import word_ids
from pipeline.text.tokenization import TextTokenizer, read_vocab

#: tokens a random replacement never picks: special tokens and unused slots
SPECIAL = re.compile(r"^\[(PAD|UNK|CLS|SEP|MASK|unused\d+)\]$")


def encode_corpus(texts: list[str], tokenizer: TextTokenizer, maxlen: int, language: str,
                  whole_word: bool) -> EncodedCorpus:
    """Each text encoded (truncated to ``maxlen``) with the word of each token: whole words with
    ``whole_word``, else every ordinary token its own word."""
    special = {tokenizer.token_to_id(token) for token in ("[CLS]", "[SEP]", "[PAD]")}
    token_ids, words = [], []
    for text in tqdm(texts, desc="encode corpus", unit="doc", mininterval=5, disable=len(texts) < 5000):
        encoding = tokenizer.encode(text, maxlen=maxlen)
        token_ids.append(np.asarray(encoding.token_ids, dtype=np.int32))
        words.append(word_ids(text, encoding, language) if whole_word else per_token_words(encoding.token_ids, special))
    return EncodedCorpus(token_ids, words)


def random_ids(vocab: Path) -> np.ndarray:
    """The ids a random replacement draws from: every vocabulary entry but special tokens and unused slots."""
    return np.asarray([index for token, index in read_vocab(vocab).items() if not SPECIAL.match(token)], dtype=np.int32)

"""``tokenizer.extend_vocab``: give frequent out-of-vocabulary units of the training data free ``[unusedN]`` slots.

A *unit* is what the task's tokenizer would like to be one token but the backbone vocabulary lacks:

* ``zh`` (:class:`~pipeline.text.tokenization.ChineseCharTokenizer`): a character it maps to ``[UNK]``
  (lower-cased when the backbone is lowercase, as the tokenizer looks characters up);
* ``en`` (bert4keras WordPiece): a whole word as bert4keras's basic tokenizer splits the text (lower-cased and
  accent-stripped when the backbone is lowercase) that is not one vocabulary token, i.e. that WordPiece splits
  into pieces or makes ``[UNK]``.

Units seen at least ``min_count`` times in the training texts (``query``, ``text``, ``text_b``), most frequent
first (ties by the unit), at most ``max_new``, take the free ``[unusedN]`` slots in id order. The extended
vocabulary file is the backbone's with those lines replaced, so every other id is unchanged and each new unit
starts from the embedding row of its slot. Control, format, surrogate, private-use and unassigned characters
are never added (they stay ``[UNK]``). No TensorFlow.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from pipeline.data.readers.base import INPUT_FIELDS
from pipeline.text.tokenization import SPACE_TOKEN, TextTokenizer, char_token, read_vocab

if TYPE_CHECKING:
    from pipeline.config.schema import TaskConfig

#: a free slot: ``[unusedN]``, except the Chinese tokenizer's whitespace token
_UNUSED = re.compile(r"\[unused\d+\]")

#: units shown in one-line descriptions
SHOWN = 8


@dataclass(frozen=True)
class VocabExtension:
    """The units added to a vocabulary and what limited them."""

    language: str
    min_count: int
    max_new: int
    #: unit -> id of the ``[unusedN]`` slot it takes, most frequent first
    units: dict[str, int]
    #: unit -> occurrences in the training texts (the added units only)
    counts: dict[str, int]
    #: distinct missing units seen at least ``min_count`` times
    candidates: int
    #: free ``[unusedN]`` slots of the backbone vocabulary
    free_slots: int
    #: the slot token each unit replaces
    slots: dict[str, str] = field(default_factory=dict)

    @property
    def wanted(self) -> int:
        """How many units the options ask for: the candidates, at most ``max_new``."""
        return min(self.candidates, self.max_new)

    @property
    def note(self) -> str | None:
        """Why fewer units than wanted were added (too few free slots), else None."""
        if len(self.units) >= self.wanted:
            return None
        return (f"only {self.free_slots} free [unusedN] slots for {self.wanted} wanted units: "
                f"{self.wanted - len(self.units)} units stay out of the vocabulary")

    def summary(self) -> dict[str, Any]:
        """A JSON-able record: options, counts, ``units`` {unit: id}, ``counts`` {unit: occurrences}, note."""
        return {
            "min_count": self.min_count, "max_new": self.max_new, "candidates": self.candidates,
            "wanted": self.wanted, "free_slots": self.free_slots, "added": len(self.units),
            "note": self.note, "units": dict(self.units), "counts": dict(self.counts),
        }

    def describe(self, shown: int = SHOWN) -> str:
        """One line: how many units were added, the first few, and the slot shortage if any."""
        first = ", ".join(f"{unit!r} ({self.counts[unit]}x -> {self.units[unit]})" for unit in list(self.units)[:shown])
        more = f", ... (+{len(self.units) - shown})" if len(self.units) > shown else ""
        line = (f"vocab extension (min_count {self.min_count}, max_new {self.max_new}): "
                f"{len(self.units)} of {self.candidates} candidate units added" + (f": {first}{more}" if first else ""))
        return line + (f"; {self.note}" if self.note else "")


# --- units -----------------------------------------------------------------------------------------


def _is_punctuation(ch: str) -> bool:
    """bert4keras ``Tokenizer._is_punctuation``."""
    code = ord(ch)
    return (33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126
            or unicodedata.category(ch).startswith("P"))


def _is_cjk(ch: str) -> bool:
    """bert4keras ``Tokenizer._is_cjk_character``."""
    code = ord(ch)
    return (0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0x20000 <= code <= 0x2A6DF
            or 0x2A700 <= code <= 0x2B73F or 0x2B740 <= code <= 0x2B81F or 0x2B820 <= code <= 0x2CEAF
            or 0xF900 <= code <= 0xFAFF or 0x2F800 <= code <= 0x2FA1F)


def _is_space(ch: str) -> bool:
    """bert4keras ``Tokenizer._is_space``."""
    return ch in " \n\r\t" or unicodedata.category(ch) == "Zs"


class _BasicTable(dict):
    """``str.translate`` table of bert4keras's basic tokenization: punctuation and CJK characters are set
    apart by spaces, spaces become ' ', NUL, U+FFFD and control (Cc, Cf) characters are dropped."""

    def __missing__(self, code: int) -> str | None:
        ch = chr(code)
        if _is_punctuation(ch) or _is_cjk(ch):
            value: str | None = f" {ch} "
        elif _is_space(ch):
            value = " "
        elif code == 0 or code == 0xFFFD or unicodedata.category(ch) in ("Cc", "Cf"):
            value = None
        else:
            value = ch
        self[code] = value
        return value


_BASIC = _BasicTable()


def basic_words(text: str, lowercase: bool) -> list[str]:
    """The words bert4keras's ``Tokenizer._tokenize`` hands to WordPiece (TensorFlow-free copy)."""
    if lowercase:
        text = "".join(ch for ch in unicodedata.normalize("NFD", text.lower()) if unicodedata.category(ch) != "Mn")
    return text.translate(_BASIC).split()


def _addable(unit: str) -> bool:
    """Whether a unit can be a vocabulary line: no control/format/surrogate/private-use/unassigned character."""
    return bool(unit) and not any(unicodedata.category(ch).startswith("C") for ch in unit)


def missing_units(texts: Iterable[str], language: str, vocab: Mapping[str, int], lowercase: bool) -> Counter:
    """Occurrences of each unit of ``texts`` that the vocabulary lacks (see the module docstring)."""
    found: Counter = Counter()
    if language == "zh":
        chars: Counter = Counter()
        for text in texts:
            chars.update(text)
        for ch, n in chars.items():
            if char_token(ch, vocab, lowercase) == "[UNK]":
                unit = ch.lower() if lowercase else ch
                if _addable(unit):
                    found[unit] += n
    elif language == "en":
        words: Counter = Counter()
        for text in texts:
            words.update(basic_words(text, lowercase))
        found.update({word: n for word, n in words.items() if word not in vocab and _addable(word)})
    else:
        raise ValueError(f"no vocabulary extension for language {language!r}")
    return found


def record_texts(records: Iterable[Mapping[str, Any]]) -> Iterable[str]:
    """Every input text of the records (``query``, ``text``, ``text_b`` when present)."""
    for record in records:
        for name in INPUT_FIELDS:
            if isinstance(value := record.get(name), str):
                yield value


def free_slots(vocab: Mapping[str, int]) -> list[tuple[int, str]]:
    """``(id, token)`` of the vocabulary's ``[unusedN]`` tokens in id order, without :data:`SPACE_TOKEN`
    (the Chinese tokenizer's whitespace token)."""
    return sorted((i, token) for token, i in vocab.items() if _UNUSED.fullmatch(token) and token != SPACE_TOKEN)


def plan_extension(
    records: Iterable[Mapping[str, Any]], language: str, vocab: Mapping[str, int], lowercase: bool,
    min_count: int, max_new: int,
) -> VocabExtension:
    """The units of the training records to add: seen at least ``min_count`` times, most frequent first
    (ties by the unit), at most ``max_new`` and at most as many as there are free slots."""
    counts = missing_units(record_texts(records), language, vocab, lowercase)
    ranked = sorted(((unit, n) for unit, n in counts.items() if n >= min_count), key=lambda item: (-item[1], item[0]))
    slots = free_slots(vocab)
    chosen = list(zip(ranked[:max_new], slots))
    return VocabExtension(
        language=language, min_count=min_count, max_new=max_new,
        units={unit: i for (unit, _), (i, _) in chosen}, counts={unit: n for (unit, n), _ in chosen},
        candidates=len(ranked), free_slots=len(slots), slots={unit: token for (unit, _), (_, token) in chosen},
    )


def extension_for(
    cfg: "TaskConfig", train_records: Iterable[Mapping[str, Any]], vocab_path: str | os.PathLike[str], lowercase: bool,
) -> VocabExtension | None:
    """The extension a task's ``tokenizer.extend_vocab`` asks for (None when unset): what the train stage
    adds and the validate stage reports; ``train_records`` are the records the task trains on."""
    options = cfg.tokenizer.extend_vocab
    if options is None:
        return None
    return plan_extension(train_records, cfg.language, read_vocab(vocab_path), lowercase,
                          options.min_count, options.max_new)


# --- the extended vocabulary ---------------------------------------------------------------------------


def extended_vocab(vocab: Mapping[str, int], extension: VocabExtension) -> dict[str, int]:
    """``vocab`` with each used slot token replaced by its unit (same ids), as the extended file reads."""
    by_id = {i: unit for unit, i in extension.units.items()}
    return {by_id.get(i, token): i for token, i in vocab.items()}


def write_extended_vocab(
    vocab_path: str | os.PathLike[str], extension: VocabExtension, out_path: str | os.PathLike[str],
) -> dict[str, int]:
    """Write ``vocab_path`` to ``out_path`` with each used ``[unusedN]`` line replaced by its unit (atomically);
    every other line, and so every id, is kept. Returns {unit: id} as the written file reads."""
    with open(vocab_path, encoding="utf-8", newline="") as handle:  # lines as read_vocab splits them, endings kept
        lines = list(handle)
    replace = {slot: unit for unit, slot in extension.slots.items()}
    for n, line in enumerate(lines):
        fields = line.split()
        token = fields[0] if fields else line.strip()
        if token in replace:
            lines[n] = replace.pop(token) + line[len(line.rstrip("\r\n")):]
    if replace:
        raise ValueError(f"{vocab_path}: no line for the slots {sorted(replace)}")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as handle:
        handle.write("".join(lines))
    os.replace(tmp, out)
    written = read_vocab(out)
    mapping = {unit: written.get(unit, -1) for unit in extension.units}
    wrong = {unit: i for unit, i in mapping.items() if i != extension.units[unit]}
    if wrong:
        raise ValueError(f"{out}: units not at their slots' ids: {wrong} (expected {extension.units})")
    return mapping


# --- [UNK] rate ----------------------------------------------------------------------------------------


def unk_rate(records: Iterable[Mapping[str, Any]], tokenizer: TextTokenizer) -> float:
    """The share of ``[UNK]`` among the tokens ``tokenizer`` makes of the records' input texts (0.0 without tokens)."""
    total = unknown = 0
    for text in record_texts(records):
        ids = tokenizer.encode(text, maxlen=len(text) * 4 + 8).token_ids[1:-1]
        total += len(ids)
        unknown += ids.count(tokenizer.unk_id)
    return unknown / total if total else 0.0

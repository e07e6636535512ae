"""The readers (``pipeline.data.readers``) on random and adversarial input: property-based tests.

Input mixes scripts, emoji, zero-width characters, BOMs, control characters, line/paragraph separators,
combining marks, very long lines and invalid UTF-8 (the strategies are in ``tests/helpers.py``). The contract
under test: a reader either yields records that satisfy the canonical invariants (spans inside the text and
spelling their text, unique ids, non-empty labels, every input row a record or a counted skip) or raises a
:class:`~pipeline.data.readers.DataError` naming the file and the line (or JSON path) -- never another exception.
"""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pipeline.data.readers import DataError, ReadReport, read_split
from pipeline.data.readers.cluener import CluenerSource
from pipeline.data.readers.conll import DOCSTART, ConllSource
from pipeline.data.readers.conll04 import CoNLL04Source
from pipeline.data.readers.delimited import DelimitedSource
from pipeline.data.readers.duie import DuIESource
from pipeline.data.readers.base import INVISIBLE_LINE
from pipeline.data.readers.files import invisible_only, numbered_lines
from pipeline.data.readers.query_csv import MERGED, NO_ANSWER_KEPT, NO_ANSWER_SKIPPED, NOT_IN_TEXT, QueryCsvSource
from pipeline.data.readers.squad import WH_BUCKETS, SquadSource
from pipeline.text.spans import parse_bio, remove_overlaps
from tests.helpers import BOM, labels, line_texts, multiline_texts, props, rarely, texts, word_labels

pytestmark = pytest.mark.unit


#: bytes that are not UTF-8: stray continuation, truncated sequence, overlong, encoded surrogate, > U+10FFFF
BAD_UTF8 = [b"\xff", b"\xfe", b"\x80", b"\xc3", b"\xe4\xb8", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]
invalid_utf8 = st.builds(
    lambda before, bad, after: before + bad + after,
    st.binary(max_size=6).map(lambda b: b.replace(b"\n", b"")),
    st.sampled_from(BAD_UTF8),
    st.binary(max_size=6).map(lambda b: b.replace(b"\n", b"")),
)

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=False), texts(max_size=3)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts(max_size=3), inner, max_size=3)),
    max_leaves=6,
)


def sometimes_wrong(strategy: st.SearchStrategy, one_in: int = 8) -> st.SearchStrategy:
    """``strategy``, or (about once in ``one_in``) an arbitrary JSON value of any type."""
    return rarely(json_values, strategy, one_in)


# ------------------------------------------------------------------------------------ files


def write_lines(directory: Path, name: str, lines: list[str | bytes], bom: bool, newline: str, zipped: bool) -> Path:
    """Write ``lines`` (text or raw bytes), each ended by ``newline``, optionally inside a zip archive."""
    data = b"".join((line if isinstance(line, bytes) else line.encode("utf-8")) + newline.encode() for line in lines)
    return write_bytes(directory, name, (BOM.encode() if bom and lines else b"") + data, zipped)


def write_bytes(directory: Path, name: str, data: bytes, zipped: bool = False) -> Path:
    if not zipped:
        path = directory / name
        path.write_bytes(data)
        return path
    archive = directory / "data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"inner/{name}", data)
    return archive / "inner" / name


def seen(lines: list[str], bom: bool) -> list[str]:
    """The lines as a reader sees them: a BOM at the very start of the file is dropped."""
    out = list(lines)
    if out and not bom:
        out[0] = out[0].removeprefix(BOM)
    return out


def first_bad_line(lines: list[str | bytes]) -> int | None:
    """1-based number of the first line that is not UTF-8."""
    for number, line in enumerate(lines, start=1):
        if isinstance(line, bytes):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return None


def error_line(exc: DataError, path: Path) -> int:
    """The line a DataError names; it must start with ``<path>:<line>: ``."""
    message = str(exc)
    match = re.match(re.escape(str(path)) + r":(\d+): \S", message)
    assert match, f"DataError does not name {path}:<line>: {message!r}"
    return int(match[1])


def check_document_error(exc: DataError, path: Path) -> None:
    """A whole-file JSON format's DataError names the file and a line or a JSON path."""
    message = str(exc)
    assert message.startswith(f"{path}:"), message
    where = r"^[^ ]*:\d+: |line \d+|data\[\d+\]|\bdata: |sentence \d+|a JSON list of sentences"
    assert re.search(where, message), message


# ------------------------------------------------------------------------------------ record invariants


def check_common(records: list[dict]) -> None:
    ids = [record["id"] for record in records]
    assert len(ids) == len(set(ids)), "record ids are not unique"
    for record in records:
        assert isinstance(record["text"], str)
        # the prepare stage writes records as UTF-8 JSON lines: no lone surrogates may get through
        json.dumps(record, ensure_ascii=False).encode("utf-8")


def check_span(text: str, span: dict) -> None:
    start, end = span["start"], span["end"]
    assert type(start) is int and type(end) is int, span
    assert 0 <= start < end <= len(text), (span, len(text))
    assert text[start:end] == span["text"], span


def check_label(label: object) -> None:
    assert isinstance(label, str) and label and label == label.strip(), repr(label)


def check_entities(records: list[dict]) -> None:
    check_common(records)
    for record in records:
        previous_end = 0
        for entity in record["entities"]:
            check_span(record["text"], entity)
            check_label(entity["type"])
            assert entity["start"] >= previous_end, "entities overlap or are unsorted"
            previous_end = entity["end"]


def check_triples(records: list[dict]) -> None:
    check_common(records)
    for record in records:
        for triple in record["triples"]:
            check_span(record["text"], triple["subject"])
            check_span(record["text"], triple["object"])
            assert isinstance(triple["predicate"], str) and triple["predicate"].strip(), triple


def check_answers(records: list[dict]) -> None:
    check_common(records)
    for record in records:
        assert isinstance(record["query"], str) and record["query"].strip()
        assert len({(a["start"], a["end"]) for a in record["answers"]}) == len(record["answers"]), "repeated answer"
        for answer in record["answers"]:
            check_span(record["text"], answer)


def skips(report: ReadReport, split: str = "train") -> Counter:
    return report.skipped.get(split, Counter())


# ------------------------------------------------------------------------------------ files.py


@props(100)
@given(
    lines=st.lists(st.one_of(line_texts, invalid_utf8, texts().map(lambda s: s.encode("utf-8"))), max_size=6),
    bom=st.booleans(),
    newline=st.sampled_from(["\n", "\r\n"]),
    zipped=st.booleans(),
)
def test_numbered_lines_decode_each_line_or_name_the_bad_one(lines, bom, newline, zipped) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_lines(Path(tmp), "f.txt", lines, bom, newline, zipped)
        bad = first_bad_line(lines)
        got: list[tuple[int, str]] = []
        try:
            for item in numbered_lines(path):
                got.append(item)
        except DataError as exc:
            assert bad is not None and error_line(exc, path) == bad and "not valid UTF-8" in str(exc)
            assert [n for n, _ in got] == list(range(1, bad))
            return
        assert bad is None
        decoded = seen([line.decode() if isinstance(line, bytes) else line for line in lines], bom)
        assert got == list(enumerate((line.rstrip("\r\n") for line in decoded), start=1))


# ------------------------------------------------------------------------------------ delimited

DELIMITED_LAYOUTS = [["text", "label"], ["label", "text"], ["_", "text", "label"], ["text", "text_b", "label"]]


@st.composite
def delimited_files(draw):
    """(source, lines): rows of generated fields, blank lines, rows with an empty label or too few fields,
    read line by line (``quoting: false``; quoted CSV is the standard library's csv, tested with examples)."""
    delimiter = draw(st.sampled_from(["\t", ",", " ", "|", "::", "\u3000"]))
    columns = draw(st.sampled_from(DELIMITED_LAYOUTS))
    header = draw(st.booleans())
    source = DelimitedSource(
        format="delimited", dir=".", train="t", dev="d", test="e", delimiter=delimiter, columns=columns, header=header,
        quoting=False,
    )
    no_delimiter = lambda s: delimiter not in s  # noqa: E731
    lines = [delimiter.join(columns)] if header else []
    rows = draw(st.lists(st.sampled_from(["row", "row", "row", "blank", "no label", "too few"]), max_size=7))
    for kind in rows:
        if kind == "blank":
            lines.append(draw(st.text(st.sampled_from(" \t\u3000\u00a0\x1c\x0b\u2028"), max_size=3)))
            continue
        if kind == "too few":
            lines.append(draw(texts(1, 4).filter(no_delimiter).filter(lambda s: s.strip())))
            continue
        values = {}
        for i, name in enumerate(columns):
            last = i == len(columns) - 1
            value = draw(line_texts if last else texts().filter(no_delimiter))
            if name == "label":
                value = draw(labels.filter(no_delimiter)) if kind == "row" else draw(st.sampled_from(["", " ", "\t"]))
            values[name] = value
        lines.append(delimiter.join(values[name] for name in columns))
    return source, lines


_TSV = DelimitedSource(format="delimited", dir=".", train="t", dev="d", test="e", delimiter="\t",
                       columns=["text", "label"], header=False, quoting=False)


@props(100)
@given(case=delimited_files(), bom=st.booleans(), newline=st.sampled_from(["\n", "\r\n"]), zipped=st.booleans())
@example(case=(_TSV, ["\u200b\t", "a"]), bom=False, newline="\n", zipped=False)  # invisible-only lines are blank
@example(case=(_TSV, ["\u200b"]), bom=False, newline="\n", zipped=False)
def test_delimited_reader_matches_its_model(case, bom, newline, zipped) -> None:
    source, lines = case
    expected, skipped, error = [], Counter(), None
    width = len(source.columns)
    for number, line in enumerate(seen(lines, bom), start=1):
        line = line.rstrip("\r\n")
        if source.header and number == 1:
            continue
        if invisible_only(line):  # zero-width characters and whitespace only: read as blank, and counted
            skipped[INVISIBLE_LINE] += 1
            line = ""
        if not line.strip():
            skipped["empty line"] += 1
            continue
        rest_in_last = source.columns[-1] in ("text", "text_b")  # a label never takes the rest of a line
        fields = line.split(source.delimiter, width - 1 if rest_in_last else -1)
        if len(fields) != width:
            error = (number, "expected")
            break
        values = dict(zip(source.columns, (f.strip() for f in fields)))
        if not values["text"]:
            skipped["empty text"] += 1
            continue
        if not values["label"]:
            error = (number, "field 'label' is empty")
            break
        expected.append({"id": f"train-{number}", **{k: v for k, v in values.items() if k != "_"}})
    with tempfile.TemporaryDirectory() as tmp:
        path = write_lines(Path(tmp), "train.tsv", lines, bom, newline, zipped)
        report = ReadReport()
        if error:
            with pytest.raises(DataError) as info:
                read_split(source, path, "train", report)
            assert error_line(info.value, path) == error[0] and error[1] in str(info.value)
            return
        records = read_split(source, path, "train", report)
    assert records == expected and skips(report) == skipped
    assert len(records) + sum(skipped.values()) - skipped[INVISIBLE_LINE] == len(lines) - source.header
    check_common(records)
    for record in records:
        check_label(record["label"])
        assert record["text"] and record["text"] == record["text"].strip()


# ------------------------------------------------------------------------------------ cluener


@st.composite
def cluener_objects(draw):
    """(object, listed spans as (start, end_exclusive, type, mention)) of one CLUENER line."""
    text = draw(line_texts)
    n = len(text)
    label: dict = {}
    for _ in range(draw(st.integers(0, 4))):
        entity_type = draw(labels)
        if n and draw(st.booleans()):
            start = draw(st.integers(0, n - 1))
            end = draw(st.integers(start + 1, min(n, start + 12)))
            mention = text[start:end]
        else:  # off the text, empty, reversed or misspelled
            start = draw(st.integers(-2, n + 2))
            end = draw(st.integers(start - 1, n + 3))
            mention = draw(st.one_of(st.just(text[max(0, start) : max(0, end)]), texts(0, 2)))
        label.setdefault(entity_type, {}).setdefault(mention, []).append([start, end - 1])
    listed = [(s, e + 1, t, m) for t, mentions in label.items() for m, pairs in mentions.items() for s, e in pairs]
    choice = draw(st.sampled_from(["dict", "dict", "dict", "empty", "null"]))
    obj = {"text": text, "label": label if choice == "dict" else ({} if choice == "empty" else None)}
    if choice != "dict":
        listed = []
    return obj, listed


@props(100)
@given(
    lines=st.lists(
        st.one_of(cluener_objects(), st.text(st.sampled_from(" \t\u3000\r"), max_size=2).map(lambda s: (s, []))),
        max_size=6,
    ),
    ensure_ascii=st.booleans(),
    bom=st.booleans(),
    zipped=st.booleans(),
)
def test_cluener_reader_matches_its_model(lines, ensure_ascii, bom, zipped) -> None:
    written = [obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=ensure_ascii) for obj, _ in lines]
    expected, skipped = [], Counter()
    for number, (obj, listed) in enumerate(lines, start=1):
        if isinstance(obj, str):
            skipped["empty line"] += 1
            continue
        text = obj["text"]
        if not text.strip():
            skipped["empty text"] += 1
            continue
        valid = []
        for start, end, entity_type, mention in listed:
            if not 0 <= start < end <= len(text):
                skipped["entity span outside the text"] += 1
            elif text[start:end] != mention:
                skipped["entity span does not spell its mention"] += 1
            else:
                valid.append((start, end, entity_type))
        kept, dropped = remove_overlaps(valid)
        skipped["entity overlapping a longer one (or a duplicate)"] += len(dropped)
        entities = [{"start": s, "end": e, "type": t, "text": text[s:e]} for s, e, t in kept]
        expected.append({"id": f"train-{number}", "text": text, "entities": entities})
    with tempfile.TemporaryDirectory() as tmp:
        path = write_lines(Path(tmp), "train.json", written, bom, "\n", zipped)
        report = ReadReport()
        records = read_split(CLUENER, path, "train", report)
    assert records == expected
    assert skips(report) == +skipped
    check_entities(records)


CLUENER = CluenerSource(format="cluener_json", dir=".", train="t", dev="d", test="e")


# ------------------------------------------------------------------------------------ conll

tags = st.one_of(st.just("O"), st.builds(lambda p, t: f"{p}-{t}", st.sampled_from("BI"), word_labels))
conll_tokens = texts(1, 3).map(lambda s: "".join(s.split())).filter(lambda s: s and s != DOCSTART)


@props(100)
@given(
    sentences=st.lists(st.lists(st.tuples(conll_tokens, tags), min_size=1, max_size=6), max_size=4),
    separators=st.lists(
        st.sampled_from(["", " ", "\t", "\u3000", "\x1c", f"{DOCSTART} -X- O", "\u2028"]), min_size=5, max_size=5
    ),
    column_gap=st.sampled_from([" ", "\t", "  ", "\u3000"]),
    bom=st.booleans(),
)
def test_conll_reader_matches_its_model(sentences, separators, column_gap, bom) -> None:
    lines: list[str] = []
    expected, repairs = [], Counter()
    for k, sentence in enumerate(sentences):
        lines.append(separators[k])
        first = len(lines) + 1
        lines += [column_gap.join([token, "NN", tag]) for token, tag in sentence]
        tokens = [token for token, _ in sentence]
        spans, fixes = parse_bio([tag for _, tag in sentence])
        repairs.update(f"repaired BIO: {problem}" for _, problem in fixes)
        starts = [sum(len(t) + 1 for t in tokens[:i]) for i in range(len(tokens))]
        text = " ".join(tokens)
        entities = []
        for i, j, label in spans:
            start, end = starts[i], starts[j - 1] + len(tokens[j - 1])
            entities.append({"start": start, "end": end, "type": label, "text": text[start:end]})
        expected.append({"id": f"train-{first}", "text": text, "entities": entities})
    lines.append(separators[-1])
    with tempfile.TemporaryDirectory() as tmp:
        path = write_lines(Path(tmp), "train.txt", lines, bom, "\n", False)
        report = ReadReport()
        records = read_split(CONLL, path, "train", report)
    assert records == expected and skips(report) == repairs
    check_entities(records)


CONLL = ConllSource(format="conll", dir=".", train="t", dev="d", test="e")


# ------------------------------------------------------------------------------------ duie


@st.composite
def mentions_in(draw, text: str) -> str:
    """A substring of ``text`` (often), else something that may or may not occur in it."""
    if text and draw(st.integers(0, 3)):
        start = draw(st.integers(0, len(text) - 1))
        return text[start : draw(st.integers(start + 1, min(len(text), start + 8)))]
    return draw(st.one_of(st.just(""), texts(1, 2)))


@st.composite
def duie_objects(draw, wrong: bool = False):
    """One DuIE line's object; with ``wrong``, any field may have the wrong type or be missing."""
    maybe = sometimes_wrong if wrong else (lambda s: s)
    text = draw(line_texts)
    spo_list = []
    for _ in range(draw(st.integers(0, 4))):
        subject = draw(mentions_in(text))
        if spo_list and draw(st.integers(0, 3)) == 0:  # a repeat, or a sibling sharing the subject's start
            subject = spo_list[-1]["subject"] if isinstance(spo_list[-1].get("subject"), str) else subject
        value = draw(mentions_in(text))
        if draw(st.booleans()):
            slot_names = st.sampled_from(["inWork", "onDate", "@type", "period"])
            slots = draw(st.dictionaries(slot_names, texts(max_size=2), max_size=2))
            value = {"@value": value, **slots}
        predicate = draw(labels if not wrong else st.one_of(labels, texts(0, 2)))
        spo = {
            "subject": draw(maybe(st.just(subject))),
            "predicate": draw(maybe(st.just(predicate))),
            "object": draw(maybe(st.just(value))),
        }
        if wrong and draw(st.integers(0, 9)) == 0:
            del spo[draw(st.sampled_from(sorted(spo)))]
        spo_list.append(spo)
    obj = {"text": draw(maybe(st.just(text))), "spo_list": draw(maybe(st.just(spo_list)))}
    if wrong and draw(st.integers(0, 9)) == 0:
        del obj[draw(st.sampled_from(sorted(obj)))]
    return obj


def duie_model(obj: dict, predicates: set[str] | None, skipped: Counter) -> list[dict]:
    """The triples of one valid DuIE line: first occurrences, repeats (same spans and predicate) counted."""
    text, triples, seen_keys = obj["text"], [], set()
    for spo in obj["spo_list"]:
        value = spo["object"]
        if isinstance(value, dict):
            for slot in set(value) - {"@value"}:
                skipped[f"object slot {slot!r} dropped (only '@value' is kept)"] += 1
            value = value["@value"]
        subject, predicate = spo["subject"], spo["predicate"]
        if predicates is not None and predicate not in predicates:
            skipped["predicate not in schema"] += 1
            continue
        s, o = (text.find(subject) if subject else -1), (text.find(value) if value else -1)
        if s < 0:
            skipped["subject not found in text"] += 1
            continue
        if o < 0:
            skipped["object not found in text"] += 1
            continue
        key = (s, s + len(subject), predicate, o, o + len(value))
        if key in seen_keys:
            skipped["repeated triple"] += 1
            continue
        seen_keys.add(key)
        triples.append(
            {
                "subject": {"start": s, "end": s + len(subject), "text": subject},
                "predicate": predicate,
                "object": {"start": o, "end": o + len(value), "text": value},
            }
        )
    return triples


@props(100)
@given(
    objects=st.lists(st.one_of(duie_objects(), st.sampled_from(["", "  ", "\t"])), max_size=5),
    schema=st.one_of(st.none(), st.tuples(st.lists(labels, max_size=4), st.booleans())),
    ensure_ascii=st.booleans(),
    bom=st.booleans(),
)
@example(  # two subjects starting at the same character: distinct triples, not repeats
    objects=[{"text": "北京大学在北京", "spo_list": [
        {"subject": "北京大学", "predicate": "位于", "object": "北京"},
        {"subject": "北京", "predicate": "位于", "object": "北京"},
    ]}],
    schema=None, ensure_ascii=False, bom=False,
)  # fmt: skip
@example(  # a JSON-lines schema whose predicate holds a raw U+2028 (not a line break in JSON lines)
    objects=[{"text": "ab", "spo_list": [{"subject": "a", "predicate": "p\u2028q", "object": "b"}]}],
    schema=([], True), ensure_ascii=False, bom=False,
)  # fmt: skip
def test_duie_reader_matches_its_model(objects, schema, ensure_ascii, bom) -> None:
    predicates = None
    expected, skipped = [], Counter()
    with tempfile.TemporaryDirectory() as tmp:
        source = DuIESource(format="duie", dir=".", train="t", dev="d", test="e")
        if schema is not None:
            names, as_lines = schema
            used = [spo["predicate"] for obj in objects if isinstance(obj, dict) for spo in obj["spo_list"]]
            predicates = set(names) | set(used[::2]) | set(used[-1:])
            entries = [{"predicate": p, "subject_type": "x"} for p in sorted(predicates)]
            lines = [json.dumps(e, ensure_ascii=ensure_ascii) for e in entries]
            body = "\n".join(lines) if as_lines else json.dumps(entries)
            (Path(tmp) / "schema.json").write_text(body, encoding="utf-8")
            source = source.model_copy(update={"schema_file": "schema.json"})
        written = []
        for number, obj in enumerate(objects, start=1):
            if isinstance(obj, str):
                written.append(obj)
                skipped["empty line"] += 1
                continue
            written.append(json.dumps(obj, ensure_ascii=ensure_ascii))
            triples = duie_model(obj, predicates, skipped)
            expected.append({"id": f"train-{number}", "text": obj["text"], "triples": triples})
        path = write_lines(Path(tmp), "train.json", written, bom, "\n", False)
        report = ReadReport()
        records = read_split(source, path, "train", report)
    assert records == expected
    assert skips(report) == +skipped
    check_triples(records)
    assert len(records) + skipped["empty line"] == len(objects)


# ------------------------------------------------------------------------------------ every line format, adversarial

LINE_SOURCES = {
    "delimited": DelimitedSource(
        format="delimited", dir=".", train="t", dev="d", test="e", delimiter="\t", columns=["text", "label"],
        header=False,
    ),
    "cluener": CLUENER,
    "conll": CONLL,
    "duie": DuIESource(format="duie", dir=".", train="t", dev="d", test="e"),
}


@st.composite
def adversarial_line(draw, fmt: str):
    """A line that is valid for ``fmt``, nearly so (wrong types, missing fields), random text or bytes."""
    # mostly (nearly) valid lines: the first bad line ends the read, and what comes before it is checked
    kind = draw(st.sampled_from(["valid"] * 9 + ["text", "bytes", "json"]))
    if kind == "text":
        return draw(line_texts)
    if kind == "bytes":
        return draw(st.one_of(invalid_utf8, st.binary(max_size=12).map(lambda b: b.replace(b"\n", b""))))
    if kind == "json":
        return json.dumps(draw(json_values), ensure_ascii=draw(st.booleans()))
    if fmt == "delimited":
        return f"{draw(texts())}\t{draw(st.one_of(labels, texts()))}"
    if fmt == "conll":
        if draw(st.integers(0, 3)) == 0:
            return draw(st.sampled_from(["", f"{DOCSTART} x O"]))
        return f"{draw(conll_tokens)} {draw(st.one_of(tags, texts(1, 2)))}"
    if fmt == "cluener":
        obj, _ = draw(cluener_objects())
        if obj["text"] and draw(st.booleans()):  # a valid span under a type that may be blank or padded
            entity_type = draw(st.one_of(texts(0, 2), st.just(" PER"), st.just("PER\t")))
            obj["label"] = {**(obj["label"] or {}), entity_type: {obj["text"][:1]: [[0, 0]]}}
        obj = {key: draw(sometimes_wrong(st.just(value))) for key, value in obj.items()}
        return json.dumps(obj, ensure_ascii=draw(st.booleans()))
    return json.dumps(draw(duie_objects(wrong=True)), ensure_ascii=draw(st.booleans()))


@pytest.mark.parametrize("fmt", sorted(LINE_SOURCES))
@props(150)
@given(data=st.data(), bom=st.booleans(), newline=st.sampled_from(["\n", "\r\n"]))
def test_line_readers_never_fail_otherwise_than_with_a_data_error(fmt, data, bom, newline) -> None:
    lines = data.draw(st.lists(adversarial_line(fmt), min_size=1, max_size=5))
    bad = first_bad_line(lines)
    source = LINE_SOURCES[fmt]
    with tempfile.TemporaryDirectory() as tmp:
        path = write_lines(Path(tmp), "train.x", lines, bom, newline, False)
        report = ReadReport()
        try:
            records = read_split(source, path, "train", report)
        except DataError as exc:
            line = error_line(exc, path)
            assert 1 <= line <= len(lines)
            if bad is not None:
                assert line <= bad
                assert ("not valid UTF-8" in str(exc)) == (line == bad), str(exc)
            return
    assert bad is None, "an undecodable line was read without an error"
    counted = skips(report)
    if fmt == "conll":
        check_entities(records)
        return
    if fmt == "cluener":
        check_entities(records)
    elif fmt == "delimited":
        check_common(records)
        for record in records:
            check_label(record["label"])
    else:
        check_triples(records)
    # every line is a record or a counted skip
    assert len(records) + counted["empty line"] + counted["empty text"] == len(lines)


# ------------------------------------------------------------------------------------ query_csv


@st.composite
def csv_rows(draw):
    """Rows of (text, query, answer) whose answers are often in the text, sometimes absent or 'no answer'."""
    rows = []
    for _ in range(draw(st.integers(0, 7))):
        if rows and draw(st.integers(0, 4)) == 0:  # same text and query as an earlier row
            text, query, _ = draw(st.sampled_from(rows))
        else:
            text, query = draw(multiline_texts), draw(texts(0, 3))
        stripped = text.strip()
        answer = draw(
            st.one_of(
                mentions_in(stripped).map(lambda m: f" {m}\t"),
                st.sampled_from(["", "NaN", "nan", "NAN", "  "]),
                texts(1, 2),
            )
        )
        rows.append((text, query, answer))
    return rows


CSV_SOURCE = dict(dir=".", format="query_csv", train="t", dev="d", test="e", template=["___{query}___{text}"])


@props(100)
@given(
    rows=csv_rows(),
    layout=st.sampled_from(
        [["text", "query", "answer"], ["_", "text", "query", "answer"], ["query", "answer", "text"]]
    ),
    header=st.booleans(),
    delimiter=st.sampled_from([",", "\t", ";"]),
    dialect=st.sampled_from([(csv.QUOTE_ALL, "\n"), (csv.QUOTE_ALL, "\r\n"), (csv.QUOTE_MINIMAL, "\r\n")]),
    missing=st.sampled_from(["keep", "skip"]),
    merge=st.booleans(),
    bom=st.booleans(),
    zipped=st.booleans(),
)
def test_query_csv_reader_accounts_for_every_row(
    rows, layout, header, delimiter, dialect, missing, merge, bom, zipped
) -> None:
    source = QueryCsvSource.model_validate(
        {**CSV_SOURCE, "columns": layout, "header": header, "delimiter": delimiter, "missing_answer": missing,
         "merge_duplicates": merge}
    )  # fmt: skip
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, quoting=dialect[0], lineterminator=dialect[1])
    if header:
        writer.writerow(layout)
    for text, query, answer in rows:
        values = {"text": text, "query": query, "answer": answer, "_": "ignored"}
        writer.writerow([values[name] for name in layout])
    data = buffer.getvalue()
    data = (BOM if bom or data.startswith(BOM) else "") + data  # a BOM that is content must survive
    # the first row that is expected to be an error: an empty query with a non-empty text
    error = next((i for i, (t, q, _) in enumerate(rows) if t.strip() and not q.strip()), None)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_bytes(Path(tmp), "t.csv", data.encode("utf-8"), zipped)
        report = ReadReport()
        if error is not None:
            with pytest.raises(DataError, match="field 'query' is empty") as info:
                list(read_split(source, path, "train", report))
            error_line(info.value, path)
            return
        records = read_split(source, path, "train", report)
    check_answers(records)
    counted = skips(report)
    # every data row is a record or a counted skip (a kept unanswerable record is counted and yielded)
    assert len(records) + sum(counted.values()) - counted[NO_ANSWER_KEPT] == len(rows)
    assert counted[NO_ANSWER_KEPT] == sum(not r["answers"] for r in records)
    if missing == "skip":
        assert all(record["answers"] for record in records) and not counted[NO_ANSWER_KEPT]
    if merge:
        assert len({(r["text"], r["query"]) for r in records}) == len(records)
    else:
        assert not counted[MERGED]
    nonempty = [(t.strip(), q.strip(), a.strip()) for t, q, a in rows if t.strip()]
    for record in records:
        assert (record["text"], record["query"]) in {(t, q) for t, q, _ in nonempty}
        assert record["query_type"] == record["query"] and record["template"] == ["___{query}___{text}"]
        for answer in record["answers"]:  # the first occurrence of an answer given for this text and query
            assert answer["start"] == record["text"].find(answer["text"])
            assert (record["text"], record["query"], answer["text"]) in set(nonempty)
    assert counted[NOT_IN_TEXT] == sum(
        1 for t, q, a in nonempty if a.casefold() not in {"", "nan"} and a not in t
    )
    assert counted[NO_ANSWER_SKIPPED] == 0 or missing == "skip"


@props(25)
@given(
    good=st.lists(texts(1, 6).map(lambda s: s.replace("\r", "")), min_size=1, max_size=200),
    # really not UTF-8: the bytes around the bad ones, or a dropped CR, may complete it (b"\xc3" b"\x80" is "À")
    bad=invalid_utf8.map(lambda b: b.replace(b"\r", b"")).filter(lambda b: first_bad_line([b]) == 1),
    position=st.integers(0, 10**6),
)
@example(good=["x" * 60] * 300, bad=b"\xff", position=299)  # past the first 8 KiB the decoder reads ahead
def test_query_csv_names_the_line_of_invalid_utf8(good, bad, position) -> None:
    position %= len(good)
    lines: list[str | bytes] = ['"' + g.replace('"', '""') + '","q","a"' for g in good]
    lines[position] = b'"' + bad + b'","q","a"'
    source = QueryCsvSource.model_validate(
        {**CSV_SOURCE, "columns": ["text", "query", "answer"], "header": False, "missing_answer": "keep"}
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = write_lines(Path(tmp), "t.csv", lines, False, "\n", False)
        with pytest.raises(DataError) as info:
            read_split(source, path, "train", ReadReport())
    assert error_line(info.value, path) == position + 1 and "not valid UTF-8" in str(info.value)


def test_query_csv_very_long_field_is_a_data_error_or_read() -> None:
    source = QueryCsvSource.model_validate(
        {**CSV_SOURCE, "columns": ["text", "query", "answer"], "header": False, "missing_answer": "keep"}
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        path.write_text('"a",q,a\n"' + "長" * 200_000 + '",q,長\n', encoding="utf-8")
        try:
            records = read_split(source, path, "train", ReadReport())
        except DataError as exc:
            assert error_line(exc, path) == 2
        else:
            check_answers(records)
            assert len(records[1]["text"]) == 200_000


# ------------------------------------------------------------------------------------ squad


@st.composite
def squad_documents(draw, wrong: bool = False):
    """A SQuAD document (question ids unique); with ``wrong``, any field may have the wrong type.

    Answer starts are right, wrong, negative (slicing the answer from the end), bools, strings or missing.
    """
    maybe = sometimes_wrong if wrong else (lambda s: s)
    counter = iter(range(10**6))
    articles = []
    for _ in range(draw(st.integers(0, 2))):
        paragraphs = []
        for _ in range(draw(st.integers(0, 2))):
            context = draw(multiline_texts)
            qas = []
            for _ in range(draw(st.integers(0, 3))):
                answers = []
                for _ in range(draw(st.integers(0, 3))):
                    text = draw(mentions_in(context))
                    first = context.find(text) if text else -1
                    start = draw(
                        st.one_of(
                            st.just(first),
                            st.integers(-3, len(context) + 3),
                            st.just(first - len(context)),  # a negative index that slices the answer
                            st.booleans(),
                            st.just(str(first)),
                            st.none(),
                        )
                    )
                    answers.append({"text": draw(maybe(st.just(text))), "answer_start": start})
                qa = {
                    "id": draw(maybe(st.just(f"{draw(texts(0, 2))}#{next(counter)}"))),
                    "question": draw(maybe(texts(1, 5).filter(str.strip))),
                    "answers": draw(maybe(st.just(answers))),
                }
                if draw(st.integers(0, 5)) == 0:
                    qa["is_impossible"] = draw(st.booleans())
                qas.append(qa)
            paragraphs.append({"context": draw(maybe(st.just(context))), "qas": draw(maybe(st.just(qas)))})
        articles.append({"title": "t", "paragraphs": draw(maybe(st.just(paragraphs)))})
    return {"version": "1.1", "data": draw(maybe(st.just(articles)))}


def squad_model(document: dict, missing: str, skipped: Counter) -> list[dict]:
    records = []
    for article in document["data"]:
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            for qa in paragraph["qas"]:
                answers = []
                for answer in [] if qa.get("is_impossible") else qa["answers"]:
                    text, start = answer["text"], answer["answer_start"]
                    if type(start) is int and start >= 0 and text and context[start : start + len(text)] == text:
                        span = {"start": start, "end": start + len(text), "text": text}
                    elif text and text in context:
                        span = {"start": context.find(text), "end": context.find(text) + len(text), "text": text}
                    else:
                        skipped[f"{NOT_IN_TEXT} (answer dropped)"] += 1
                        continue
                    if span not in answers:
                        answers.append(span)
                if not answers:
                    skipped[NO_ANSWER_SKIPPED if missing == "skip" else NO_ANSWER_KEPT] += 1
                    if missing == "skip":
                        continue
                query = qa["question"].strip()
                records.append({"id": f"train-{qa['id']}", "text": context, "query": query, "answers": answers})
    return records


def squad_source(missing: str) -> SquadSource:
    return SquadSource.model_validate(
        {"dir": ".", "format": "squad", "train": "s", "dev": "d", "test": "e", "missing_answer": missing,
         "template": ["{query}", "{text}"]}
    )  # fmt: skip


@props(100)
@given(
    document=squad_documents(),
    missing=st.sampled_from(["keep", "skip"]),
    ensure_ascii=st.booleans(),
    indent=st.sampled_from([None, 1]),
    bom=st.booleans(),
)
@example(  # a negative answer_start that slices the answer from the end, and a bool one: both re-located
    document={"data": [{"paragraphs": [{"context": "abcabc", "qas": [{"id": "1", "question": "q", "answers": [
        {"text": "bc", "answer_start": -5}, {"text": "b", "answer_start": True}]}]}]}]},
    missing="skip", ensure_ascii=True, indent=None, bom=False,
)  # fmt: skip
def test_squad_reader_matches_its_model(document, missing, ensure_ascii, indent, bom) -> None:
    skipped = Counter()
    expected = squad_model(document, missing, skipped)
    with tempfile.TemporaryDirectory() as tmp:
        data = (BOM if bom else "") + json.dumps(document, ensure_ascii=ensure_ascii, indent=indent)
        path = write_bytes(Path(tmp), "s.json", data.encode("utf-8"))
        report = ReadReport()
        records = read_split(squad_source(missing), path, "train", report)
    assert [{k: r[k] for k in ("id", "text", "query", "answers")} for r in records] == expected
    assert skips(report) == +skipped
    check_answers(records)
    assert all(r["query_type"] in (*WH_BUCKETS, "other") for r in records)


# ------------------------------------------------------------------------------------ conll04


@st.composite
def conll04_documents(draw, wrong: bool = False):
    """A CoNLL04 JSON list (with repeated relations); with ``wrong``, blank tokens, bad spans and wrong types."""
    maybe = sometimes_wrong if wrong else (lambda s: s)
    token = texts(1, 3).filter(str.strip)
    if wrong:
        token = st.one_of(token, st.sampled_from(["", " ", "\u3000"]))
    sentences = []
    for _ in range(draw(st.integers(0, 4))):
        tokens = draw(st.lists(maybe(token), max_size=6))
        n = max(len(tokens), 1)
        relations = []
        for _ in range(draw(st.integers(0, 3))):
            hs, ts = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
            he, te = draw(st.integers(hs + 1, n)), draw(st.integers(ts + 1, n))
            if wrong and draw(st.integers(0, 5)) == 0:
                he = draw(st.integers(-1, n + 1))
            relation = [hs, he, ts, te, draw(labels if not wrong else st.one_of(labels, texts(0, 2)))]
            relations.append(draw(maybe(st.just(relation))))
            if draw(st.integers(0, 4)) == 0:
                relations.append(relations[-1])
        sentences.append({"tokens": tokens, "entities": [], "relations": draw(maybe(st.just(relations)))})
    return draw(maybe(st.just(sentences)))


@props(100)
@given(document=conll04_documents(), ensure_ascii=st.booleans(), bom=st.booleans())
def test_conll04_reader_matches_its_model(document, ensure_ascii, bom) -> None:
    expected, skipped = [], Counter()
    for index, sentence in enumerate(document):
        tokens = sentence["tokens"]
        if not tokens:
            skipped["no tokens"] += 1
            continue
        starts = [sum(len(t) + 1 for t in tokens[:i]) for i in range(len(tokens))]
        text, triples, seen_keys = " ".join(tokens), [], set()
        for hs, he, ts, te, predicate in sentence["relations"]:
            if ((hs, he), predicate, (ts, te)) in seen_keys:
                skipped["repeated relation"] += 1
                continue
            seen_keys.add(((hs, he), predicate, (ts, te)))
            mention = lambda i, j: {  # noqa: E731
                "start": starts[i], "end": starts[j - 1] + len(tokens[j - 1]),
                "text": text[starts[i] : starts[j - 1] + len(tokens[j - 1])],
            }  # fmt: skip
            triples.append({"subject": mention(hs, he), "predicate": predicate, "object": mention(ts, te)})
        expected.append({"id": f"train-{index + 1}", "text": text, "triples": triples})
    with tempfile.TemporaryDirectory() as tmp:
        data = (BOM if bom else "") + json.dumps(document, ensure_ascii=ensure_ascii)
        path = write_bytes(Path(tmp), "c.json", data.encode("utf-8"))
        report = ReadReport()
        records = read_split(CONLL04, path, "train", report)
    assert records == expected and skips(report) == +skipped
    check_triples(records)
    assert len(records) + skipped["no tokens"] == len(document)


CONLL04 = CoNLL04Source(format="conll04", dir=".", train="t", dev="d", test="e")


# ------------------------------------------------------------------------------------ JSON documents, adversarial

DOCUMENT_FORMATS = {
    "squad": (squad_source("keep"), squad_documents(wrong=True)),
    "conll04": (CONLL04, conll04_documents(wrong=True)),
}


@pytest.mark.parametrize("fmt", sorted(DOCUMENT_FORMATS))
@props(120)
@given(data=st.data(), bom=st.booleans())
def test_json_document_readers_never_fail_otherwise_than_with_a_data_error(fmt, data, bom) -> None:
    source, documents = DOCUMENT_FORMATS[fmt]
    kind = data.draw(st.sampled_from(["mutated", "mutated", "mutated", "json", "bytes", "text"]))
    if kind == "mutated":
        raw = json.dumps(data.draw(documents), ensure_ascii=data.draw(st.booleans()), indent=1).encode("utf-8")
    elif kind == "json":
        raw = json.dumps(data.draw(json_values)).encode("utf-8")
    elif kind == "bytes":
        chunks = st.lists(st.one_of(invalid_utf8, st.binary(max_size=8)), min_size=1, max_size=5)
        raw = data.draw(chunks.map(b"\n".join))
    else:
        raw = data.draw(multiline_texts).encode("utf-8")
    raw = (BOM.encode() if bom else b"") + raw
    with tempfile.TemporaryDirectory() as tmp:
        path = write_bytes(Path(tmp), "doc.json", raw)
        try:
            records = read_split(source, path, "train", ReadReport())
        except DataError as exc:
            check_document_error(exc, path)
            if "not valid UTF-8" in str(exc):  # an undecodable file names the first bad line
                bad = first_bad_line(raw.split(b"\n"))
                assert bad is not None and error_line(exc, path) == bad
            return
    (check_answers if fmt == "squad" else check_triples)(records)


# ------------------------------------------------------------------------------------ hostile JSON, every JSON reader

HOSTILE_JSON = {
    "nested too deeply": "[" * 100_000 + "]" * 100_000,
    "integer with too many digits": "1" * 5_000,
    "lone surrogate in a string": '"\\ud800"',
}


def _hostile_documents(fmt: str, payload: str) -> str:
    """``payload`` placed where ``fmt`` reads a value (the whole line or file, or a text field)."""
    if payload.startswith('"'):
        return {
            "cluener": '{"text": %s, "label": {}}' % payload,
            "duie": '{"text": %s, "spo_list": []}' % payload,
            "squad": '{"data": [{"paragraphs": [{"context": %s, "qas": [{"id": "1", "question": "q?", '
            '"answers": []}]}]}]}' % payload,
            "conll04": '[{"tokens": ["a", %s], "relations": []}]' % payload,
            "cluener_type": '{"text": "ab", "label": {%s: {"a": [[0, 0]]}}}' % payload,
            "duie_predicate": '{"text": "ab", "spo_list": [{"subject": "a", "predicate": %s, "object": "b"}]}'
            % payload,
            "squad_question": '{"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "1", "question": %s, '
            '"answers": []}]}]}]}' % payload,
            "conll04_type": '[{"tokens": ["a", "b"], "relations": [[0, 1, 1, 2, %s]]}]' % payload,
        }[fmt]
    return payload


HOSTILE_SOURCES = {
    "cluener": CLUENER,
    "cluener_type": CLUENER,
    "duie": LINE_SOURCES["duie"],
    "duie_predicate": LINE_SOURCES["duie"],
    "squad": squad_source("keep"),
    "squad_question": squad_source("keep"),
    "conll04": CONLL04,
    "conll04_type": CONLL04,
}


HOSTILE_CASES = [(fmt, problem) for problem in HOSTILE_JSON for fmt in HOSTILE_SOURCES if "_" not in fmt] + [
    (fmt, "lone surrogate in a string") for fmt in HOSTILE_SOURCES if "_" in fmt
]


@pytest.mark.parametrize("fmt, problem", HOSTILE_CASES)
def test_json_readers_turn_hostile_json_into_data_errors(fmt: str, problem: str) -> None:
    body = _hostile_documents(fmt, HOSTILE_JSON[problem]) if problem.startswith("lone") else HOSTILE_JSON[problem]
    with tempfile.TemporaryDirectory() as tmp:
        path = write_bytes(Path(tmp), "x.json", body.encode("utf-8"))
        with pytest.raises(DataError) as info:
            read_split(HOSTILE_SOURCES[fmt], path, "train", ReadReport())
    assert str(info.value).startswith(f"{path}:")


EXPLICIT_CASES = {
    "cluener type with surrounding spaces": (
        CLUENER, '{"text": "ab", "label": {" PER": {"a": [[0, 0]]}}}', r":1: field 'label\. PER' must be a non-empty"
    ),
    "duie empty predicate": (
        LINE_SOURCES["duie"], '{"text": "ab", "spo_list": [{"subject": "a", "predicate": " ", "object": "b"}]}',
        r":1: spo_list\[0\]: field 'predicate' is empty",
    ),
    "conll token line without its tag column": (CONLL, "EU B-ORG\nO\n", r":2: expected at least 2 .*found 1"),
    "conll04 empty token": (
        CONLL04, '[{"tokens": ["a", ""], "relations": [[1, 2, 0, 1, "r"]]}]', r"sentence 0: tokens\[1\] is empty"
    ),
    "conll04 empty relation type": (
        CONLL04, '[{"tokens": ["a", "b"], "relations": [[1, 2, 0, 1, ""]]}]', r"relations\[0\]: the relation type is"
    ),
    "squad answers not a list": (
        squad_source("keep"), '{"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "1", "question": "q", '
        '"answers": null}]}]}]}', r"qas\[0\]\.answers: expected list, got NoneType",
    ),
    "squad invalid UTF-8 on line 3": (squad_source("keep"), b'{\n"data":\n"\xff"}', r":3: not valid UTF-8"),
    "conll04 invalid UTF-8 on line 2": (CONLL04, b"[\n\xc3]", r":2: not valid UTF-8"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(EXPLICIT_CASES))
def test_explicit_adversarial_inputs_are_data_errors(case: str) -> None:
    source, body, message = EXPLICIT_CASES[case]
    with tempfile.TemporaryDirectory() as tmp:
        path = write_bytes(Path(tmp), "x.json", body if isinstance(body, bytes) else body.encode("utf-8"))
        with pytest.raises(DataError, match=message) as info:
            read_split(source, path, "train", ReadReport())
    assert str(info.value).startswith(f"{path}:")


def test_duie_schema_file_errors_are_data_errors() -> None:
    source = DuIESource(format="duie", dir=".", train="t", dev="d", test="e", schema_file="schema.json")
    for body in (b'[{"predicate": "x"}]\n\xff\n', ("[" * 100_000).encode(), b"1" * 5_000, b"[3]"):
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "schema.json").write_bytes(body)
            path = write_bytes(Path(tmp), "train.json", b'{"text": "a", "spo_list": []}\n')
            with pytest.raises(DataError) as info:
                read_split(source, path, "train", ReadReport())
            assert str(info.value).startswith(f"{Path(tmp) / 'schema.json'}")

"""Dataset formats as users bring them: Chinese char-per-line CoNLL, quoted CSV, other encodings,
invisible characters, class-list label files (the readers and the prepare stage, on small files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline.config.loading import load_params
from pipeline.data.readers import READERS, DataError, ReadReport, read_split
from pipeline.data.readers.base import INVISIBLE_LINE
from pipeline.data.readers.conll import ConllSource
from pipeline.data.readers.delimited import DelimitedSource
from pipeline.data.readers.label_names import read_label_names
from pipeline.data.readers.query_csv import QueryCsvSource

pytestmark = pytest.mark.unit

SPLIT_FILES = {"dir": ".", "train": "train", "dev": "dev", "test": "test"}


def delimited(**params) -> DelimitedSource:
    return DelimitedSource.model_validate({"format": "delimited", **SPLIT_FILES, "header": False, **params})


def conll(**params) -> ConllSource:
    return ConllSource.model_validate({"format": "conll", **SPLIT_FILES, **params})


def write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def read(source, path: Path, report: ReadReport | None = None) -> list[dict]:
    return read_split(source, path, "train", report if report is not None else ReadReport())


def prepare_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, task: str, data: dict, files: dict[str, str | bytes]):
    """Run the prepare stage on ``task`` with its data block replaced by ``data`` (every split file
    named there written from ``files`` under a temporary data root); the summary and the output dir."""
    from pipeline.stages import prepare as stage

    out = tmp_path / "prepared"
    monkeypatch.setattr(stage, "prepared_dir", lambda name: out / name)
    directory = tmp_path / "data" / data["dir"]
    directory.mkdir(parents=True)
    for name, content in files.items():
        write(directory / name, content)
    params = load_params()
    source = READERS[data["format"]][0].model_validate(data)
    task_cfg = params.tasks[task].model_copy(update={"data": source})
    params = params.model_copy(update={"data_root": str(tmp_path / "data"), "tasks": {task: task_cfg}})
    return stage.prepare(params, task), out / task


# ------------------------------------------------------------------------------------ 1. Chinese CoNLL


def cluener_records(shared_data: Path, count: int = 5) -> list[dict]:
    """The first real CLUENER dev records without whitespace (one character per CoNLL line)."""
    records = []
    for line in (shared_data / "zh" / "cluener" / "dev.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if not any(ch.isspace() for ch in record["text"]):
            records.append(record)
        if len(records) == count:
            return records
    raise AssertionError("too few CLUENER records")


def cluener_spans(record: dict) -> list[tuple[int, int, str, str]]:
    """``(start, end exclusive, type, mention)`` of a CLUENER record (its ends are inclusive)."""
    return sorted((s, e + 1, kind, m) for kind, ms in record["label"].items() for m, ss in ms.items() for s, e in ss)


def to_char_conll(records: list[dict]) -> str:
    """One ``char BIO-tag`` line per character, a blank line after each sentence."""
    out = []
    for record in records:
        tags = ["O"] * len(record["text"])
        for start, end, kind, _ in cluener_spans(record):
            tags[start:end] = [f"B-{kind}"] + [f"I-{kind}"] * (end - start - 1)
        out += [f"{ch} {tag}" for ch, tag in zip(record["text"], tags)] + [""]
    return "\n".join(out) + "\n"


def entity_tuples(record: dict) -> list[tuple[int, int, str, str]]:
    return sorted((e["start"], e["end"], e["type"], e["text"]) for e in record["entities"])


def test_chinese_char_conll_round_trips_real_cluener_records(tmp_path: Path, shared_data: Path) -> None:
    """zh joins characters with nothing: text and spans are exactly CLUENER's; ids name first lines."""
    originals = cluener_records(shared_data)
    path = write(tmp_path / "train", to_char_conll(originals))
    records = read(conll().for_language("zh"), path)
    assert [r["text"] for r in records] == [o["text"] for o in originals]
    for record, original in zip(records, originals):
        assert entity_tuples(record) == cluener_spans(original)
        assert all(record["text"][e["start"]:e["end"]] == e["text"] for e in record["entities"])
    first_lines = [1]
    for original in originals[:-1]:
        first_lines.append(first_lines[-1] + len(original["text"]) + 1)
    assert [r["id"] for r in records] == [f"train-{n}" for n in first_lines]


def test_english_join_and_explicit_join_override_the_language(tmp_path: Path, shared_data: Path) -> None:
    """en joins tokens with a space as before, an explicit ``join`` wins over zh; ids do not change."""
    originals = cluener_records(shared_data, 3)
    path = write(tmp_path / "train", to_char_conll(originals))
    ids = [r["id"] for r in read(conll().for_language("zh"), path)]
    for join, source in ((" ", conll().for_language("en")), ("_", conll(join="_").for_language("zh"))):
        records = read(source, path)
        assert [r["id"] for r in records] == ids
        assert [r["text"] for r in records] == [join.join(o["text"]) for o in originals]
        for record, original in zip(records, originals):
            step = 1 + len(join)  # one character per token
            spans = cluener_spans(original)
            expected = [(s * step, s * step + len(join.join(m)), kind, join.join(m)) for s, _, kind, m in spans]
            assert entity_tuples(record) == expected
            assert all(record["text"][e["start"]:e["end"]] == e["text"] for e in record["entities"])


def test_prepare_joins_conll_tokens_by_the_task_language(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The prepare stage fills ``join`` from ``language``: a zh task gets no spaces between characters."""
    lines = "北 B-LOC\n京 I-LOC\n很 O\n大 O\n\n"
    data = {"format": "conll", "dir": "zh/chars", "train": "train.txt", "dev": "dev.txt", "test": "test.txt"}
    files = {"train.txt": lines, "dev.txt": lines, "test.txt": lines}
    _, out = prepare_with(tmp_path, monkeypatch, "cluener", data, files)
    record = json.loads((out / "test.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert record["text"] == "北京很大"
    assert record["entities"] == [{"start": 0, "end": 2, "type": "LOC", "text": "北京"}]


# ------------------------------------------------------------------------------------ 2. quoted CSV


def test_csv_quoted_fields_with_delimiter_doubled_quote_and_line_break(tmp_path: Path) -> None:
    """A comma delimiter parses CSV quoting; a row spanning lines is named by its first line."""
    path = write(tmp_path / "train", '"a, b",c,1\n"say ""hi""",d,0\n"two\nlines",e,1\nlast,f,0\n')
    records = read(delimited(delimiter=",", columns=["text", "text_b", "label"]), path)
    assert records == [
        {"id": "train-1", "text": "a, b", "text_b": "c", "label": "1"},
        {"id": "train-2", "text": 'say "hi"', "text_b": "d", "label": "0"},
        {"id": "train-3", "text": "two\nlines", "text_b": "e", "label": "1"},
        {"id": "train-5", "text": "last", "text_b": "f", "label": "0"},
    ]


def test_columns_by_header_name_and_by_position(tmp_path: Path) -> None:
    """``columns`` maps roles to header names (a BOM before the header is dropped) or to positions."""
    path = write(tmp_path / "train", '\ufefflabel,other,sentence\n1,"x, y","hello, world"\n')
    by_name = delimited(delimiter=",", header=True, columns={"text": "sentence", "text_b": "other", "label": "label"})
    by_position = delimited(delimiter=",", header=True, columns={"text": 2, "text_b": 1, "label": 0})
    expected = [{"id": "train-2", "text": "hello, world", "text_b": "x, y", "label": "1"}]
    assert read(by_name, path) == read(by_position, path) == expected


def test_unknown_header_name_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path / "train", "label,sentence\n1,hello\n")
    source = delimited(delimiter=",", header=True, columns={"text": "sentense", "label": "label"})
    with pytest.raises(DataError, match=rf"^{path}:1: field 'text': no column named 'sentense'.*'sentence'"):
        read(source, path)


def test_quoted_row_without_quoting_fails_with_a_quoting_hint(tmp_path: Path) -> None:
    """``quoting: false`` splits on every comma: a quoted line break leaves too few fields, and the
    message says to turn quoting on."""
    path = write(tmp_path / "train", 'ok,1\n"first line\nsecond line",0\n')
    assert len(read(delimited(delimiter=",", columns=["text", "label"]), path)) == 2
    with pytest.raises(DataError, match=rf"^{path}:2: expected 2 fields .*hint: .*'quoting: true'"):
        read(delimited(delimiter=",", quoting=False, columns=["text", "label"]), path)


def test_tsv_keeps_quotes_as_text_and_the_last_column_takes_the_rest(tmp_path: Path) -> None:
    """Tabs default to no quoting: quotes stay in the text, the last column takes the rest of the line."""
    quoted = write(tmp_path / "quoted", '"quoted" start\t1\n')
    assert read(delimited(delimiter="\t", columns=["text", "label"]), quoted)[0]["text"] == '"quoted" start'
    rest = write(tmp_path / "rest", '1\t"a\tb\n')
    assert read(delimited(delimiter="\t", columns=["label", "text"]), rest)[0]["text"] == '"a\tb'
    # the label never takes the rest of a line: a row with a tab too many is an error, not a new label
    with pytest.raises(DataError, match=r"rest:1: expected 2 fields \['text', 'label'\] separated by '\\t', found 3"):
        read(delimited(delimiter="\t", columns=["text", "label"]), rest)


# ------------------------------------------------------------------------------------ 3. mis-split label


def test_mis_split_row_label_error_hints_at_quoting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pair row split inside its quoted field makes the label the rest of the row: the prepare
    stage's unknown-label error says so."""
    data = {"format": "delimited", "dir": "pairs", "train": "train.csv", "dev": "dev.csv", "test": "test.csv",
            "delimiter": ",", "quoting": False, "columns": ["text", "text_b", "label"], "header": False,
            "label_names": {"0": "different", "1": "same"}}
    good = "a,b,1\nc,d,0\n"
    files = {"train.csv": '"x, y",z,1\n', "dev.csv": good, "test.csv": good}
    with pytest.raises(DataError) as caught:
        prepare_with(tmp_path, monkeypatch, "afqmc", data, files)
    message = str(caught.value)
    assert "train.csv:1: expected 3 fields ['text', 'text_b', 'label'] separated by ',', found 4" in message
    assert "hint:" in message and "quoting: true" in message


# ------------------------------------------------------------------------------------ 4. encodings


def test_latin1_file_needs_its_encoding(tmp_path: Path) -> None:
    """Latin-1 bytes under the default are an error naming the line and the ``encoding:`` setting."""
    path = write(tmp_path / "train", b"ok\t1\ncaf\xe9\t0\n")
    with pytest.raises(DataError, match=rf"^{path}:2: not valid UTF-8 .*hint: set 'encoding:'"):
        read(delimited(delimiter="\t", columns=["text", "label"]), path)
    assert read(delimited(delimiter="\t", columns=["text", "label"], encoding="latin-1"), path)[1]["text"] == "café"
    csv_path = write(tmp_path / "train.csv", '"caf\xe9, cr\xe8me",1\n'.encode("latin-1"))
    latin_csv = delimited(delimiter=",", columns=["text", "label"], encoding="latin-1")
    assert read(latin_csv, csv_path)[0]["text"] == "café, crème"


def test_utf16_files_keep_their_line_numbers(tmp_path: Path) -> None:
    """UTF-16 (not line-safe) is decoded whole; ids still name the right lines, with and without quoting."""
    path = write(tmp_path / "train", "中文\t1\n\nnaïve\t0\n".encode("utf-16"))
    records = read(delimited(delimiter="\t", columns=["text", "label"], encoding="utf-16"), path)
    assert [(r["id"], r["text"]) for r in records] == [("train-1", "中文"), ("train-3", "naïve")]
    csv_path = write(tmp_path / "train.csv", 'x,1\n"a,\nb",0\n'.encode("utf-16"))
    records = read(delimited(delimiter=",", columns=["text", "label"], encoding="utf-16"), csv_path)
    assert [(r["id"], r["text"]) for r in records] == [("train-1", "x"), ("train-2", "a,\nb")]


def test_unknown_encoding_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match="unknown encoding 'latin-99'"):
        delimited(delimiter="\t", columns=["text", "label"], encoding="latin-99")


def test_utf8_bom_is_dropped_on_every_reading_path(tmp_path: Path) -> None:
    """A BOM at the start is dropped line by line (TSV, CoNLL), by the CSV parser and with ``utf-8-sig``."""
    path = write(tmp_path / "train", "\ufeffhello\t1\n")
    for encoding in ("utf-8", "utf-8-sig"):
        assert read(delimited(delimiter="\t", columns=["text", "label"], encoding=encoding), path)[0]["text"] == "hello"
    conll_path = write(tmp_path / "conll", "\ufeffEU B-ORG\n")
    assert read(conll(), conll_path)[0]["entities"][0]["text"] == "EU"
    csv_path = write(tmp_path / "train.csv", '\ufeff"a, b",1\n')
    assert read(delimited(delimiter=",", columns=["text", "label"]), csv_path)[0]["text"] == "a, b"


# ------------------------------------------------------------------------------------ 5. invisible lines


@pytest.mark.parametrize("invisible", ["\ufeff", "\u200b", "\u200b\u2060 "])
def test_conll_line_of_invisible_characters_is_a_counted_blank(tmp_path: Path, invisible: str) -> None:
    """A last line (or a separator) of zero-width characters reads as blank and is counted."""
    path = write(tmp_path / "train", f"EU B-ORG\nrejects O\n{invisible}\nGerman B-MISC\n{invisible}\n")
    report = ReadReport()
    records = read(conll().for_language("en"), path, report)
    assert [(r["id"], r["text"]) for r in records] == [("train-1", "EU rejects"), ("train-4", "German")]
    assert report.as_dict() == {"train": {INVISIBLE_LINE: 2}}


def test_conll_one_column_line_shows_its_repr(tmp_path: Path) -> None:
    """A line with one column is an error whose message escapes invisible characters."""
    path = write(tmp_path / "train", "EU B-ORG\n\ufeffO\n")
    with pytest.raises(DataError) as caught:
        read(conll(), path)
    assert str(caught.value).startswith(f"{path}:2: expected at least 2 whitespace-separated columns, found 1")
    assert str(caught.value).endswith("'\\ufeffO'")


# ------------------------------------------------------------------------------------ 6. label_names_file


def test_label_names_file_renames_labels_in_prepare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """class.txt: line 1 names label 0; a label it lacks is an error naming the file it came from."""
    data = {"format": "delimited", "dir": "en/s", "train": "train", "dev": "dev", "test": "test",
            "delimiter": " ", "columns": ["label", "text"], "header": False, "label_names_file": "class.txt"}
    files = {"train": "1 good film\n0 bad film\n", "dev": "0 dull\n", "test": "1 fine\n",
             "class.txt": "negative\npositive\n\n"}
    summary, _ = prepare_with(tmp_path, monkeypatch, "sst2", data, files)
    assert summary["labels"] == {
        "train": {"negative": 1, "positive": 1}, "dev": {"negative": 1}, "test": {"positive": 1}
    }
    files["test"] = "2 neutral\n"
    unknown = r"test:1: field 'label': '2' is not a key of tasks.sst2.data.label_names_file \(.*class.txt\)"
    with pytest.raises(DataError, match=unknown):
        prepare_with(tmp_path / "again", monkeypatch, "sst2", data, files)


def test_read_label_names_both_forms(tmp_path: Path) -> None:
    plain = write(tmp_path / "a.txt", "\ufeffnegative\npositive\n")
    assert read_label_names(plain) == {"0": "negative", "1": "positive"}
    tabbed = write(tmp_path / "b.txt", "news_tech\ttechnology\nnews_sports\t sports\n")
    assert read_label_names(tabbed) == {"news_tech": "technology", "news_sports": "sports"}
    assert read_label_names(write(tmp_path / "c.txt", "caf\xe9\n".encode("latin-1")), "latin-1") == {"0": "café"}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("a\nb\na\n", r":3: name 'a' is given twice \(line 1 too\)"),
        ("a\n\nb\n", r":2: empty label name"),
        ("0\ta\nb\n", r":2: mixes '<label><TAB><name>' lines with plain names"),
        ("0\ta\n0\tb\n", r":2: label '0' is named twice \(line 1 too\)"),
    ],
)
def test_bad_label_names_file_names_file_and_line(tmp_path: Path, content: str, expected: str) -> None:
    path = write(tmp_path / "class.txt", content)
    with pytest.raises(DataError, match=f"^{path}{expected}"):
        read_label_names(path)


def test_label_names_and_label_names_file_together_are_a_config_error() -> None:
    with pytest.raises(ValidationError, match="not both"):
        delimited(delimiter="\t", columns=["text", "label"], label_names={"0": "a"}, label_names_file="class.txt")


# ------------------------------------------------------------------------------------ 7. query_csv


def test_query_csv_reads_quoted_rows_after_a_bom_and_honours_encoding(tmp_path: Path) -> None:
    params = {"format": "query_csv", **SPLIT_FILES, "columns": ["_", "text", "query", "answer"], "header": False,
              "template": ["___{query}___{text}"], "missing_answer": "skip"}
    content = '1,"甲公司, 乙公司破产",破产,乙公司\n2,"多行\n文本",其他,NaN\n'
    path = write(tmp_path / "train.csv", "\ufeff" + content)
    records = read(QueryCsvSource.model_validate(params), path)
    assert [(r["id"], r["text"], r["answers"]) for r in records] == [
        ("train-1", "甲公司, 乙公司破产", [{"start": 5, "end": 8, "text": "乙公司"}])
    ]
    gbk = write(tmp_path / "gbk.csv", content.encode("gbk"))
    with pytest.raises(DataError, match=rf"^{gbk}:1: not valid UTF-8 .*hint: set 'encoding:'"):
        read(QueryCsvSource.model_validate(params), gbk)
    assert read(QueryCsvSource.model_validate({**params, "encoding": "gbk"}), gbk) == records

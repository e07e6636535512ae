"""Readers, carving and the prepare stage on real datasets and on hand-made bad files."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from pipeline.config.loading import load_params
from pipeline.data.readers import DataError, ReadReport, read_split
from pipeline.data.readers.base import CarveSpec
from pipeline.data.readers.delimited import DelimitedSource
from pipeline.data.splits import carve_splits
from tests.helpers import FIXTURES

pytestmark = pytest.mark.unit

TSV = DelimitedSource(format="delimited", dir=".", train="t", dev="d", test="t", delimiter="\t",
                      columns=["text", "label"], header=False)


def test_reads_a_member_of_a_zip_archive(tmp_path: Path) -> None:
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("inner/train.data", "好 极 了\t1\n\n太差\t0\n")
    report = ReadReport()
    records = read_split(TSV, archive / "inner" / "train.data", "train", report)
    assert records == [
        {"id": "train-1", "text": "好 极 了", "label": "1"},
        {"id": "train-3", "text": "太差", "label": "0"},
    ]
    assert report.as_dict() == {"train": {"empty line": 1}}


def test_missing_zip_member_lists_the_members(tmp_path: Path) -> None:
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.tsv", "x\t1\n")
    with pytest.raises(DataError, match=r"no member 'b.tsv'.*members: a.tsv"):
        read_split(TSV, archive / "b.tsv", "train", ReadReport())


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "train.tsv"
    path.write_text("good\t1\nno label here\nfine\t0\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"{path}:2: expected 2 fields \['text', 'label'\]"):
        read_split(TSV, path, "train", ReadReport())


def test_empty_label_and_invalid_utf8_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "train.tsv"
    path.write_text("good\t\n", encoding="utf-8")
    with pytest.raises(DataError, match=r":1: field 'label' is empty"):
        read_split(TSV, path, "train", ReadReport())
    path.write_bytes(b"ok\t1\n\xff\xfe bad\t0\n")
    with pytest.raises(DataError, match=r":2: not valid UTF-8"):
        read_split(TSV, path, "train", ReadReport())


def test_empty_text_is_a_counted_skip(tmp_path: Path) -> None:
    path = tmp_path / "train.tsv"
    path.write_text("  \t1\nok\t0\n", encoding="utf-8")
    report = ReadReport()
    assert [r["text"] for r in read_split(TSV, path, "train", report)] == ["ok"]
    assert report.as_dict() == {"train": {"empty text": 1}}


def test_space_delimited_label_first_keeps_the_rest_of_the_line(tmp_path: Path) -> None:
    source = TSV.model_copy(update={"delimiter": " ", "columns": ["label", "text"]})
    path = tmp_path / "stsa"
    path.write_text("1 a stirring , funny film\n", encoding="utf-8")
    assert read_split(source, path, "dev", ReadReport())[0] == {"id": "dev-1", "text": "a stirring , funny film", "label": "1"}


def test_carving_is_deterministic_and_disjoint() -> None:
    train = [{"id": f"train-{i}", "text": str(i), "label": "x"} for i in range(100)]
    spec = CarveSpec(dev_fraction=0.1, test_fraction=0.2, seed=5)
    first, info = carve_splits({"train": train}, spec)
    second, _ = carve_splits({"train": train}, spec)
    assert first == second
    assert (len(first["train"]), len(first["dev"]), len(first["test"])) == (70, 10, 20)
    ids = [r["id"] for split in first.values() for r in split]
    assert len(ids) == len(set(ids)) == 100
    assert info["dev"] == {"from": "train", "records": 10, "seed": 5}
    other, _ = carve_splits({"train": train}, spec.model_copy(update={"seed": 6}))
    assert other["dev"] != first["dev"]


def test_existing_split_is_not_carved() -> None:
    train = [{"id": str(i)} for i in range(10)]
    splits, info = carve_splits({"train": train, "test": [{"id": "t"}]}, CarveSpec(dev_fraction=0.2, test_fraction=0.5, seed=1))
    assert splits["test"] == [{"id": "t"}] and len(splits["dev"]) == 2 and set(info) == {"dev"}


def test_prepare_stage_on_the_real_tnews_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.stages import prepare as stage

    monkeypatch.setattr(stage, "prepared_dir", lambda task: tmp_path / task)
    summary = stage.prepare(load_params(), "tnews")
    assert summary["records"] == {"train": 50692, "dev": 2668, "test": 10000}
    assert len(summary["labels"]["train"]) == 15
    assert summary["carved"]["dev"]["records"] == 2668
    first = json.loads((tmp_path / "tnews" / "test.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert set(first) == {"id", "text", "label"} and first["label"].startswith("news_")
    assert json.loads((tmp_path / "tnews" / "summary.json").read_text())["task"] == "tnews"


def test_prepare_maps_label_names_and_rejects_unknown_labels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.stages import prepare as stage

    monkeypatch.setattr(stage, "prepared_dir", lambda task: tmp_path / task)
    params = load_params().model_copy(update={"data_root": str(FIXTURES)})  # a few lines of each sst2 file
    summary = stage.prepare(params, "sst2")
    assert summary["labels"]["test"] == {"negative": 5, "positive": 2}
    data = params.tasks["sst2"].data.model_copy(update={"label_names": {"1": "positive"}})
    bad = params.model_copy(update={"tasks": {"sst2": params.tasks["sst2"].model_copy(update={"data": data})}})
    with pytest.raises(DataError, match=r"stsa.binary.train:\d+: field 'label': '0' is not a key of tasks.sst2.data.label_names"):
        stage.prepare(bad, "sst2")

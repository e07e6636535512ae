"""``pretraining:`` entries are checked like every other block: one line per problem, with file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config.errors import ConfigError
from pipeline.config.loading import load_params
from pipeline.config.preflight import check_backbone
from tests.helpers import edited, line_of

pytestmark = pytest.mark.unit

EMPTY = "pretraining: {}\n"


def with_entry(tmp_path: Path, entry: str, task_backbone: str | None = None) -> Path:
    path = edited(tmp_path, EMPTY, "pretraining:\n  zh-adapted:\n" + "".join(f"    {line}\n" for line in entry.splitlines()))
    if task_backbone:
        text = path.read_text(encoding="utf-8")
        marker = "  zh_sentiment:\n"
        head, tail = text.split(marker, 1)
        path.write_text(head + marker + tail.replace("backbone: minilm-zh", f"backbone: {task_backbone}", 1), encoding="utf-8")
    return path


GOOD = "from: minilm-zh\nlanguage: zh\ncorpus: {tasks: [zh_sentiment, tnews]}\nsteps: 100"


def problems_of(path: Path) -> str:
    with pytest.raises(ConfigError) as error:
        load_params(path)
    return str(error.value)


def test_a_valid_entry_is_a_backbone_tasks_may_name(tmp_path: Path) -> None:
    params = load_params(with_entry(tmp_path, GOOD, task_backbone="zh-adapted"))
    entry = params.pretraining["zh-adapted"]
    assert entry.source == "minilm-zh" and entry.steps == 100 and entry.masking.rate == 0.15
    assert entry.dump()["from"] == "minilm-zh"
    assert params.task("zh_sentiment").backbone == "zh-adapted"
    assert params.backbone("zh-adapted") is entry and "zh-adapted" in params.backbone_names


def test_the_default_params_pretrain_nothing() -> None:
    assert load_params().pretraining == {}


@pytest.mark.parametrize("entry, key, words", [
    (GOOD.replace("from: minilm-zh", "from: minilm-xx"), "zh-adapted.from", "unknown backbone 'minilm-xx'"),
    (GOOD.replace("zh_sentiment,", "zh_sentimnt,"), "zh-adapted.corpus.tasks.0", "unknown task 'zh_sentimnt'"),
    (GOOD.replace("zh_sentiment,", "sst2,"), "zh-adapted.corpus.tasks.0", "task 'sst2' is language 'en'"),
    (GOOD.replace("{tasks: [zh_sentiment, tnews]}", "{files: [/tmp/x.txt]}"), "zh-adapted.corpus.files.0",
     "corpus files live under data/corpora/"),
    (GOOD.replace("{tasks: [zh_sentiment, tnews]}", "{files: [data/corpora/../../x.txt]}"),
     "zh-adapted.corpus.files.0", "corpus files live under data/corpora/"),
    (GOOD.replace("{tasks: [zh_sentiment, tnews]}", "{}"), "zh-adapted.corpus", "names no text"),
])
def test_bad_references_are_one_line_each(tmp_path: Path, entry: str, key: str, words: str) -> None:
    path = with_entry(tmp_path, entry)
    message = problems_of(path)
    assert f"pretraining.{key}: " in message and words in message
    assert message.count("\n") == 0
    assert message.startswith(f"{path}:")


def test_bad_values_and_unknown_keys_name_their_line(tmp_path: Path) -> None:
    path = with_entry(tmp_path, GOOD.replace("steps: 100", "steps: 0\nmaskin: {rate: 0.2}"))
    message = problems_of(path)
    assert f"{path}:{line_of(path, 'steps: 0')}: pretraining.zh-adapted.steps:" in message
    assert f"{path}:{line_of(path, 'maskin: {rate')}: pretraining.zh-adapted.maskin: unknown key" in message
    path = with_entry(tmp_path, GOOD + "\nmasking: {rate: 1.5}")
    assert "pretraining.zh-adapted.masking.rate:" in problems_of(path)


def test_a_name_clash_and_a_loop_of_from_are_refused(tmp_path: Path) -> None:
    path = edited(tmp_path, EMPTY, "pretraining:\n  minilm-zh:\n" + "".join(
        f"    {line}\n" for line in GOOD.splitlines()))
    assert "pretraining.minilm-zh: 'minilm-zh' is also under 'backbones:'" in problems_of(path)
    looped = "pretraining:\n" + "".join(
        f"  {name}:\n" + "".join(f"    {line}\n" for line in GOOD.replace("from: minilm-zh", f"from: {source}").splitlines())
        for name, source in (("a", "b"), ("b", "a")))
    assert "continues from itself" in problems_of(edited(tmp_path, EMPTY, looped))


def test_a_task_naming_an_unknown_backbone_hears_of_pretraining(tmp_path: Path) -> None:
    message = problems_of(with_entry(tmp_path, GOOD, task_backbone="zh-adaptd"))
    assert "tasks.zh_sentiment.backbone: unknown backbone 'zh-adaptd'" in message
    assert "did you mean 'zh-adapted'?" in message


def test_preflight_finds_a_missing_corpus_file_and_checks_the_source(tmp_path: Path) -> None:
    path = with_entry(tmp_path, GOOD.replace("{tasks: [zh_sentiment, tnews]}", "{files: [data/corpora/news.txt]}"))
    params = load_params(path)
    problems = check_backbone(params, "zh-adapted", path, root=tmp_path)
    assert any(f"{path}:{line_of(path, 'news.txt')}: pretraining.zh-adapted.corpus.files.0: corpus file" in p
               for p in problems), problems
    assert any("backbones.minilm-zh.vocab" in p for p in problems), problems  # the vocab is not under tmp_path
    (tmp_path / "data" / "corpora").mkdir(parents=True)
    (tmp_path / "data" / "corpora" / "news.txt").write_text("一篇新闻\n", encoding="utf-8")
    assert not any("corpus file" in p for p in check_backbone(params, "zh-adapted", path, root=tmp_path))


def test_a_source_without_a_bert_style_head_and_the_backbone_stage_are_refused(tmp_path: Path) -> None:
    from pipeline.config.preflight import check_stage

    albert = "backbones:\n  albert-zh: {preset: path, path: /models/albert, model_type: albert}\n"
    path = with_entry(tmp_path, GOOD.replace("from: minilm-zh", "from: albert-zh"))
    path.write_text(path.read_text(encoding="utf-8").replace("backbones:\n", albert, 1), encoding="utf-8")
    assert "pretraining.zh-adapted.from: an albert backbone has no BERT-style MLM head" in problems_of(path)
    good = with_entry(tmp_path, GOOD)
    with pytest.raises(ConfigError, match="'zh-adapted' is a pretraining entry: the pretrain stage makes it"):
        check_stage(load_params(good), "backbone", "zh-adapted", good)

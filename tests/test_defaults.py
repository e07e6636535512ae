"""``defaults:`` in params.yaml: hyper-parameters given once, merged into every task when loading.

A task's own key wins; ``head`` is merged key by key; kind, language, backbone and data stay per task.
Errors name the line the bad value came from: in ``defaults`` or in the task.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from pipeline.config.errors import ConfigError
from pipeline.config.loading import load_params
from pipeline.config.paths import DEFAULT_PARAMS, PROJECT_ROOT
from pipeline.config.schema import INHERITED, PER_TASK_KEYS, TaskConfig, TaskDefaults
from pipeline.config.yaml_source import line_of as config_line_of

HEAD = """\
data_root: ../shared/data
tracking: {uri: sqlite:///mlflow.db, experiment: test}
backbones:
  minilm-en: {preset: minilm-en}
"""

DEFAULTS = """\
defaults:
  maxlen: 64
  batch_size: 32
  epochs: 2
  learning_rate: 1.0e-4
  warmup_proportion: 0.1
  weight_decay: 0.01
  dropout: 0.1
  max_train_samples: null
  max_dev_samples: 1000
  max_test_samples: null
  seed: 42
  precision: float32
  head: {decoder: softmax, crf_lr_multiplier: 50.0}
"""

TASKS = """\
tasks:
  ner:
    kind: sequence_labeling
    language: en
    backbone: minilm-en
    data: {dir: en/ner, format: conll, train: train.txt, dev: dev.txt, test: test.txt}
    epochs: 5
    max_train_samples: 100
    max_dev_samples: null
    head: {crf_lr_multiplier: 10.0}
  plain:
    kind: sequence_labeling
    language: en
    backbone: minilm-en
    data: {dir: en/plain, format: conll, train: train.txt, dev: dev.txt, test: test.txt}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def line_of(path: Path, pattern: str) -> int:
    """1-based number of the first line matching the regular expression ``pattern``."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if re.search(pattern, line):
            return number
    raise AssertionError(pattern)


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as error:
        load_params(path)
    return str(error.value)


def committed_with(tmp_path: Path, pattern: str, new: str) -> Path:
    """The committed params.yaml with the first line matching ``pattern`` replaced by ``new``."""
    text = DEFAULT_PARAMS.read_text(encoding="utf-8")
    changed, count = re.subn(pattern, new, text, count=1, flags=re.MULTILINE)
    assert count == 1, f"params.yaml has no line matching {pattern!r}"
    return write(tmp_path, changed)


# --- merging -------------------------------------------------------------------------------------


@pytest.mark.unit
def test_a_task_key_wins_and_head_is_merged_key_by_key(tmp_path: Path) -> None:
    params = load_params(write(tmp_path, HEAD + DEFAULTS + TASKS))
    ner, plain = params.task("ner"), params.task("plain")
    assert isinstance(ner, TaskConfig)
    # the task's own keys win, an explicit null included; the rest comes from defaults
    assert (ner.epochs, ner.max_train_samples, ner.max_dev_samples) == (5, 100, None)
    assert (ner.batch_size, ner.learning_rate, ner.maxlen, ner.precision) == (32, 1.0e-4, 64, "float32")
    assert (plain.epochs, plain.max_train_samples, plain.max_dev_samples) == (2, None, 1000)
    # head: defaults.head, then the task's head on top
    assert ner.head == {"decoder": "softmax", "crf_lr_multiplier": 10.0}
    assert ner.head_options.decoder == "softmax" and ner.head_options.crf_lr_multiplier == 10.0
    assert plain.head == {"decoder": "softmax", "crf_lr_multiplier": 50.0}
    # what a stage (and MLflow, which logs cfg.model_dump()) sees is the merged task
    assert ner.model_dump()["batch_size"] == 32 and ner.model_dump()["head"]["decoder"] == "softmax"
    # the defaults block itself is kept as written
    assert params.defaults.epochs == 2 and "maxlen" in params.defaults.model_fields_set


@pytest.mark.unit
def test_defaults_hold_the_hyper_parameters_of_a_task_with_the_same_constraints() -> None:
    assert set(INHERITED) == set(TaskConfig.model_fields) - set(PER_TASK_KEYS)
    for name in INHERITED:
        field, own = TaskDefaults.model_fields[name], TaskConfig.model_fields[name]
        assert not field.is_required(), name
        assert (field.annotation, field.metadata) == (own.annotation, own.metadata), name


@pytest.mark.unit
def test_a_params_file_without_defaults_is_still_valid(tmp_path: Path) -> None:
    complete = (
        "tasks:\n  ner:\n    kind: sequence_labeling\n    language: en\n    backbone: minilm-en\n"
        "    data: {dir: en/ner, format: conll, train: train.txt, dev: dev.txt, test: test.txt}\n"
        + textwrap.indent(DEFAULTS.removeprefix("defaults:\n"), "  ")
    )
    params = load_params(write(tmp_path, HEAD + complete))
    ner = params.task("ner")
    assert (ner.epochs, ner.max_dev_samples, ner.head) == (2, 1000, {"decoder": "softmax", "crf_lr_multiplier": 50.0})
    assert params.defaults.model_fields_set == set()
    # so is an empty 'defaults:' (every line of it commented out)
    params = load_params(write(tmp_path, HEAD + "defaults:\n  # epochs: 3\n" + complete))
    assert params.task("ner") == ner and params.defaults.model_fields_set == set()


# --- errors at the line the value came from --------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    "added, key, hint",
    [
        ("  kind: sequence_labeling\n", "kind", "move 'kind: sequence_labeling' into each task under 'tasks:'"),
        ("  language: en\n", "language", "move 'language: en' into each task under 'tasks:'"),
        ("  backbone: minilm-en\n", "backbone", "move 'backbone: minilm-en' into each task under 'tasks:'"),
        ("  data:\n    format: conll\n", "data", "move the 'data:' block into each task under 'tasks:'"),
    ],
)
def test_per_task_keys_are_refused_under_defaults(tmp_path: Path, added: str, key: str, hint: str) -> None:
    path = write(tmp_path, HEAD + DEFAULTS.replace("  epochs: 2\n", "  epochs: 2\n" + added) + TASKS)
    message = error_of(path)
    assert message == (
        f"{path}:{line_of(path, f'^  {key}:')}: defaults.{key}: not allowed in defaults: kind, language, "
        f"backbone and data are set in each task; hint: {hint}"
    )


@pytest.mark.unit
def test_a_refused_key_and_a_bad_value_in_defaults_are_both_reported(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + DEFAULTS.replace("  epochs: 2\n", "  kind: sequence_labeling\n  epochs: 0\n")
                 + TASKS)
    lines = error_of(path).splitlines()
    assert [line.split(": ")[1] for line in lines] == ["defaults.kind", "defaults.epochs"], lines
    assert lines[1].startswith(f"{path}:{line_of(path, '^  epochs: 0')}: defaults.epochs: Input should be greater")


@pytest.mark.unit
def test_a_bad_value_in_defaults_is_reported_once_at_its_line_in_defaults(tmp_path: Path) -> None:
    path = committed_with(tmp_path, r"^  epochs: 2$", "  epochs: three")
    assert error_of(path) == (
        f"{path}:{line_of(path, '^  epochs: three')}: defaults.epochs: Input should be a valid integer "
        "(got 'three'); hint: write a whole number, e.g. 'epochs: 3'"
    )
    path = committed_with(tmp_path, r"^  warmup_proportion: 0\.1$", "  warmup_proportion: 1.5")
    assert error_of(path).startswith(
        f"{path}:{line_of(path, 'warmup_proportion: 1.5')}: defaults.warmup_proportion: "
        "Input should be less than or equal to 1"
    )


@pytest.mark.unit
def test_a_bad_value_in_a_task_is_reported_at_the_task(tmp_path: Path) -> None:
    path = committed_with(tmp_path, r"^    epochs: 1$", "    epochs: one")  # ccks_event's own epochs
    assert error_of(path) == (
        f"{path}:{line_of(path, 'epochs: one')}: tasks.ccks_event.epochs: Input should be a valid integer "
        "(got 'one'); hint: write a whole number, e.g. 'epochs: 3'"
    )


@pytest.mark.unit
def test_a_misspelt_key_in_defaults_is_one_problem(tmp_path: Path) -> None:
    path = committed_with(tmp_path, r"^  warmup_proportion: 0\.1$", "  warmup_proportoin: 0.1")
    assert error_of(path) == (
        f"{path}:{line_of(path, 'warmup_proportoin')}: defaults.warmup_proportoin: unknown key; "
        "hint: did you mean 'warmup_proportion'? (a required key: the tasks that do not set it miss it)"
    )


@pytest.mark.unit
def test_a_head_option_in_defaults_a_kind_refuses_names_the_tasks(tmp_path: Path) -> None:
    classification = TASKS.replace("sequence_labeling", "text_classification", 1).replace(
        "format: conll, train: train.txt", "format: delimited, delimiter: ' ', columns: [label, text], "
        "header: false, train: train.txt", 1).replace("    head: {crf_lr_multiplier: 10.0}\n", "")
    path = write(tmp_path, HEAD + DEFAULTS + classification)
    message = error_of(path)
    line = line_of(path, "^  head:")
    assert message == (
        f"{path}:{line}: defaults.head.decoder: unknown key (inherited by tasks.ner); "
        "hint: set it in the 'head:' of the tasks whose kind takes it, not in defaults\n"
        f"{path}:{line}: defaults.head.crf_lr_multiplier: unknown key (inherited by tasks.ner); "
        "hint: set it in the 'head:' of the tasks whose kind takes it, not in defaults"
    ), message
    # a bad head value from defaults is at the defaults line; one from the task at the task's line
    path = write(tmp_path, HEAD + DEFAULTS.replace("decoder: softmax", "decoder: hmm") + TASKS)
    lines = error_of(path).splitlines()
    assert lines == [
        f"{path}:{line}: defaults.head.decoder: Input should be 'crf' or 'softmax' (got 'hmm') "
        "(inherited by tasks.ner, tasks.plain)"
    ], lines
    path = write(tmp_path, HEAD + DEFAULTS + TASKS.replace("{crf_lr_multiplier: 10.0}", "{decoder: hmm}"))
    message = error_of(path)
    where = f"{path}:{line_of(path, 'decoder: hmm')}: tasks.ner.head.decoder"
    assert message.startswith(f"{where}: Input should be 'crf' or 'softmax' (got 'hmm')"), message
    assert "inherited" not in message


@pytest.mark.unit
def test_a_key_in_neither_defaults_nor_the_task_is_missing_at_the_task(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + DEFAULTS.replace("  epochs: 2\n", "") + TASKS)
    assert error_of(path) == (
        f"{path}:{line_of(path, '^  plain:')}: tasks.plain.epochs: required key is missing; "
        "hint: add 'epochs: 3' here, or once under 'defaults:' for every task"
    )


@pytest.mark.unit
def test_line_of_names_the_defaults_line_of_an_inherited_value() -> None:
    assert config_line_of(DEFAULT_PARAMS, "tasks.sst2.epochs") == line_of(DEFAULT_PARAMS, "^  epochs: 2$")
    assert config_line_of(DEFAULT_PARAMS, "tasks.ccks_event.epochs") == line_of(DEFAULT_PARAMS, "^    epochs: 1$")
    assert config_line_of(DEFAULT_PARAMS, "tasks.sst2.data.dir") == line_of(DEFAULT_PARAMS, "dir: en/sst2")


# --- the committed params.yaml and dvc.yaml --------------------------------------------------------


@pytest.mark.unit
def test_the_committed_params_give_the_effective_values_of_every_task() -> None:
    params = load_params()
    assert list(params.tasks) == [
        "sst2", "zh_sentiment", "tnews", "mrpc", "afqmc", "conll03", "cluener", "ccks_event", "squad", "duie",
        "conll04",
    ]
    sst2 = params.task("sst2").model_dump()
    assert {key: sst2[key] for key in INHERITED} == {
        "maxlen": 64, "batch_size": 32, "epochs": 2, "learning_rate": 5.0e-5, "warmup_proportion": 0.1,
        "weight_decay": 0.01, "dropout": 0.1, "max_train_samples": None, "max_dev_samples": None,
        "max_test_samples": None, "seed": 42, "seeds": [42, 43, 44], "precision": "auto", "early_stopping": None,
        "backbone_training": "full", "features": None, "unfreeze_after_epochs": None,
        "layerwise_lr_decay": None, "ema": None, "adversarial": None, "tokenizer": {"extend_vocab": None},
        "distribute": {"strategy": "none", "cpu_replicas": None},
        "head": {},
    }
    cluener = params.task("cluener").model_dump()
    assert {key: cluener[key] for key in INHERITED} == {
        "maxlen": 64, "batch_size": 32, "epochs": 2, "learning_rate": 6.0e-4, "warmup_proportion": 0.1,
        "weight_decay": 0.01, "dropout": 0.1, "max_train_samples": 5000, "max_dev_samples": None,
        "max_test_samples": None, "seed": 42, "seeds": None, "precision": "auto", "early_stopping": None,
        "backbone_training": "full", "features": None, "unfreeze_after_epochs": None,
        "layerwise_lr_decay": None, "ema": None, "adversarial": None, "tokenizer": {"extend_vocab": None},
        "distribute": {"strategy": "none", "cpu_replicas": None},
        "head": {"decoder": "crf", "crf_lr_multiplier": 100.0},
    }
    squad = params.task("squad").model_dump()
    assert {key: squad[key] for key in INHERITED} == {
        "maxlen": 384, "batch_size": 16, "epochs": 1, "learning_rate": 2.0e-4, "warmup_proportion": 0.1,
        "weight_decay": 0.01, "dropout": 0.1, "max_train_samples": 1500, "max_dev_samples": 200,
        "max_test_samples": 1000, "seed": 42, "seeds": None, "precision": "float32", "early_stopping": None,
        "backbone_training": "full", "features": None, "unfreeze_after_epochs": None,
        "layerwise_lr_decay": None, "ema": None, "adversarial": None, "tokenizer": {"extend_vocab": None},
        "distribute": {"strategy": "none", "cpu_replicas": None},
        "head": {"max_answer_len": 30, "no_answer": False},
    }
    assert params.task("zh_sentiment").max_train_samples == 3500 and params.task("conll04").epochs == 8
    assert params.task("afqmc").head == {"class_weight": "balanced", "select_by": "macro_f1"}
    # every task shares these through defaults
    assert {(task.warmup_proportion, task.weight_decay, task.dropout, task.seed)
            for task in params.tasks.values()} == {(0.1, 0.01, 0.1, 42)}
    # bfloat16 cost the span-extraction tasks their figures (README, Performance): they set float32
    assert {name: task.precision for name, task in params.tasks.items() if task.precision != "auto"} == {
        "ccks_event": "float32", "squad": "float32"}


@pytest.mark.unit
@pytest.mark.parametrize("stage", ["validate", "train", "evaluate"])
def test_dvc_stages_depend_on_defaults_and_their_task(stage: str) -> None:
    stages = YAML(typ="safe").load(PROJECT_ROOT / "dvc.yaml")["stages"]
    listed = stages[stage]["do"]["params"]
    names = [entry for entry in listed if isinstance(entry, str)]
    assert "defaults" in names, f"dvc.yaml: {stage} must re-run when defaults change (params: {listed})"
    assert "tasks.${key}" in names, f"dvc.yaml: {stage} must re-run when its task changes (params: {listed})"


@pytest.mark.unit
def test_english_classification_and_pair_tasks_and_a_chinese_task_train_three_seeds() -> None:
    params = load_params()
    grouped = {name for name, task in params.tasks.items() if len(task.training_seeds) >= 3}
    english = {name for name, task in params.tasks.items()
               if task.language == "en" and task.kind in ("text_classification", "pair_classification")}
    assert english and english <= grouped
    assert any(params.tasks[name].language == "zh" for name in grouped)
    # every group starts with the data seed, so its first seed is the single-seed training of before
    assert all(params.tasks[name].training_seeds[0] == params.tasks[name].seed for name in grouped)

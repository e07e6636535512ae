"""The typed config loader: the default params load; bad params fail with file, line and key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config.paths import DEFAULT_PARAMS
from pipeline.config.errors import ConfigError
from pipeline.config.schema import TaskConfig
from pipeline.config.loading import load_params
from tests.helpers import edited, line_of

pytestmark = pytest.mark.unit


def test_default_params_load_into_typed_objects() -> None:
    params = load_params()
    assert set(params.tasks) >= {"sst2", "zh_sentiment", "tnews"}
    sst2 = params.task("sst2")
    assert isinstance(sst2, TaskConfig)
    assert sst2.kind == "text_classification" and sst2.backbone == "minilm-en"
    assert isinstance(sst2.epochs, int) and isinstance(sst2.learning_rate, float)
    assert params.data_dir("sst2").name == "sst2"
    assert params.tracking_uri().startswith("sqlite:////")


def test_wrong_type_names_file_line_and_key_path(tmp_path: Path) -> None:
    path = edited(tmp_path, "    learning_rate: 5.0e-5\n", "    learning_rate: 5.0e-5\n    epochs: three\n")
    with pytest.raises(ConfigError) as error:
        load_params(path)
    message = str(error.value)
    assert f"{path}:{line_of(path, 'epochs: three')}: tasks.sst2.epochs:" in message
    assert "integer" in message and "'three'" in message


def test_unknown_key_is_rejected_with_a_suggestion(tmp_path: Path) -> None:
    path = edited(tmp_path, "    maxlen: 64\n", "    maxln: 64\n")  # required, no default
    with pytest.raises(ConfigError) as error:
        load_params(path)
    message = str(error.value)
    assert f"{path}:{line_of(path, 'maxln')}: tasks.sst2.maxln: unknown key" in message
    assert "; hint: did you mean 'maxlen'? (a required key, missing here)" in message
    # one problem, one line: the misspelt key's 'required key is missing' twin is folded into it
    assert "required key is missing" not in message and message.count("\n") == 0


def test_unknown_kind_lists_known_kinds(tmp_path: Path) -> None:
    path = edited(tmp_path, "kind: text_classification", "kind: text_clasification")
    with pytest.raises(ConfigError, match=r"tasks\.sst2\.kind: unknown kind 'text_clasification'; known kinds: .*text_classification") as error:
        load_params(path)
    message = str(error.value)
    assert message.startswith(f"{path}:{line_of(path, 'text_clasification')}: ")
    assert message.endswith("; hint: did you mean 'text_classification'?")
    assert "(got" not in message, "the value is named once"


def test_nested_data_keys_are_checked(tmp_path: Path) -> None:
    path = edited(tmp_path, "      columns: [label, text]", "      columns: [label, sentence]")
    with pytest.raises(ConfigError, match=r"tasks\.sst2\.data\.columns: must name a 'text' column"):
        load_params(path)


def test_unknown_backbone_reference_is_rejected(tmp_path: Path) -> None:
    path = edited(tmp_path, "backbone: minilm-en", "backbone: minilm-fr")
    with pytest.raises(ConfigError, match="unknown backbone 'minilm-fr'") as error:
        load_params(path)
    message = str(error.value)
    assert message.startswith(f"{path}:{line_of(path, 'backbone: minilm-fr')}: tasks.sst2.backbone: unknown backbone")
    assert "defined in 'backbones' and 'pretraining': minilm-en, minilm-zh" in message and "hint:" in message
    assert "add it under 'backbones:'" in message and "preset: path" in message


def test_missing_split_without_carving_is_rejected(tmp_path: Path) -> None:
    path = edited(tmp_path, "      test: stsa.binary.test\n", "")
    with pytest.raises(ConfigError, match="tasks.sst2.data: no test split"):
        load_params(path)


def test_range_checks(tmp_path: Path) -> None:
    path = edited(tmp_path, "    learning_rate: 5.0e-5\n", "    learning_rate: 5.0e-5\n    warmup_proportion: 1.5\n")
    with pytest.raises(ConfigError, match=r"tasks\.sst2\.warmup_proportion: Input should be less than or equal to 1"):
        load_params(path)


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("tasks: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML") as error:
        load_params(bad)
    assert str(error.value).startswith(f"{bad}:2: not valid YAML: ") and "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="cannot read params file"):
        load_params(tmp_path / "absent.yaml")


def test_config_loading_does_not_import_tensorflow() -> None:
    import subprocess
    import sys

    code = "import sys; from pipeline.config.loading import load_params; load_params(); print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=DEFAULT_PARAMS.parent)
    assert result.stdout.strip() == "False"


def test_task_named_like_a_format_keeps_its_key_path(tmp_path: Path) -> None:
    path = edited(tmp_path, "  sst2:\n", "  conll:\n")
    text = path.read_text(encoding="utf-8").replace("      delimiter: \" \"\n", "      delimiter: 3\n", 1)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"tasks\.conll\.data\.delimiter: Input should be a valid string"):
        load_params(path)


def test_backbone_errors_name_the_backbone_key(tmp_path: Path) -> None:
    path = edited(tmp_path, "    embedding_init: overlap", "    embedding_init: copy")
    with pytest.raises(ConfigError, match=r"backbones\.minilm-zh\.embedding_init: Input should be 'overlap' or 'random'"):
        load_params(path)


def test_classification_head_options_balance_classes_and_pick_the_selection_metric(tmp_path: Path) -> None:
    from pipeline.kinds.factory import build_kind, new_kind

    afqmc, sst2 = load_params().task("afqmc"), load_params().task("sst2")
    kind = build_kind(afqmc)  # one kind object per task, holding that task's head options
    assert kind.selection_metric(afqmc) == "macro_f1"
    assert build_kind(sst2).selection_metric(sst2) == "accuracy"
    assert new_kind("pair_classification").options.select_by == "accuracy"  # the options' defaults
    features = [{"target": 0}] * 6 + [{"target": 1}] * 2
    weights = kind.class_weight(features, ["different", "same"], afqmc)
    assert weights == pytest.approx({0: 8 / 12, 1: 8 / 4})  # n / (classes x count): the rare class weighs 3x
    assert build_kind(sst2).class_weight(features, ["negative", "positive"], sst2) is None
    path = edited(tmp_path, "head: {class_weight: balanced", "head: {class_weight: inverse")
    with pytest.raises(ConfigError, match="head.class_weight"):
        load_params(path)


# --- one line per problem, with a hint ----------------------------------------------------------


@pytest.mark.parametrize(
    "old, new, key, hint",
    [
        ("    epochs: 1\n", "    epochs: three\n", "tasks.ccks_event.epochs",
         "(got 'three'); hint: write a whole number, e.g. 'epochs: 3'"),
        ("  epochs: 2\n", "  epochs: 2.5\n", "defaults.epochs", "(got 2.5); hint: write a whole number"),
        ("    learning_rate: 5.0e-5\n", "    learning_rate: '5.0e-5'\n", "tasks.sst2.learning_rate",
         "hint: remove the quotes: 'learning_rate: 5.0e-5'"),
        ("    learning_rate: 5.0e-5\n", "    learning_rate: fast\n", "tasks.sst2.learning_rate",
         "hint: write a number, e.g. 'learning_rate: 5.0e-5'"),
        ("      header: false\n", "      header: no\n", "tasks.sst2.data.header",
         "(got 'no'); hint: write true or false (YAML 1.2: yes/no/on/off are text), e.g. 'header: false'"),
        ('      delimiter: " "\n', "      delimiter: 3\n", "tasks.sst2.data.delimiter",
         "(got 3); hint: quote it to make it text: 'delimiter: \"3\"'"),
        ("      columns: [label, text]\n", "      columns: label\n", "tasks.sst2.data.columns", "hint: write a list"),
        ("  precision: auto ", "  precision: float23 ", "defaults.precision",
         "hint: did you mean 'float32'?"),
        ("    seed: 7\n", "    seed: [7]\n", "backbones.minilm-zh.seed", "(got [7]); hint: write a whole number"),
    ],
)
def test_wrong_types_get_a_hint(tmp_path: Path, old: str, new: str, key: str, hint: str) -> None:
    path = edited(tmp_path, old, new)
    with pytest.raises(ConfigError) as error:
        load_params(path)
    message = str(error.value)
    assert "\n" not in message, message
    assert message.startswith(f"{path}:{line_of(path, new.strip())}: {key}: "), message
    assert hint in message, message


def test_unknown_key_without_a_close_match_lists_the_keys_of_its_block(tmp_path: Path) -> None:
    # conll03's data block is a 'conll' format: its own keys are offered, not another format's
    path = edited(tmp_path, "      tag_column: -1", "      tag_column: -1\n      zzz: 1")
    with pytest.raises(ConfigError) as error:
        load_params(path)
    message = str(error.value)
    where = f"{path}:{line_of(path, 'zzz')}: tasks.conll03.data.zzz"
    assert message.startswith(f"{where}: unknown key; hint: allowed keys here: ")
    assert "token_column" in message and "tag_column" in message and "delimiter" not in message


def test_unknown_format_and_preset_point_at_their_key(tmp_path: Path) -> None:
    path = edited(tmp_path, "      format: conll\n", "      format: conl\n")
    with pytest.raises(ConfigError) as error:
        load_params(path)
    assert str(error.value) == (
        f"{path}:{line_of(path, 'format: conl')}: tasks.conll03.data.format: unknown format 'conl'; "
        "known: delimited, query_csv, squad, cluener_json, conll, duie, conll04; hint: did you mean 'conll'?"
    )
    path = edited(tmp_path, "      format: conll\n", "")
    with pytest.raises(ConfigError, match=r"tasks\.conll03\.data\.format: required key is missing; known formats: "):
        load_params(path)
    path = edited(tmp_path, "    preset: minilm-en ", "    preset: minilm-eng ")
    with pytest.raises(ConfigError) as error:
        load_params(path)
    assert str(error.value) == (
        f"{path}:{line_of(path, 'minilm-eng')}: backbones.minilm-en.preset: unknown preset 'minilm-eng'; "
        "known: minilm-en, minilm-zh, path; hint: did you mean 'minilm-en'?"
    )


def test_head_options_point_at_the_head_key(tmp_path: Path) -> None:
    path = edited(tmp_path, "head: {class_weight: balanced", "head: {class_weight: balancd")
    with pytest.raises(ConfigError) as error:
        load_params(path)
    assert str(error.value) == (
        f"{path}:{line_of(path, 'balancd')}: tasks.afqmc.head.class_weight: Input should be 'none' or 'balanced' "
        "(got 'balancd'); hint: did you mean 'balanced'?"
    )


def test_missing_key_names_an_example(tmp_path: Path) -> None:
    path = edited(tmp_path, "    maxlen: 64\n", "")
    with pytest.raises(ConfigError, match=r"tasks\.sst2\.maxlen: required key is missing; hint: add 'maxlen: 128'"):
        load_params(path)


def test_problems_are_one_line_each_in_file_order(tmp_path: Path) -> None:
    path = edited(tmp_path, "kind: relation_extraction", "kind: relation")  # duie, near the end
    path.write_text(path.read_text(encoding="utf-8").replace("  epochs: 2\n", "  epochs: two\n", 1)
                    .replace("    seed: 7\n", "    seed: seven\n"), encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_params(path)
    lines = str(error.value).splitlines()
    keys = [line.split(": ")[1] for line in lines]
    assert keys == ["backbones.minilm-zh.seed", "defaults.epochs", "tasks.duie.kind"]
    numbers = [int(line.split(":")[1]) for line in lines]
    assert numbers == sorted(numbers) and all("; hint: " in line for line in lines)


def test_line_of_and_shown_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.config.yaml_source import line_of as config_line_of
    from pipeline.config.errors import shown_path

    assert config_line_of(DEFAULT_PARAMS, "tasks.sst2.data.dir") == line_of(DEFAULT_PARAMS, "dir: en/sst2")
    assert config_line_of(DEFAULT_PARAMS, ["backbones", "nosuch"]) == line_of(DEFAULT_PARAMS, "backbones:")
    assert config_line_of(tmp_path / "absent.yaml", "tasks") == 1
    monkeypatch.chdir(DEFAULT_PARAMS.parent)
    assert shown_path(DEFAULT_PARAMS) == "params.yaml"
    assert shown_path(tmp_path / "x.yaml") == str(tmp_path / "x.yaml")


def test_early_stopping_is_off_by_default_and_checked_when_set(tmp_path: Path) -> None:
    assert all(task.early_stopping is None for task in load_params().tasks.values())
    path = edited(tmp_path, "    learning_rate: 5.0e-5\n", "    learning_rate: 5.0e-5\n    early_stopping: {patience: 2}\n")
    stopping = load_params(path).task("sst2").early_stopping
    assert (stopping.patience, stopping.min_delta) == (2, 0.0)
    path = edited(tmp_path, "    learning_rate: 5.0e-5\n", "    learning_rate: 5.0e-5\n    early_stopping: {patience: 0}\n")
    with pytest.raises(ConfigError) as error:
        load_params(path)
    assert f"{path}:{line_of(path, 'early_stopping: {patience: 0}')}: tasks.sst2.early_stopping.patience" in str(error.value)


def test_seeds_train_one_model_each_on_the_data_seed_picks(tmp_path: Path) -> None:
    sst2 = load_params().task("conll03")
    assert sst2.seeds is None and sst2.training_seeds == [sst2.seed]
    path = edited(tmp_path, "    learning_rate: 3.0e-4\n", "    learning_rate: 3.0e-4\n    seeds: [7, 8]\n")
    conll = load_params(path).task("conll03")
    assert conll.training_seeds == [7, 8] and conll.seed == 42
    seven = conll.for_seed(7)
    assert (seven.seed, seven.seeds, seven.training_seeds) == (7, None, [7])
    for wrong, says in (("[7, 7]", "seeds must differ"), ("[]", "at least 1")):
        path = edited(tmp_path, "    learning_rate: 3.0e-4\n", f"    learning_rate: 3.0e-4\n    seeds: {wrong}\n")
        with pytest.raises(ConfigError) as error:
            load_params(path)
        assert f"{path}:{line_of(path, f'seeds: {wrong}')}: tasks.conll03.seeds" in str(error.value)
        assert says in str(error.value)


SST2_LR = "    learning_rate: 5.0e-5\n"


@pytest.mark.parametrize(("added", "key", "expected"), [
    ("backbone_training: most", "backbone_training", "must be 'full', 'frozen' or {top_layers: N} with N >= 1 (got 'most')"),
    ("backbone_training: {top_layer: 2}", "backbone_training", "must be 'full', 'frozen' or {top_layers: N}"),
    ("features: {last_layers: 4}", "features", "a feature-based head reads a frozen backbone; hint: set "
                                               "'backbone_training: frozen'"),
    ("unfreeze_after_epochs: 2", "unfreeze_after_epochs", "2 is not below epochs (2): the backbone would never train"),
    ("layerwise_lr_decay: 1.5", "layerwise_lr_decay", "less than or equal to 1"),
    ("ema: {decay: 1}", "ema.decay", "less than 1"),
    ("adversarial: {method: pgd, epsilon: 0.5}", "adversarial.method", "'fgm'"),
    ("tokenizer: {extend_vocab: {min_count: 0, max_new: 10}}", "tokenizer.extend_vocab.min_count", "greater than or equal to 1"),
    ("distribute: {strategy: horovod}", "distribute.strategy", "'none', 'mirrored' or 'multi_worker'"),
    ("distribute: {strategy: multi_worker, cpu_replicas: 2}", "distribute.cpu_replicas",
     "applies to strategy 'mirrored' only, not 'multi_worker'"),
    ("distribute: {strategy: mirrored, cpu_replicas: 1}", "distribute.cpu_replicas", "greater than or equal to 2"),
    ("precision: float16", "precision", "'mixed_float16'"),
])
def test_technique_options_get_one_line_naming_their_key(tmp_path: Path, added: str, key: str, expected: str) -> None:
    path = edited(tmp_path, SST2_LR, f"{SST2_LR}    {added}\n")
    with pytest.raises(ConfigError) as error:
        load_params(path)
    message = str(error.value)
    assert message.count("\n") == 0, message
    assert message.startswith(f"{path}:{line_of(path, '    ' + added)}: tasks.sst2.{key}: "), message
    assert expected in message


def test_frozen_with_layerwise_rates_or_unfreezing_makes_no_sense(tmp_path: Path) -> None:
    path = edited(tmp_path, SST2_LR, f"{SST2_LR}    backbone_training: frozen\n    layerwise_lr_decay: 0.9\n"
                                     "    unfreeze_after_epochs: 1\n")
    with pytest.raises(ConfigError) as error:
        load_params(path)
    lines = str(error.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == ["tasks.sst2.layerwise_lr_decay", "tasks.sst2.unfreeze_after_epochs"]
    valid = edited(tmp_path, SST2_LR, f"{SST2_LR}    backbone_training: {{top_layers: 2}}\n    layerwise_lr_decay: 0.9\n"
                                      "    ema: {decay: 0.99}\n    adversarial: {method: fgm, epsilon: 0.5}\n")
    task = load_params(valid).task("sst2")
    assert task.backbone_training.top_layers == 2 and task.ema.decay == 0.99 and task.adversarial.epsilon == 0.5


def test_distribution_is_off_by_default_and_refuses_what_it_cannot_split(tmp_path: Path) -> None:
    assert {task.distribute.strategy for task in load_params().tasks.values()} == {"none"}
    added = "    distribute: {strategy: mirrored}\n    adversarial: {method: fgm, epsilon: 0.5}\n"
    path = edited(tmp_path, SST2_LR, SST2_LR + added)
    with pytest.raises(ConfigError) as error:
        load_params(path)
    assert str(error.value).startswith(f"{path}:{line_of(path, 'distribute: {strategy: mirrored}')}: tasks.sst2.distribute.strategy: "
                                       "'mirrored' does not support 'adversarial' yet")
    valid = edited(tmp_path, SST2_LR, f"{SST2_LR}    distribute: {{strategy: mirrored, cpu_replicas: 4}}\n"
                                      "    ema: {decay: 0.99}\n    precision: mixed_float16\n")
    task = load_params(valid).task("sst2")
    assert (task.distribute.strategy, task.distribute.cpu_replicas, task.precision) == ("mirrored", 4, "mixed_float16")

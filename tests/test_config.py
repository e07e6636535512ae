"""The typed config loader: the default params load; bad params fail with file, line and key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import DEFAULT_PARAMS, ConfigError, TaskConfig, load_params


def edited(tmp_path: Path, old: str, new: str, count: int = 1) -> Path:
    text = DEFAULT_PARAMS.read_text(encoding="utf-8")
    assert old in text, f"fixture text {old!r} not in params.yaml"
    path = tmp_path / "params.yaml"
    path.write_text(text.replace(old, new, count), encoding="utf-8")
    return path


def line_of(path: Path, fragment: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if fragment in line:
            return number
    raise AssertionError(fragment)


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
    path = edited(tmp_path, "epochs: 2", "epochs: three")
    with pytest.raises(ConfigError) as error:
        load_params(path)
    message = str(error.value)
    assert f"{path}:{line_of(path, 'epochs: three')}: tasks.sst2.epochs:" in message
    assert "integer" in message and "'three'" in message


def test_unknown_key_is_rejected_with_a_suggestion(tmp_path: Path) -> None:
    path = edited(tmp_path, "    warmup_proportion: 0.1\n", "    warmup_proportoin: 0.1\n")
    with pytest.raises(ConfigError) as error:
        load_params(path)
    message = str(error.value)
    assert f"{path}:{line_of(path, 'warmup_proportoin')}: tasks.sst2.warmup_proportoin: unknown key" in message
    assert "did you mean 'warmup_proportion'" in message
    assert "tasks.sst2.warmup_proportion: required key is missing" in message


def test_unknown_kind_lists_known_kinds(tmp_path: Path) -> None:
    path = edited(tmp_path, "kind: text_classification", "kind: text_clasification")
    with pytest.raises(ConfigError, match=r"tasks\.sst2\.kind: unknown kind 'text_clasification'; known kinds: .*text_classification"):
        load_params(path)


def test_nested_data_keys_are_checked(tmp_path: Path) -> None:
    path = edited(tmp_path, "      columns: [label, text]", "      columns: [label, sentence]")
    with pytest.raises(ConfigError, match=r"tasks\.sst2\.data\.columns: must name a 'text' column"):
        load_params(path)


def test_unknown_backbone_reference_is_rejected(tmp_path: Path) -> None:
    path = edited(tmp_path, "backbone: minilm-en", "backbone: minilm-fr")
    with pytest.raises(ConfigError, match="unknown backbone 'minilm-fr'"):
        load_params(path)


def test_missing_split_without_carving_is_rejected(tmp_path: Path) -> None:
    path = edited(tmp_path, "      test: stsa.binary.test\n", "")
    with pytest.raises(ConfigError, match="tasks.sst2.data: no test split"):
        load_params(path)


def test_range_checks(tmp_path: Path) -> None:
    path = edited(tmp_path, "warmup_proportion: 0.1", "warmup_proportion: 1.5")
    with pytest.raises(ConfigError, match=r"tasks\.sst2\.warmup_proportion: Input should be less than or equal to 1"):
        load_params(path)


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("tasks: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)
    with pytest.raises(ConfigError, match="cannot read params file"):
        load_params(tmp_path / "absent.yaml")


def test_config_loading_does_not_import_tensorflow() -> None:
    import subprocess
    import sys

    code = "import sys; from pipeline.config import load_params; load_params(); print('tensorflow' in sys.modules)"
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
    from pipeline.kinds import get_kind

    afqmc = load_params().task("afqmc")
    kind = get_kind("pair_classification")
    assert kind.selection_metric(afqmc) == "macro_f1"
    assert kind.selection_metric(load_params().task("sst2")) == "accuracy"
    features = [{"target": 0}] * 6 + [{"target": 1}] * 2
    weights = kind.class_weight(features, ["different", "same"], afqmc)
    assert weights == pytest.approx({0: 8 / 12, 1: 8 / 4})  # n / (classes x count): the rare class weighs 3x
    assert kind.class_weight(features, ["negative", "positive"], load_params().task("sst2")) is None
    path = edited(tmp_path, "head: {class_weight: balanced", "head: {class_weight: inverse")
    with pytest.raises(ConfigError, match="head.class_weight"):
        load_params(path)

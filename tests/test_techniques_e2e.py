"""The fine-tuning techniques through the real pipeline: every kind trains on a frozen backbone with the
feature-based head (last layers concatenated, a BiLSTM on top) and an extended vocabulary, its logged model
serves through pyfunc, and the backbone's weights in the saved model are the pretrained ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ruamel.yaml import YAML

from tests.tiny_project import build_project, git_commit_all, logged_model_predictions, run

pytestmark = pytest.mark.e2e

#: one Chinese task per kind, on the tiny random backbone (pair_classification builds the very head of
#: text_classification, on two segments: left out to keep the suite's time)
TASKS = {
    "zh_sentiment": "text_classification",
    "cluener": "sequence_labeling",
    "ccks_event": "span_extraction",
    "duie": "relation_extraction",
}
TECHNIQUES = {
    "backbone_training": "frozen",
    "features": {"last_layers": 2, "combine": "concat", "bilstm_units": 16},
    "tokenizer": {"extend_vocab": {"min_count": 2, "max_new": 20}},
}
#: on one task also: the weight average and FGM
ON_SENTIMENT = {"ema": {"decay": 0.9}, "adversarial": {"method": "fgm", "epsilon": 0.5}}


@pytest.fixture(scope="module")
def project(module_tmp: Path, shared_data: Path, zh_vocab: Path) -> Path:
    project = build_project(module_tmp, shared_data, zh_vocab, TASKS)
    yaml = YAML()
    params = yaml.load(project / "params.yaml")
    params["defaults"].update(TECHNIQUES)
    for task in params["tasks"].values():  # one epoch: what trains matters here, not how well
        task.update(epochs=1)
    params["tasks"]["zh_sentiment"].update(ON_SENTIMENT)
    yaml.dump(params, project / "params.yaml")
    git_commit_all(project, "techniques")
    run(project, "dvc", "repro")
    return project


def test_every_kind_trains_and_serves_on_a_frozen_backbone(project: Path) -> None:
    jobs, outputs = logged_model_predictions(project, TASKS)
    for task, _, rows in jobs:
        assert len(outputs[task]) == len(rows) >= 1, task
        evaluated = [
            json.loads(line)["predicted"]
            for line in (project / "reports" / task / "evaluation" / "predictions.jsonl").read_text().splitlines()[:2]
        ]
        # the served model is the evaluated one
        assert [sorted(o) for o in outputs[task]] == [sorted(k for k in p if k != "kept_chars") for p in evaluated]
        history = json.loads((project / "reports" / task / "history.json").read_text())
        assert [row["epoch"] for row in history] == [1] and all(row["loss"] >= 0 for row in history)


def test_the_saved_models_backbone_weights_are_the_pretrained_ones(project: Path) -> None:
    from bert4keras.models import build_transformer_model

    from pipeline.serving.bundle import read_bundle

    tiny = project.parent / "tiny-zh"
    pretrained = build_transformer_model(str(tiny / "bert_config.json"), str(tiny / "bert_model.ckpt"))
    expected = {layer.name: layer.get_weights() for layer in pretrained.layers if layer.weights}
    for task in TASKS:
        model = read_bundle(project / "models" / "tasks" / task).load_model()
        assert model.get_layer("Features-BiLSTM") is not None, task
        compared = 0
        for name, weights in expected.items():
            for saved, original in zip(model.get_layer(name).get_weights(), weights):
                np.testing.assert_array_equal(saved, original, err_msg=f"{task}: {name}")
                compared += 1
        assert compared >= 30, task


def test_the_extended_vocabulary_is_reported_and_travels_with_the_model(project: Path, zh_vocab: Path) -> None:
    from pipeline.serving.bundle import VOCAB, read_bundle

    original = zh_vocab.read_text(encoding="utf-8").splitlines()
    for task in TASKS:
        health = json.loads((project / "reports" / task / "data_health.json").read_text())
        bundle = read_bundle(project / "models" / "tasks" / task)
        units = bundle.meta["vocab_extension"]["units"]
        assert health["vocab_extension"]["added"] == len(units), task
        lines = (bundle.directory / VOCAB).read_text(encoding="utf-8").splitlines()
        assert len(lines) == len(original)
        for unit, index in units.items():
            assert original[index].startswith("[unused") and lines[index] == unit
        if units:  # prediction's tokenizer, built from the bundle, maps an added unit to its slot
            unit, index = next(iter(units.items()))
            assert index in bundle.tokenizer().encode(unit).token_ids
    assert any(read_bundle(project / "models" / "tasks" / t).meta["vocab_extension"]["units"] for t in TASKS)


def test_the_techniques_are_mlflow_params(project: Path) -> None:
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("bert4keras-pipeline")
    runs = {run.data.tags["task"]: run for run in client.search_runs([experiment.experiment_id])}
    params = runs["zh_sentiment"].data.params
    assert params["backbone_training"] == "frozen" and params["features.bilstm_units"] == "16"
    assert params["ema.decay"] == "0.9" and params["adversarial.method"] == "fgm"
    assert params["tokenizer.extend_vocab.max_new"] == "20"
    assert runs["cluener"].data.params["ema"] == "null"

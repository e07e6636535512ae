"""The real DVC DAG on a few dozen examples: backbone -> prepare -> train -> evaluate, MLflow runs.

Runs in a copy of the project with one task of every kind, taken from the default params.yaml
and cut to a tiny slice: Chinese tasks on a tiny random BERT (a ``path`` backbone), SST-2 on the
real MiniLM conversion, so every stage, preset and kind of the default run is exercised.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.e2e

TINY = {
    "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "hidden_size": 32, "initializer_range": 0.02, "intermediate_size": 64, "max_position_embeddings": 128,
    "num_attention_heads": 2, "num_hidden_layers": 2, "type_vocab_size": 2,
}
COPIED = ["pipeline", "params.yaml", "dvc.yaml", ".dvc/config", ".dvc/.gitignore", ".gitignore", "pyproject.toml"]
SIZES = {"max_train_samples": 48, "max_dev_samples": 24, "max_test_samples": 24, "epochs": 2, "batch_size": 16}
#: one task per kind (plus the English classifier on the real MiniLM)
TASKS = {
    "sst2": "text_classification",
    "zh_sentiment": "text_classification",
    "afqmc": "pair_classification",
    "cluener": "sequence_labeling",
    "ccks_event": "span_extraction",
    "duie": "relation_extraction",
}
CLASSIFIERS = ("sst2", "zh_sentiment")


def make_tiny_backbone(directory: Path, vocab: Path) -> Path:
    from pipeline.backbone.checkpoint import random_bert_arrays, write_bert_config, write_tf_checkpoint

    directory.mkdir(parents=True)
    shutil.copyfile(vocab, directory / "vocab.txt")
    config = {**TINY, "vocab_size": sum(1 for _ in open(vocab, encoding="utf-8"))}
    write_bert_config(config, directory / "bert_config.json")
    write_tf_checkpoint(random_bert_arrays(config, seed=1), directory / "bert_model.ckpt")
    return directory


def write_params(project: Path, shared_data: Path, tiny: Path) -> None:
    yaml = YAML()
    params = yaml.load(ROOT / "params.yaml")
    params["data_root"] = str(shared_data)
    params["backbones"] = {
        "minilm-en": params["backbones"]["minilm-en"],
        "tiny-zh": {"preset": "path", "path": str(tiny), "model_type": "bert", "checkpoint": "bert_model.ckpt"},
    }
    tasks = {name: params["tasks"][name] for name in TASKS}
    for name, task in tasks.items():
        assert task["kind"] == TASKS[name], f"params.yaml: tasks.{name} is no longer a {TASKS[name]} task"
        task.update(SIZES)
        task["maxlen"] = 32
        if task["language"] == "zh":
            task["backbone"] = "tiny-zh"
    params["tasks"] = tasks
    yaml.dump(params, project / "params.yaml")


def run(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(args, cwd=project, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def mlflow_runs(project: Path) -> list:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("bert4keras-pipeline")
    assert experiment is not None, "the pipeline created no MLflow experiment"
    return client.search_runs([experiment.experiment_id])


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, shared_data: Path, zh_vocab: Path) -> Path:
    base = tmp_path_factory.mktemp("e2e")
    project = base / "project"
    for name in COPIED:
        source, target = ROOT / name, project / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(source, target)
    write_params(project, shared_data, make_tiny_backbone(base / "tiny-zh", zh_vocab))
    run(project, "git", "init", "-q")
    run(project, "git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    run(project, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "fixture")
    run(project, "dvc", "repro")
    return project


@pytest.mark.parametrize("task", list(TASKS))
def test_every_kind_leaves_sane_reports(project: Path, task: str) -> None:
    metrics = json.loads((project / "reports" / task / "metrics.json").read_text())
    assert metrics["test_records"] <= 24
    primary = next(iter(metrics["test"]))
    assert primary in metrics["baseline"], "the trivial baseline must be scored on the primary metric"
    for section in ("test", "baseline", "test_detail"):
        assert all(0.0 <= value <= 1.0 for value in metrics[section].values()), metrics[section]
    history = json.loads((project / "reports" / task / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    assert all(row["loss"] >= 0 for row in history)
    assert metrics["best_epoch"] in (1, 2)
    evaluation = project / "reports" / task / "evaluation"
    predictions = (evaluation / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(predictions) == metrics["test_records"] and "predicted" in json.loads(predictions[0])
    assert any(path.suffix == ".png" and path.stat().st_size > 1000 for path in evaluation.iterdir())
    assert (project / "models" / "tasks" / task / "model.weights.h5").is_file()


def test_classifiers_report_a_confusion_matrix(project: Path) -> None:
    for task in CLASSIFIERS:
        evaluation = project / "reports" / task / "evaluation"
        assert (evaluation / "confusion.png").stat().st_size > 1000
        confusion = json.loads((evaluation / "confusion.json").read_text())
        assert confusion["labels"] == ["negative", "positive"]
        assert sum(map(sum, confusion["matrix"])) == 24
        first = json.loads((evaluation / "predictions.jsonl").read_text(encoding="utf-8").splitlines()[0])
        assert first["predicted"]["label"] in ("negative", "positive")


def test_every_task_has_one_complete_mlflow_run(project: Path) -> None:
    runs = mlflow_runs(project)
    by_task = {run.data.tags["task"]: run for run in runs}
    assert sorted(by_task) == sorted(TASKS) and len(runs) == len(TASKS)
    for task, run in by_task.items():
        metrics = json.loads((project / "reports" / task / "metrics.json").read_text())
        primary = next(iter(metrics["test"]))
        assert run.info.status == "FINISHED"
        assert run.data.params["epochs"] == "2" and run.data.params["kind"] == TASKS[task]
        assert run.data.params["data.format"] and run.data.params["backbone"]
        assert len(run.data.tags["mlflow.source.git.commit"]) == 40
        assert run.data.metrics[f"test.{primary}"] == pytest.approx(metrics["test"][primary])
        assert f"dev_{primary}" in run.data.metrics and f"baseline.{primary}" in run.data.metrics
        assert any(key.startswith("test_detail.") for key in run.data.metrics), "no per-type/per-class metrics"


def test_repro_after_a_run_does_nothing(project: Path) -> None:
    result = run(project, "dvc", "repro")
    assert "Data and pipelines are up to date." in result.stdout + result.stderr
    assert len(mlflow_runs(project)) == len(TASKS)


def test_experiment_reruns_only_the_changed_task(project: Path) -> None:
    run(project, "git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    run(project, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "lock")
    result = run(project, "dvc", "exp", "run", "-S", "tasks.zh_sentiment.epochs=1")
    output = result.stdout + result.stderr
    assert "Running stage 'train@zh_sentiment'" in output
    assert not any(f"Running stage 'train@{task}'" in output for task in TASKS if task != "zh_sentiment")
    runs = mlflow_runs(project)
    assert len(runs) == len(TASKS) + 1
    newest = max(runs, key=lambda r: r.info.start_time)
    assert newest.data.tags["task"] == "zh_sentiment" and newest.data.params["epochs"] == "1"
    assert newest.data.tags.get("dvc_exp_name")

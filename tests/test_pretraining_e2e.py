"""The pretrain stage end to end, on a tiny random BERT and real Chinese data: masked-LM loss and held-out
perplexity fall, the result is a backbone a task trains on, its own MLflow run records it, a SIGKILL
mid-save resumes to the very weights of an uninterrupted run, and DVC re-runs it for its own params only."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ruamel.yaml import YAML

from tests.tiny_project import build_project, git_commit_all, run

pytestmark = pytest.mark.e2e

NAME = "tiny-zh-mlm"
ENTRY = {"from": "tiny-zh", "language": "zh", "corpus": {"tasks": ["zh_sentiment", "cluener"]}, "steps": 8,
         "batch_size": 8, "maxlen": 32, "learning_rate": 1e-3, "log_every": 2, "heldout_fraction": 0.1,
         "masking": {"whole_word": True}}


def _edit_params(project: Path, change) -> None:
    yaml = YAML()
    params = yaml.load(project / "params.yaml")
    change(params)
    yaml.dump(params, project / "params.yaml")


def _arrays(backbone: Path) -> dict[str, np.ndarray]:
    from pipeline.runtime.tf_runtime import tf

    reader = tf.train.load_checkpoint(str(backbone / "bert_model.ckpt"))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


@pytest.fixture(scope="module")
def project(module_tmp: Path, shared_data: Path, zh_vocab: Path) -> Path:
    project = build_project(module_tmp, shared_data, zh_vocab, {"zh_sentiment": "text_classification",
                                                                "cluener": "sequence_labeling"})

    def add_pretraining(params) -> None:
        params["pretraining"] = {NAME: ENTRY}
        params["tasks"]["zh_sentiment"]["backbone"] = NAME
        params["tasks"]["zh_sentiment"]["epochs"] = 1

    _edit_params(project, add_pretraining)
    git_commit_all(project, "pretraining")
    run(project, "dvc", "repro", "evaluate@zh_sentiment")
    return project


def test_pretraining_lowers_the_loss_and_makes_a_backbone_a_task_trains_on(project: Path) -> None:
    history = json.loads((project / "reports" / "pretraining" / NAME / "history.json").read_text())
    assert [row["step"] for row in history] == [0, 2, 4, 6, 8]
    assert history[-1]["heldout_loss"] < history[0]["heldout_loss"]
    assert history[-1]["loss"] < history[1]["loss"]
    assert history[-1]["heldout_perplexity"] == pytest.approx(np.exp(history[-1]["heldout_loss"]), rel=1e-6)
    corpus = json.loads((project / "reports" / "pretraining" / NAME / "corpus.json").read_text())
    assert corpus["documents:task:zh_sentiment"] > 0 and corpus["documents:task:cluener"] > 0 and corpus["heldout"] > 0
    assert (project / "reports" / "pretraining" / NAME / "curves.png").stat().st_size > 0

    backbone = project / "models" / "backbones" / NAME
    manifest = json.loads((backbone / "backbone.json").read_text())
    assert manifest["preset"] == "pretraining" and manifest["model_type"] == "bert"
    summary = json.loads((backbone / "pretraining.json").read_text())
    assert summary["head_started_fresh"] == ["MLM-Dense", "MLM-Norm", "MLM-Bias"]  # a random BERT has no head
    trained, source = _arrays(backbone), _arrays(project.parent / "tiny-zh")
    assert set(source) < set(trained) and "cls/predictions/output_bias" in trained
    changed = [name for name in source if not np.array_equal(source[name], trained[name])]
    assert "bert/encoder/layer_1/output/dense/kernel" in changed and "bert/embeddings/word_embeddings" in changed

    metrics = json.loads((project / "reports" / "zh_sentiment" / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0
    task = json.loads((project / "models" / "tasks" / "zh_sentiment" / "task.json").read_text())
    assert NAME in json.dumps(task)

    with sqlite3.connect(project / "mlflow.db") as db:
        run_id, = db.execute("select run_uuid from tags where key = 'pretraining' and value = ?", (NAME,)).fetchone()
        tags = dict(db.execute("select key, value from tags where run_uuid = ?", (run_id,)).fetchall())
        steps = [row[0] for row in db.execute(
            "select step from metrics where run_uuid = ? and key = 'heldout_perplexity' order by step", (run_id,))]
        status, = db.execute("select status from runs where run_uuid = ?", (run_id,)).fetchone()
    assert tags["kind"] == "masked_lm" and tags["head_started_fresh"] == "true" and status == "FINISHED"
    assert steps == [0, 2, 4, 6, 8]


def test_a_kill_mid_save_resumes_to_the_weights_of_an_uninterrupted_run(project: Path) -> None:
    output = project / "models" / "backbones" / NAME
    uninterrupted = _arrays(output)
    shutil.rmtree(output)
    env = {**os.environ, "PIPELINE_INTERRUPT_AT": "checkpoint_write:2", "PIPELINE_INTERRUPT_SIGNAL": "KILL",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    killed = subprocess.run([sys.executable, "-m", "pipeline.stages.pretrain", NAME], cwd=project, env=env,
                            capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    state = json.loads((project / "models" / "checkpoints" / "pretraining" / NAME / "state.json").read_text())
    assert state["steps_done"] == 2  # block 4 was written, its state.json not: the resume starts after step 2
    run(project, sys.executable, "-m", "pipeline.stages.pretrain", NAME)
    again = _arrays(output)
    assert set(again) == set(uninterrupted)
    different = [name for name in again if not np.array_equal(again[name], uninterrupted[name])]
    assert not different, f"resumed weights differ from the uninterrupted run's: {different[:5]}"
    assert not (project / "models" / "checkpoints" / "pretraining" / NAME).exists()
    kept = run(project, sys.executable, "-m", "pipeline.stages.pretrain", NAME)
    assert "unchanged" in kept.stdout and "kept" in kept.stdout
    assert np.array_equal(_arrays(output)["bert/encoder/layer_0/output/dense/kernel"],
                          uninterrupted["bert/encoder/layer_0/output/dense/kernel"])


def test_dvc_reruns_pretraining_for_its_own_params_only(project: Path) -> None:
    forced = run(project, "dvc", "repro", "--force", "--single-item", "pretrain@" + NAME)
    assert "unchanged" in forced.stdout and "kept" in forced.stdout  # DVC keeps both persistent outputs
    assert (project / "reports" / "pretraining" / NAME / "history.json").is_file()
    _edit_params(project, lambda params: params["tasks"]["cluener"].update({"epochs": 3}))
    status = run(project, "dvc", "status", "pretrain@" + NAME).stdout
    assert "changed" not in status, status
    _edit_params(project, lambda params: params["pretraining"][NAME].update({"steps": 4}))
    status = run(project, "dvc", "status", "pretrain@" + NAME).stdout
    assert "pretraining." + NAME in status, status

"""A copy of the project on a tiny slice of the real data: what the end-to-end, serving, team-server
and browser tests share. Chinese tasks run on a tiny random BERT (a ``path`` backbone), English ones
on the real MiniLM conversion."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent

TINY = {
    "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "hidden_size": 32, "initializer_range": 0.02, "intermediate_size": 64, "max_position_embeddings": 128,
    "num_attention_heads": 2, "num_hidden_layers": 2, "type_vocab_size": 2,
}
COPIED = ["pipeline", "params.yaml", "dvc.yaml", ".dvc/config", ".dvc/.gitignore", ".gitignore", "pyproject.toml",
          "data/corpora"]
#: one seed each (tests/test_seeds_e2e.py trains seed groups)
SIZES = {"max_train_samples": 48, "max_dev_samples": 24, "max_test_samples": 24, "epochs": 2, "batch_size": 16,
         "seeds": None}
#: one task per kind (plus the English classifier on the real MiniLM)
TASKS = {
    "sst2": "text_classification",
    "zh_sentiment": "text_classification",
    "afqmc": "pair_classification",
    "cluener": "sequence_labeling",
    "ccks_event": "span_extraction",
    "duie": "relation_extraction",
}


def make_tiny_backbone(directory: Path, vocab: Path) -> Path:
    from pipeline.backbone.checkpoint import random_bert_arrays, write_bert_config, write_tf_checkpoint

    directory.mkdir(parents=True)
    shutil.copyfile(vocab, directory / "vocab.txt")
    config = {**TINY, "vocab_size": sum(1 for _ in open(vocab, encoding="utf-8"))}
    write_bert_config(config, directory / "bert_config.json")
    write_tf_checkpoint(random_bert_arrays(config, seed=1), directory / "bert_model.ckpt")
    return directory


def write_params(project: Path, shared_data: Path, tiny: Path, tasks_kinds: dict[str, str]) -> None:
    yaml = YAML()
    params = yaml.load(ROOT / "params.yaml")
    params["data_root"] = str(shared_data)
    params["backbones"] = {
        "minilm-en": params["backbones"]["minilm-en"],
        "tiny-zh": {"preset": "path", "path": str(tiny), "model_type": "bert", "checkpoint": "bert_model.ckpt"},
    }
    tasks = {name: params["tasks"][name] for name in tasks_kinds}
    for name, task in tasks.items():
        assert task["kind"] == tasks_kinds[name], f"params.yaml: tasks.{name} is no longer a {tasks_kinds[name]} task"
        task.update(SIZES)
        task["maxlen"] = 32
        if task["language"] == "zh":
            task["backbone"] = "tiny-zh"
    params["tasks"] = tasks
    yaml.dump(params, project / "params.yaml")


def run(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a command in the project with this interpreter's tools first on PATH; fail with its output.

    ``MLFLOW_TRACKING_URI`` is cleared (the project's own sqlite store) unless ``env`` sets it."""
    full = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    full.pop("MLFLOW_TRACKING_URI", None)
    full.update(env or {})
    result = subprocess.run(args, cwd=project, env=full, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def git_commit_all(project: Path, message: str) -> None:
    run(project, "git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    run(project, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message)


def build_project(base: Path, shared_data: Path, zh_vocab: Path, tasks_kinds: dict[str, str] = TASKS) -> Path:
    """A git-initialised copy of the project under ``base/project`` declaring only ``tasks_kinds``,
    cut to :data:`SIZES`; nothing is run yet."""
    project = base / "project"
    for name in COPIED:
        source, target = ROOT / name, project / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(source, target)
    write_params(project, shared_data, make_tiny_backbone(base / "tiny-zh", zh_vocab), tasks_kinds)
    run(project, "git", "init", "-q")
    git_commit_all(project, "fixture")
    return project


def first_rows(project: Path, task: str, n: int = 2) -> list[dict]:
    """The first test records of a task, cut to the logged model's input columns."""
    columns = json.loads((project / "reports" / task / "model.json").read_text())["inputs"]
    lines = (project / "data" / "prepared" / task / "test.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    return [{column: json.loads(line)[column] for column in columns} for line in lines]


def logged_model_predictions(project: Path, tasks) -> tuple[list[list], dict[str, list[dict]]]:
    """Each task's MLflow-logged model loaded through pyfunc in a fresh process, predicting its first test
    rows: the jobs ``[task, model_uri, rows]`` and the outputs by task."""
    jobs = [
        [task, json.loads((project / "reports" / task / "model.json").read_text())["model_uri"], first_rows(project, task)]
        for task in tasks
    ]
    script = (
        "import json, sys, mlflow, pandas as pd\n"
        "mlflow.set_tracking_uri(sys.argv[1])\n"
        "print(json.dumps({task: mlflow.pyfunc.load_model(uri).predict(pd.DataFrame(rows))"
        " for task, uri, rows in json.loads(sys.argv[2])}, ensure_ascii=False))\n"
    )
    result = run(project, sys.executable, "-c", script, f"sqlite:///{project / 'mlflow.db'}", json.dumps(jobs))
    return jobs, json.loads(result.stdout.strip().splitlines()[-1])

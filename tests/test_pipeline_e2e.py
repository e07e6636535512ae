"""The real DVC DAG on a few dozen examples: backbone -> prepare -> train -> evaluate, MLflow runs.

Runs in a copy of the project with one task of every kind, taken from the default params.yaml
and cut to a tiny slice: Chinese tasks on a tiny random BERT (a ``path`` backbone), SST-2 on the
real MiniLM conversion, so every stage, preset and kind of the default run is exercised.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tiny_project import TASKS, build_project, git_commit_all, logged_model_predictions, run

pytestmark = pytest.mark.e2e
CLASSIFIERS = ("sst2", "zh_sentiment")


def mlflow_runs(project: Path) -> list:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("bert4keras-pipeline")
    assert experiment is not None, "the pipeline created no MLflow experiment"
    return client.search_runs([experiment.experiment_id])


@pytest.fixture(scope="module")
def project(module_tmp: Path, shared_data: Path, zh_vocab: Path) -> Path:
    project = build_project(module_tmp, shared_data, zh_vocab)
    run(project, "dvc", "repro")
    return project


@pytest.mark.parametrize("task", list(TASKS))
def test_every_kind_leaves_sane_reports(project: Path, task: str) -> None:
    metrics = json.loads((project / "reports" / task / "metrics.json").read_text())
    scores = json.loads((project / "reports" / task / "evaluation" / "scores.json").read_text())
    assert scores["test_records"] <= 24
    primary = next(iter(metrics["test"]))
    assert set(metrics) == {"test", "baseline", "dev", "best_epoch"}, "DVC metrics hold the headline figures only"
    assert primary in metrics["baseline"] and primary in metrics["dev"], "baseline and dev carry the primary metric"
    assert metrics["test"][primary] == scores["test"][primary]
    for section in ("test", "baseline", "test_detail"):
        assert all(0.0 <= value <= 1.0 for value in scores[section].values()), scores[section]
    history = json.loads((project / "reports" / task / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    assert all(row["loss"] >= 0 for row in history)
    assert metrics["best_epoch"] in (1, 2)
    evaluation = project / "reports" / task / "evaluation"
    predictions = (evaluation / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(predictions) == scores["test_records"] and "predicted" in json.loads(predictions[0])
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


def changed_stages(project: Path) -> set[str]:
    """The stages ``dvc status`` calls changed (computing hashes only: nothing runs)."""
    result = run(project, "dvc", "status", "--json")
    return set(json.loads(result.stdout or "{}"))


def test_an_edit_reaches_exactly_the_stages_that_read_it(project: Path) -> None:
    params, decoding = project / "params.yaml", project / "pipeline" / "kinds" / "sequence_labeling" / "decoding.py"
    original_params, original_code = params.read_text(encoding="utf-8"), decoding.read_text(encoding="utf-8")
    task_stages = {f"{stage}@{task}" for task in TASKS for stage in ("validate", "train", "evaluate")}
    labeling = [task for task, kind in TASKS.items() if kind == "sequence_labeling"]
    try:
        # the same edits `dvc exp run -S defaults.dropout=0.2` / `-S tasks.sst2.dropout=0.2` make
        params.write_text(original_params.replace("  dropout: 0.1\n", "  dropout: 0.2\n", 1), encoding="utf-8")
        assert changed_stages(project) == task_stages
        sst2 = original_params.replace("    maxlen: 32\n", "    maxlen: 32\n    dropout: 0.2\n", 1)
        assert sst2.index("dropout: 0.2") > sst2.index("  sst2:") and sst2.index("dropout: 0.2") < sst2.index("  zh_sentiment:")
        params.write_text(sst2, encoding="utf-8")
        assert changed_stages(project) == {"validate@sst2", "train@sst2", "evaluate@sst2"}
        params.write_text(original_params, encoding="utf-8")
        # BIO decoding is code only sequence labeling runs
        decoding.write_text(original_code + "\n# an edit\n", encoding="utf-8")
        assert changed_stages(project) == {f"{stage}@{task}" for task in labeling for stage in ("train", "evaluate")}
    finally:
        params.write_text(original_params, encoding="utf-8")
        decoding.write_text(original_code, encoding="utf-8")
    assert changed_stages(project) == set()


def test_experiment_reruns_only_the_changed_task(project: Path) -> None:
    git_commit_all(project, "lock")
    result = run(project, "dvc", "exp", "run", "-S", "tasks.zh_sentiment.epochs=1")
    output = result.stdout + result.stderr
    assert "Running stage 'train@zh_sentiment'" in output
    assert not any(f"Running stage 'train@{task}'" in output for task in TASKS if task != "zh_sentiment")
    runs = mlflow_runs(project)
    assert len(runs) == len(TASKS) + 1
    newest = max(runs, key=lambda r: r.info.start_time)
    assert newest.data.tags["task"] == "zh_sentiment" and newest.data.params["epochs"] == "1"
    assert newest.data.tags.get("dvc_exp_name")


def test_runs_carry_their_lineage(project: Path) -> None:
    from ruamel.yaml import YAML

    lock = YAML(typ="safe").load((project / "dvc.lock").read_text())["stages"]
    first = [run for run in mlflow_runs(project) if "dvc_exp_name" not in run.data.tags]
    assert len({run.data.tags["pipeline_run"] for run in first}) == 1, "one repro, one pipeline_run tag"
    for run in first:
        task = run.data.tags["task"]
        assert run.data.tags["git_dirty"] == "false", "the pipeline's own writes (dvc.lock, reports) do not count"
        assert run.data.tags["package.tensorflow-cpu"] and run.data.tags["package.bert4keras"] == "0.11.5"
        inputs = {_context(item): item.dataset for item in run.inputs.dataset_inputs}
        assert set(inputs) == {"source", "training", "backbone"}
        prepared = next(out for out in lock[f"prepare@{task}"]["outs"])
        assert inputs["training"].digest == prepared["md5"].removesuffix(".dir")[:36]
        recorded = json.loads((project / "reports" / task / "mlflow_run.json").read_text())
        newest = max((r for r in mlflow_runs(project) if r.data.tags["task"] == task), key=lambda r: r.info.start_time)
        assert recorded["run_id"] == newest.info.run_id, "mlflow_run.json names the task's latest run"


def _context(dataset_input) -> str:
    return next(tag.value for tag in dataset_input.tags if tag.key == "mlflow.data.context")


def without_floats(output: dict) -> dict:
    return {key: value for key, value in output.items() if not isinstance(value, float)}


def test_every_logged_model_predicts_raw_text_in_a_fresh_process(project: Path) -> None:
    jobs, outputs = logged_model_predictions(project, TASKS)
    for task, _, rows in jobs:
        evaluated = [
            json.loads(line)["predicted"]
            for line in (project / "reports" / task / "evaluation" / "predictions.jsonl").read_text().splitlines()[:2]
        ]
        evaluated = [{k: v for k, v in p.items() if k != "kept_chars"} for p in evaluated]
        assert len(outputs[task]) == len(rows)
        # the served model is the evaluated one: same labels / spans / triples on the same inputs
        assert [without_floats(o) for o in outputs[task]] == [without_floats(p) for p in evaluated], task
        for row, output in zip(rows, outputs[task]):
            for entity in output.get("entities", []):
                assert row["text"][entity["start"] : entity["end"]] == entity["text"]
            if output.get("start") is not None:
                assert row["text"][output["start"] : output["end"]] == output["text"]


def test_logged_model_has_a_signature_and_an_input_example(project: Path) -> None:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    for task in ("afqmc", "ccks_event"):
        uri = json.loads((project / "reports" / task / "model.json").read_text())["model_uri"]
        info = mlflow.models.get_model_info(uri)
        inputs = [column.name for column in info.signature.inputs]
        assert inputs == (["text", "text_b"] if task == "afqmc" else ["query", "text"])
        assert info.saved_input_example_info, "no input example logged"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_answers_invocations(project: Path) -> None:
    import signal
    import subprocess
    import time
    import urllib.request

    port = free_port()
    log = open(project / "serve.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "pipeline.commands.serve", "sst2", "--port", str(port)],
        cwd=project, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"},
    )
    try:
        body = json.dumps({"dataframe_records": [{"text": "a gripping , funny film"}, {"text": "dull and slow"}]})
        deadline = time.time() + 180
        while True:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/invocations", body.encode(), {"Content-Type": "application/json"}
                )
                answer = json.loads(urllib.request.urlopen(request, timeout=30).read())
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, (project / "serve.log").read_text()[-3000:]
                time.sleep(2)
        predictions = answer["predictions"]
        assert [p["label"] in ("negative", "positive") for p in predictions] == [True, True]
        assert all(0.5 <= p["confidence"] <= 1.0 for p in predictions)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


def test_predict_command_from_task_run_id_and_file(project: Path, tmp_path: Path) -> None:
    local = run(project, sys.executable, "-m", "pipeline.commands.predict", "ccks_event", "--query", "收购", "腾讯收购了搜狗")
    answer = json.loads(local.stdout.strip().splitlines()[-1])
    assert answer["query"] == "收购" and set(answer["predicted"]) >= {"text", "start", "end"}
    run_id = json.loads((project / "reports" / "sst2" / "mlflow_run.json").read_text())["run_id"]
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"text": "a gripping film"}\n{"text": "a dull film"}\n', encoding="utf-8")
    logged = run(project, sys.executable, "-m", "pipeline.commands.predict", "--run-id", run_id, "--file", str(rows))
    lines = [json.loads(line) for line in logged.stdout.strip().splitlines() if line.startswith("{")]
    assert [line["text"] for line in lines] == ["a gripping film", "a dull film"]
    assert all(line["predicted"]["label"] in ("negative", "positive") for line in lines)


def test_predict_command_names_a_missing_field(project: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.commands.predict", "ccks_event", "腾讯收购了搜狗"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2
    assert "row 1: field 'query' is missing" in result.stderr and "Traceback" not in result.stderr


def test_repeated_experiment_is_trained_and_recorded_again(project: Path) -> None:
    before = len(mlflow_runs(project))
    # epochs=2 is what the first repro trained: without uncached outputs DVC's run cache would restore it
    result = run(project, "dvc", "exp", "run", "-S", "tasks.zh_sentiment.epochs=2")
    output = result.stdout + result.stderr
    assert "Running stage 'train@zh_sentiment'" in output, "DVC's run cache restored a training without a run"
    runs = mlflow_runs(project)
    assert len(runs) == before + 1
    newest = max(runs, key=lambda r: r.info.start_time)
    assert newest.data.tags["git_dirty"] == "true", "params.yaml differs from the commit under dvc exp run"

"""Model promotion: the decision on constructed dev predictions with a known answer, the command's registry
handling and one-line errors on a store with a stand-in version (both TensorFlow-free), and the whole path on
the real DAG (a tiny copy of the project): evaluate registers a tagged version, promote makes it first
champion, refuses the same model registered again, promotes a clearly better trained model, and
``predict --model-uri models:/<task>@champion`` answers with the champion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.commands.promote import EXIT, FIRST, PROMOTED, REFUSED, Decision, decide, main, promotion_tags, verdict
from tests.test_compare import accuracy, predictions_at, sentiment_records

TASK = "zh_sentiment"


# --- the decision (unit) ----------------------------------------------------------------------------------


@pytest.mark.unit
def test_a_clearly_better_candidate_is_promoted_and_its_figures_become_tags() -> None:
    records = sentiment_records(400)
    champion, candidate = predictions_at(records, 0.6, seed=1), predictions_at(records, 0.9, seed=2)
    decision = decide(records, champion, candidate, accuracy, "accuracy", n_resamples=300)
    c = decision.comparison
    assert decision.decision == PROMOTED and EXIT[PROMOTED] == 0
    assert c.delta == pytest.approx(0.3) and 0 < c.ci_low < c.delta < c.ci_high and c.p_value < 0.01
    tags = promotion_tags(decision, champion=2)
    assert tags["promotion.decision"] == "promoted" and tags["promotion.champion_version"] == "2"
    assert float(tags["promotion.delta"]) == pytest.approx(0.3) and float(tags["promotion.ci_low"]) > 0
    assert tags["promotion.metric"] == "accuracy" and tags["promotion.dev_examples"] == "400"
    assert {"promotion.ci_high", "promotion.p_value", "promotion.confidence"} <= set(tags)
    assert verdict("sst2", decision, 3, 2, dry_run=False).startswith(
        "promoted: version 3 of 'sst2' beats champion version 2 beyond noise (95% CI of the gain lies above 0)"
    )
    assert verdict("sst2", decision, 3, 2, dry_run=True).startswith("dry run: promoted: ")


@pytest.mark.unit
def test_an_identical_candidate_is_refused() -> None:
    records = sentiment_records(400)
    same = predictions_at(records, 0.8, seed=1)
    decision = decide(records, same, list(same), accuracy, "accuracy", n_resamples=300)
    c = decision.comparison
    assert decision.decision == REFUSED and EXIT[REFUSED] == 1
    assert c.delta == 0 and c.ci_low == 0 == c.ci_high, "an interval that only touches 0 does not lie above it"
    assert verdict("sst2", decision, 3, 2, dry_run=False).endswith("the champion stays")


@pytest.mark.unit
def test_an_insignificantly_better_or_a_worse_candidate_is_refused() -> None:
    records = sentiment_records(60)
    champion, candidate = predictions_at(records, 0.70, seed=1), predictions_at(records, 0.75, seed=2)
    slightly = decide(records, champion, candidate, accuracy, "accuracy", n_resamples=300)
    assert slightly.comparison.delta > 0 and slightly.comparison.ci_low < 0 < slightly.comparison.ci_high
    assert slightly.decision == REFUSED
    worse = decide(records, candidate, predictions_at(records, 0.4, seed=3), accuracy, "accuracy", n_resamples=300)
    assert worse.comparison.ci_high < 0 and worse.decision == REFUSED
    # a stricter level widens the interval: a gain significant at 80% is not at 99.9%
    records = sentiment_records(300)
    champion, candidate = predictions_at(records, 0.70, seed=1), predictions_at(records, 0.76, seed=2)
    loose = decide(records, champion, candidate, accuracy, "accuracy", confidence=0.8, n_resamples=300)
    strict = decide(records, champion, candidate, accuracy, "accuracy", confidence=0.999, n_resamples=300)
    assert loose.decision == PROMOTED and strict.decision == REFUSED
    assert promotion_tags(Decision(FIRST), None) == {"promotion.decision": "first champion"}


# --- the command on a registry with stand-in versions (unit: no model is loaded) -----------------------------


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An empty sqlite store in ``tmp_path`` as the tracking store; MLflow's global URI reset afterwards."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for name, value in (("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0"), ("MLFLOW_HTTP_REQUEST_TIMEOUT", "10"),
                        ("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")):  # fmt: skip
        monkeypatch.setenv(name, value)  # what main() sets, set here so that it is undone
    yield uri
    mlflow.set_tracking_uri(None)


def stand_in_version(uri: str, task: str, folder: Path) -> int:
    """A registered version of ``task`` whose source is an empty folder (enough for aliases and tags)."""
    import mlflow

    folder.mkdir(parents=True, exist_ok=True)
    client = mlflow.MlflowClient(uri)
    if not client.search_registered_models(f"name = '{task}'"):
        client.create_registered_model(task)
    return int(client.create_model_version(task, folder.as_uri()).version)


def promote_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return status, out, err


def one_error(err: str) -> str:
    errors = [line for line in err.splitlines() if line.startswith("error: ")]  # MLflow may log INFO lines first
    assert len(errors) == 1 and err.endswith(errors[0] + "\n"), err
    return errors[0]


@pytest.mark.unit
def test_the_first_version_becomes_champion_and_is_not_compared_with_itself(
    store: str, tmp_path: Path, capsys
) -> None:
    import mlflow

    version = stand_in_version(store, "sst2", tmp_path / "model")
    client = mlflow.MlflowClient(store)
    status, out, _ = promote_cli(capsys, "sst2", "--dry-run")
    assert status == 0
    assert out == "dry run: first champion: version 1 of 'sst2' would become the champion (there was none)\n"
    assert client.get_registered_model("sst2").aliases == {}
    assert "promotion.decision" not in client.get_model_version("sst2", "1").tags

    status, out, _ = promote_cli(capsys, "sst2")
    assert status == 0 and out == "first champion: version 1 of 'sst2' is now the champion (there was none)\n"
    assert client.get_registered_model("sst2").aliases == {"champion": version}
    assert client.get_model_version("sst2", "1").tags == {"promotion.decision": "first champion"}

    status, out, _ = promote_cli(capsys, "sst2")
    assert status == 1 and out.startswith("refused: version 1 of 'sst2' is already the champion: nothing to compare")
    assert client.get_registered_model("sst2").aliases == {"champion": version}


@pytest.mark.unit
def test_promote_and_predict_user_errors_are_one_line_with_exit_status_2(store: str, tmp_path: Path, capsys) -> None:
    from pipeline.commands import predict
    from pipeline.config.loading import load_params

    no_model = f"error: no registered model 'sst2' in {store}; hint: run dvc repro evaluate@sst2"
    status, _, err = promote_cli(capsys, "sst3")
    assert status == 2
    assert one_error(err) == f"error: no task 'sst3' in params; defined tasks: {', '.join(load_params().tasks)}"
    # a store that was never created is not created by asking it for a model
    status, _, err = promote_cli(capsys, "sst2")
    assert status == 2 and one_error(err) == no_model and not (tmp_path / "mlflow.db").exists()
    stand_in_version(store, "mrpc", tmp_path / "model")
    status, _, err = promote_cli(capsys, "sst2")
    assert status == 2 and one_error(err) == no_model
    status, _, err = promote_cli(capsys, "mrpc", "--candidate", "7")
    assert status == 2 and one_error(err) == f"error: no version 7 of registered model 'mrpc' in {store} (versions: 1)"

    # no champion yet: predict names the alias and how to set it
    with pytest.raises(SystemExit) as exit_:
        predict.main(["--model-uri", "models:/mrpc@champion", "--text-b", "He left.", "He went away."])
    assert exit_.value.code == 2
    line = one_error(capsys.readouterr().err)
    assert line.startswith(f"error: no MLflow model models:/mrpc@champion in {store} (") and line.endswith(
        "; hint: `python -m pipeline.commands.promote mrpc` makes a registered version the champion"
    ), line


# --- the real DAG (e2e) -------------------------------------------------------------------------------------


def _cli(project: Path, *args: str) -> subprocess.CompletedProcess:
    """A command in the project as :func:`tests.tiny_project.run` runs it, whatever its exit status (promote
    exits 1 when it refuses)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(args, cwd=project, env=env, capture_output=True, text=True, timeout=600)


def _update_task(project: Path, **values) -> None:
    from ruamel.yaml import YAML

    yaml = YAML()
    params = yaml.load(project / "params.yaml")
    params["tasks"][TASK].update(values)
    yaml.dump(params, project / "params.yaml")


@pytest.mark.e2e
def test_evaluate_registers_and_promote_moves_the_champion_only_for_a_better_model(
    tmp_path: Path, shared_data: Path, zh_vocab: Path
) -> None:
    import mlflow

    from tests.tiny_project import build_project, run

    project = build_project(tmp_path, shared_data, zh_vocab, {TASK: "text_classification"})
    # version 1: a random tiny BERT barely trained (48 examples, 2 epochs at 1e-4): about a constant guess
    _update_task(project, max_dev_samples=200)
    repro = run(project, "dvc", "repro", f"evaluate@{TASK}")
    assert f"[evaluate] {TASK}: registered as model '{TASK}' version 1 (the first: now its champion)" in repro.stdout
    said = repro.stdout + repro.stderr
    assert "Successfully registered" not in said and "Created version" not in said, "MLflow's own lines are silenced"

    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    model = json.loads((project / "reports" / TASK / "model.json").read_text())
    metrics = json.loads((project / "reports" / TASK / "metrics.json").read_text())
    run_id = json.loads((project / "reports" / TASK / "mlflow_run.json").read_text())["run_id"]
    commit = run(project, "git", "rev-parse", "HEAD").stdout.strip()
    assert model["registered_version"] == 1
    first = client.get_model_version(TASK, "1")
    assert first.run_id == run_id and first.tags["run_id"] == run_id and first.tags["git_commit"] == commit
    assert float(first.tags["test.accuracy"]) == pytest.approx(metrics["test"]["accuracy"])
    assert float(first.tags["dev.accuracy"]) == pytest.approx(metrics["dev"]["accuracy"])
    assert "seed_group.parent_run_id" not in first.tags, "one seed: no group"

    assert first.tags["promotion.decision"] == "first champion", "the first version is the champion at once"
    assert client.get_registered_model(TASK).aliases == {"champion": 1}
    promote = [sys.executable, "-m", "pipeline.commands.promote", TASK]
    shown = _cli(project, *promote)
    assert shown.returncode == 1 and "version 1 of 'zh_sentiment' is already the champion" in shown.stdout, shown.stdout

    # the same run's model registered again: identical dev predictions, refused
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    try:
        assert int(mlflow.register_model(model["model_uri"], TASK).version) == 2
    finally:
        mlflow.set_tracking_uri(None)
    shown = _cli(project, *promote)
    print(shown.stdout)
    assert shown.returncode == 1, shown.stdout + shown.stderr
    assert "delta = candidate - champion = +0.0000 accuracy" in shown.stdout and "refused: version 2" in shown.stdout
    assert client.get_registered_model(TASK).aliases == {"champion": 1}
    tags = client.get_model_version(TASK, "2").tags
    assert tags["promotion.decision"] == "refused" and tags["promotion.champion_version"] == "1"
    assert float(tags["promotion.delta"]) == 0 and tags["promotion.dev_examples"] == "200"

    # version 3: trained for real (1500 examples, 3 epochs at 1e-3), clearly better on the same 200 dev examples
    _update_task(project, max_train_samples=1500, epochs=3, learning_rate=1e-3)
    repro = run(project, "dvc", "repro", f"evaluate@{TASK}")
    assert f"registered as model '{TASK}' version 3" in repro.stdout
    shown = _cli(project, *promote, "--dry-run")
    assert shown.returncode == 0 and "dry run: promoted: version 3" in shown.stdout, shown.stdout + shown.stderr
    assert client.get_registered_model(TASK).aliases == {"champion": 1}
    shown = _cli(project, *promote)
    print(shown.stdout)
    assert shown.returncode == 0 and "promoted: version 3 of 'zh_sentiment' beats champion version 1" in shown.stdout
    assert client.get_registered_model(TASK).aliases == {"champion": 3}
    tags = client.get_model_version(TASK, "3").tags
    assert tags["promotion.decision"] == "promoted" and float(tags["promotion.ci_low"]) > 0
    assert float(tags["dev.accuracy"]) > float(first.tags["dev.accuracy"])

    answer = run(project, sys.executable, "-m", "pipeline.commands.predict", "--model-uri",
                 f"models:/{TASK}@champion", "这家酒店很好，服务周到").stdout  # fmt: skip
    assert json.loads(answer.splitlines()[-1])["predicted"]["label"] in ("negative", "positive"), answer

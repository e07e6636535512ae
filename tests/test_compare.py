"""The compare command: paired bootstrap and randomization on constructed predictions with a known answer,
the sides it reads (files, the workspace, MLflow runs, groups), its output and its one-line errors."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Sequence

import pytest

from pipeline.commands.compare import main, verdict
from pipeline.config.paths import DEFAULT_PARAMS
from pipeline.kinds.factory import new_kind
from pipeline.significance.bootstrap import (
    BOOTSTRAP_TEST,
    PERMUTATION_TEST,
    bootstrap_p_value,
    paired_difference,
    planned_steps,
)

pytestmark = pytest.mark.unit

LABELS = ["negative", "positive"]
NO_DIFFERENCE = "no significant difference at 95% (CI includes 0)"
B_BETTER = "B is better than A beyond noise (95% CI excludes 0)"


@pytest.fixture(autouse=True)
def quiet_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """No tracking URI from the caller's environment; what main() would set, set so that it is undone."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name, value in (("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0"), ("MLFLOW_HTTP_REQUEST_TIMEOUT", "10"),
                        ("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")):  # fmt: skip
        monkeypatch.setenv(name, value)


# --- constructed test sets ------------------------------------------------------------------------------


def sentiment_records(n: int, seed: int = 0) -> list[dict]:
    """sst2-like gold records."""
    rng = random.Random(seed)
    return [{"id": f"test-{i}", "label": rng.choice(LABELS), "text": f"review {i}"} for i in range(n)]


def predictions_at(records: Sequence[dict], accuracy: float, seed: int) -> list[dict]:
    """Predictions right on exactly ``round(accuracy * n)`` records, chosen at random."""
    right = set(random.Random(seed).sample(range(len(records)), round(accuracy * len(records))))
    return [
        {"label": r["label"] if i in right else LABELS[1 - LABELS.index(r["label"])], "confidence": 0.9}
        for i, r in enumerate(records)
    ]


def accuracy(records: Sequence[dict], predictions: Sequence[dict]) -> float:
    """A fast scorer for the statistics alone (the kinds' scores are exercised below)."""
    return sum(r["label"] == p["label"] for r, p in zip(records, predictions)) / len(records)


def write_predictions(path: Path, records: Sequence[dict], predictions: Sequence[dict], labels: bool = False) -> Path:
    """A predictions.jsonl as the evaluate stage writes it (with confusion.json beside it when ``labels``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({**r, "predicted": p}) for r, p in zip(records, predictions)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if labels:
        (path.parent / "confusion.json").write_text(json.dumps({"labels": LABELS, "matrix": []}), encoding="utf-8")
    return path


# --- the statistics ---------------------------------------------------------------------------------------


def test_identical_systems_show_no_difference() -> None:
    records = sentiment_records(400)
    same = predictions_at(records, 0.75, seed=1)
    c = paired_difference(records, [same], [list(same)], accuracy, "accuracy", n_resamples=300)
    assert c.a == c.b == 0.75 and c.delta == 0
    assert c.ci_low <= 0 <= c.ci_high and c.p_value > 0.5
    assert c.p_test == PERMUTATION_TEST and c.better is None and verdict(c) == NO_DIFFERENCE


def test_a_clearly_better_system_is_found_on_the_right_side() -> None:
    records = sentiment_records(400)
    worse, better = predictions_at(records, 0.6, seed=1), predictions_at(records, 0.9, seed=2)
    c = paired_difference(records, [worse], [better], accuracy, "accuracy", n_resamples=300)
    assert c.delta == pytest.approx(0.3) and 0 < c.ci_low < 0.3 < c.ci_high
    assert c.p_value < 0.01 and c.better == "B" and verdict(c) == B_BETTER
    flipped = paired_difference(records, [better], [worse], accuracy, "accuracy", n_resamples=300)
    assert flipped.ci_high < 0 and flipped.better == "A"
    assert verdict(flipped) == "A is better than B beyond noise (95% CI excludes 0)"


def test_a_small_gap_on_few_examples_is_noise_and_the_seed_fixes_the_answer() -> None:
    records = sentiment_records(60)
    a, b = predictions_at(records, 0.70, seed=1), predictions_at(records, 0.75, seed=2)
    first = paired_difference(records, [a], [b], accuracy, "accuracy", n_resamples=200, seed=3)
    assert first.ci_low < 0 < first.ci_high and first.p_value > 0.05 and first.better is None
    assert paired_difference(records, [a], [b], accuracy, "accuracy", n_resamples=200, seed=3) == first
    assert paired_difference(records, [a], [b], accuracy, "accuracy", n_resamples=200, seed=4) != first


def entity(text: str, word: str, type_: str) -> dict:
    start = text.index(word)
    return {"start": start, "end": start + len(word), "type": type_, "text": word}


def test_entity_f1_of_a_clearly_better_tagger_excludes_zero() -> None:
    kind = new_kind("sequence_labeling")
    records = []
    for i in range(300):
        text = f"Person{i} visited City{i} ."
        records.append({"id": f"test-{i}", "text": text,
                        "entities": [entity(text, f"Person{i}", "PER"), entity(text, f"City{i}", "LOC")]})  # fmt: skip
    persons_only = [{"entities": r["entities"][:1]} for r in records]  # P 1, R 0.5: F1 2/3
    nearly_all = [{"entities": r["entities"][: 1 if i % 10 == 0 else 2]} for i, r in enumerate(records)]  # R 0.95

    def f1(chosen: Sequence[dict], predictions: Sequence[dict]) -> float:
        return kind.score(chosen, predictions, [])["f1"]

    c = paired_difference(records, [persons_only], [nearly_all], f1, "f1", n_resamples=300)
    assert c.a == pytest.approx(2 / 3) and c.b == pytest.approx(2 * 0.95 / 1.95)
    assert 0 < c.ci_low < c.delta < c.ci_high and c.better == "B" and c.p_value < 0.01


def test_groups_of_three_seeds_are_paired_by_position() -> None:
    records = sentiment_records(200)
    group_a = [predictions_at(records, 0.70, seed=s) for s in (1, 2, 3)]
    group_b = [predictions_at(records, 0.80, seed=s) for s in (4, 5, 6)]
    steps: list[int] = []
    c = paired_difference(records, group_a, group_b, accuracy, "accuracy", n_resamples=200,
                          on_step=lambda: steps.append(1))  # fmt: skip
    assert (c.runs_a, c.runs_b) == (3, 3) and c.a_runs == (0.7, 0.7, 0.7) and c.b == pytest.approx(0.8)
    assert c.p_test == PERMUTATION_TEST and c.ci_low > 0 and c.p_value < 0.05
    assert len(steps) == planned_steps(200, 3, 3, 200)


def test_groups_of_different_sizes_take_the_bootstrap_p_value() -> None:
    records = sentiment_records(200)
    group_a = [predictions_at(records, 0.70, seed=s) for s in (1, 2)]
    group_b = [predictions_at(records, 0.72, seed=s) for s in (4, 5, 6)]
    c = paired_difference(records, group_a, group_b, accuracy, "accuracy", n_resamples=200)
    assert (c.runs_a, c.runs_b) == (2, 3) and c.p_test == BOOTSTRAP_TEST
    assert c.delta == pytest.approx(0.02) and c.ci_low < 0 < c.ci_high and 0.05 < c.p_value <= 1


def test_the_bootstrap_p_value_is_twice_the_smaller_tail_and_never_zero() -> None:
    assert bootstrap_p_value([0.1] * 99) == pytest.approx(2 / 100)
    assert bootstrap_p_value([-0.2, -0.1, 0.1, 0.2]) == 1.0
    assert bootstrap_p_value([0.0] * 10) == 1.0
    assert bootstrap_p_value([-0.1] * 9 + [0.1]) == pytest.approx(2 * 2 / 11)


def test_mismatched_runs_are_refused() -> None:
    records = sentiment_records(10)
    with pytest.raises(ValueError, match="one prediction per test example"):
        paired_difference(records, [predictions_at(records, 0.5, 1)[:9]], [records], accuracy, "accuracy")
    with pytest.raises(ValueError, match="no test examples"):
        paired_difference([], [[]], [[]], accuracy, "accuracy")


# --- the command --------------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with the real params.yaml (task sst2) and nothing evaluated."""
    (tmp_path / "params.yaml").write_text(DEFAULT_PARAMS.read_text(encoding="utf-8"), encoding="utf-8")
    return tmp_path


def run_main(project: Path, *args: str) -> int:
    return main(["--params", str(project / "params.yaml"), "--resamples", "100", *args])


def test_the_command_compares_a_file_with_the_workspace_and_writes_markdown(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = sentiment_records(300)
    old = write_predictions(project / "old" / "predictions.jsonl", records, predictions_at(records, 0.6, 1))
    write_predictions(project / "reports/sst2/evaluation/predictions.jsonl", records,
                      predictions_at(records, 0.9, 2), labels=True)  # fmt: skip

    assert run_main(project, "--task", "sst2", str(old), "sst2") == 0
    out, err = capsys.readouterr()
    assert "sst2: accuracy on 300 test examples" in out and "Traceback" not in err
    assert "delta = B - A = +0.3000 accuracy" in out and out.count(B_BETTER) == 1
    assert any(line.split()[:5] == ["B", "sst2", "in", "the", "workspace"] for line in out.splitlines())
    page = project / "reports" / "compare" / "sst2-old-vs-workspace.md"
    assert page.is_file() and f"wrote {page}" in out
    text = page.read_text(encoding="utf-8")
    assert "| B | sst2 in the workspace | 1 | 0.9000 |" in text and f"**{B_BETTER}**" in text
    assert "p = " in text and PERMUTATION_TEST in text


def test_the_command_compares_groups_and_names_the_bootstrap_p_value(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = sentiment_records(100)
    files = [write_predictions(project / f"seed{s}" / "predictions.jsonl", records, predictions_at(records, acc, s))
             for s, acc in enumerate((0.6, 0.62, 0.9, 0.88, 0.92))]  # fmt: skip
    out_file = project / "groups.md"
    side_a, side_b = ",".join(map(str, files[:2])), ",".join(map(str, files[2:]))
    assert run_main(project, "--task", "sst2", "--out", str(out_file), side_a, side_b) == 0
    out = capsys.readouterr().out
    assert "0.6100 mean (0.6000, 0.6200)" in out and "0.9000 mean (0.9000, 0.8800, 0.9200)" in out
    assert f"({BOOTSTRAP_TEST}, 100 resamples)" in out and B_BETTER in out
    assert BOOTSTRAP_TEST in out_file.read_text(encoding="utf-8")


def test_different_test_examples_are_one_line_naming_both_counts(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = sentiment_records(400)
    a = write_predictions(project / "a.jsonl", records, predictions_at(records, 0.8, 1))
    b = write_predictions(project / "b.jsonl", records[:300], predictions_at(records[:300], 0.8, 2))
    assert run_main(project, "--task", "sst2", str(a), str(b)) == 2
    assert capsys.readouterr().err == (
        "error: B has 300 test examples, A 400: compare needs both evaluated on the same test examples "
        "(set the same max_test_samples)\n"
    )
    shuffled = write_predictions(project / "c.jsonl", records[::-1], predictions_at(records, 0.8, 3))
    assert run_main(project, "--task", "sst2", str(a), str(shuffled)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "B's test example 1 is 'test-399', A's 'test-0'" in err and "same order" in err
    relabelled = [{**r, "label": "positive"} if i < 7 else r for i, r in enumerate(records)]
    other_gold = write_predictions(project / "d.jsonl", relabelled, predictions_at(records, 0.8, 4))
    assert run_main(project, "--task", "sst2", "--out", str(project / "d.md"), str(a), str(other_gold)) == 0
    changed = sum(r["label"] != "positive" for r in records[:7])
    assert f"warning: {changed} test examples carry other gold annotations" in capsys.readouterr().err


def test_an_unknown_metric_lists_the_tasks_metrics(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = sentiment_records(50)
    a = write_predictions(project / "a.jsonl", records, predictions_at(records, 0.8, 1))
    assert run_main(project, "--task", "sst2", "--metric", "f2", str(a), str(a)) == 2
    assert capsys.readouterr().err == (
        "error: no metric 'f2' for task sst2 (text_classification); its metrics: accuracy, macro_f1\n"
    )
    assert run_main(project, "--task", "sst2", "--metric", "macro_f1", "--out", str(project / "m.md"),
                    str(a), str(a)) == 0
    assert "| side | what | runs | macro_f1 |" in (project / "m.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "sides, expected",
    [
        (["sst3", "sst2"], ["no task 'sst3' in", "did you mean 'sst2'?", "nor is 'sst3' a predictions file"]),
        (["sst3@HEAD", "sst2"], ["no task 'sst3' in"]),
        (["nowhere/predictions.jsonl", "sst2"], ["nowhere/predictions.jsonl: no such predictions file; hint:"]),
        (["sst2", "sst2"], ["task 'sst2' has no predictions in the workspace; hint: run `dvc repro evaluate@sst2`"]),
        (["a.jsonl", "a.jsonl"], ["a.jsonl is a predictions file: name its task with --task"]),
        (["0123456789abcdef0123456789abcdef", "sst2"],
         ["no MLflow run '0123456789abcdef0123456789abcdef' in sqlite:///", "that store does not exist"]),
        (["bad.jsonl", "a.jsonl"], ["bad.jsonl:2: expected a JSON object holding its prediction under 'predicted'"]),
    ],
)
def test_a_bad_side_is_one_line_and_exit_status_2(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sides: list[str],
    expected: list[str],
) -> None:
    monkeypatch.chdir(project)
    records = sentiment_records(5)
    write_predictions(project / "a.jsonl", records, predictions_at(records, 0.8, 1))
    (project / "bad.jsonl").write_text(json.dumps({**records[0], "predicted": {}}) + "\n[1, 2]\n", encoding="utf-8")
    assert main(["--params", str(project / "params.yaml"), *sides]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err and out == ""
    for fragment in expected:
        assert fragment in err
    assert not (project / "mlflow.db").exists()  # a missing store is not created


def test_an_unknown_revision_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sst2@no-such-revision-xyz", "sst2", "--no-tags"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: sst2@no-such-revision-xyz: no git revision or DVC experiment")
    assert err.count("\n") == 1


# --- MLflow runs as sides ------------------------------------------------------------------------------------


def logged_runs(project: Path, accuracies: Sequence[float]) -> list[str]:
    """sst2 runs in the project's local store, each with its evaluation artifacts, as the pipeline logs them."""
    from mlflow import MlflowClient

    from pipeline.config.loading import load_params

    params = load_params(project / "params.yaml")
    client = MlflowClient(params.tracking_uri(project))
    artifacts = (project / "mlartifacts").as_uri()
    experiment = client.create_experiment(params.tracking.experiment, artifact_location=artifacts)
    records, ids = sentiment_records(200), []
    for seed, value in enumerate(accuracies):
        run = client.create_run(experiment, run_name="sst2", tags={"task": "sst2"})
        folder = project / "logged" / str(seed)
        write_predictions(folder / "predictions.jsonl", records, predictions_at(records, value, seed), labels=True)
        client.log_artifacts(run.info.run_id, str(folder), "evaluation")
        client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    return ids


def test_mlflow_runs_are_compared_and_tagged(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow import MlflowClient

    first, second = logged_runs(project, [0.6, 0.9])
    out_file = project / "runs.md"
    assert run_main(project, "--out", str(out_file), first, second) == 0
    out = capsys.readouterr().out
    assert f"MLflow run {first} (sst2)" in out and B_BETTER in out
    assert f"tagged MLflow run {first[:8]} compare.vs.{second[:8]}, {second[:8]} compare.vs.{first[:8]}" in out
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    tag = client.get_run(first).data.tags[f"compare.vs.{second[:8]}"]
    assert tag.startswith("accuracy B-A +0.3000 [+0.") and "(200 examples, 100 resamples" in tag
    assert client.get_run(second).data.tags[f"compare.vs.{first[:8]}"] == tag

    unknown = "f" * 32
    assert run_main(project, unknown, second) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: no MLflow run '{unknown}' in sqlite:///") and err.count("\n") == 1

    def unreachable(*args: object, **kwargs: object) -> None:
        raise ConnectionError("store went away")

    monkeypatch.setattr("mlflow.MlflowClient.set_tag", unreachable)
    assert run_main(project, "--out", str(out_file), first, second) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: could not tag the MLflow runs in sqlite:///") and err.count("\n") == 1


def test_a_password_in_the_tracking_uri_is_never_shown(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://alice:s3cret-pw@127.0.0.1:9/")
    assert run_main(project, "0123456789abcdef0123456789abcdef", "sst2") == 2
    out, err = capsys.readouterr()
    assert "s3cret-pw" not in out + err and "alice:***@127.0.0.1:9" in err and err.count("\n") == 1

"""Sweeps over many workers: the ``sweeps:`` checks, and the coordination of workers on a real Optuna study
(grid points taken once each, a TPE budget met, a dead worker's trial retried by another, failing trials
stopping a worker). The trial itself is a stand-in function here; tests/test_sweeps_distributed_e2e.py runs
real DVC experiments against the team server's PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipeline.commands import sweep as sweeps
from pipeline.config.errors import ConfigError
from pipeline.config.loading import load_params
from pipeline.config.sweeps import SweepConfig
from tests.helpers import edited

pytestmark = pytest.mark.unit

GRID = SweepConfig.model_validate({"task": "mrpc", "sampler": "grid", "trials": 10, "space": {
    "tasks.mrpc.learning_rate": {"choices": [2e-5, 5e-5]}, "tasks.mrpc.warmup_proportion": {"choices": [0.06, 0.1]}}})
TPE = SweepConfig.model_validate({"task": "mrpc", "trials": 5, "space": {
    "tasks.mrpc.learning_rate": {"low": 1e-5, "high": 1e-4, "log": True}}})


def with_sweep(tmp_path: Path, body: str) -> Path:
    return edited(tmp_path, "sweeps: {}\n", "sweeps:\n  s:\n" + "".join(f"    {line}\n" for line in body.splitlines()))


def test_a_sweep_is_checked_one_line_per_problem(tmp_path: Path) -> None:
    good = with_sweep(tmp_path, "task: mrpc\ntrials: 4\nspace:\n  tasks.mrpc.learning_rate: {low: 1.0e-5, high: 1.0e-4, log: true}")
    assert load_params(good).sweeps["s"].space["tasks.mrpc.learning_rate"].log
    cases = {
        "task: mrcp\ntrials: 4\nspace: {defaults.dropout: {choices: [0.1]}}": "sweeps.s.task: unknown task 'mrcp'",
        "task: mrpc\ntrials: 4\nspace: {tasks.mrpc.kind: {choices: [x]}}": "sweeps.s.space.tasks.mrpc.kind: not a key",
        "task: mrpc\ntrials: 4\nspace: {tasks.sst2.dropout: {choices: [0.1]}}": "varies task 'sst2', but the sweep scores 'mrpc'",
        "task: mrpc\nsampler: grid\ntrials: 4\nspace: {defaults.dropout: {low: 0.1, high: 0.2}}": "a grid needs a list",
        "task: mrpc\ntrials: 4\nspace: {defaults.dropout: {low: 0.3, high: 0.2}}": "low must be below high",
    }
    for body, words in cases.items():
        with pytest.raises(ConfigError) as error:
            load_params(with_sweep(tmp_path, body))
        assert words in str(error.value) and str(error.value).count("\n") == 0, str(error.value)


def study(tmp_path: Path, name: str, config: SweepConfig, heartbeat: int = 60, grace: int = 120):
    storage = sweeps.open_storage(f"sqlite:///{tmp_path / 'sweeps.db'}", heartbeat, grace)
    return sweeps.open_study(name, config, storage, on_create=lambda: "parent-run")


def test_a_grid_is_queued_once_and_each_point_runs_once(tmp_path: Path) -> None:
    seen: list[tuple] = []

    def runner(number: int, values: dict) -> float:
        seen.append(tuple(sorted(values.items())))
        return values["tasks.mrpc.learning_rate"] * 1e4 + values["tasks.mrpc.warmup_proportion"]

    first = study(tmp_path, "grid", GRID)
    second = study(tmp_path, "grid", GRID)  # a second worker joins: the grid is not queued again
    assert second.user_attrs[sweeps.PARENT] == "parent-run" and sweeps.counts(second) == {"WAITING": 4}
    assert sweeps.work("grid", GRID, first, runner, poll=0.1) == 4
    assert sweeps.work("grid", GRID, second, runner, poll=0.1) == 0, "nothing is left for a late worker"
    assert sorted(seen) == sorted(tuple(sorted(point.items())) for point in GRID.grid())
    assert sweeps.counts(first) == {"COMPLETE": 4}
    assert first.best_params == {"tasks.mrpc.learning_rate": 5e-5, "tasks.mrpc.warmup_proportion": 0.1}
    # workers taking points at the same moment need row locks: PostgreSQL (tests/test_sweeps_distributed_e2e.py)


def test_a_tpe_sweep_completes_its_budget_and_refuses_changed_params(tmp_path: Path) -> None:
    opened = study(tmp_path, "tpe", TPE)
    assert sweeps.work("tpe", TPE, opened, lambda number, values: -abs(values["tasks.mrpc.learning_rate"] - 3e-5),
                       poll=0.1) == 5
    assert sweeps.counts(opened) == {"COMPLETE": 5}
    changed = TPE.model_copy(update={"trials": 9})
    with pytest.raises(ConfigError, match="params differ from those the study was created with"):
        study(tmp_path, "tpe", changed)


def test_a_dead_workers_trial_is_failed_and_run_again_by_another(tmp_path: Path) -> None:
    opened = study(tmp_path, "retry", GRID, heartbeat=1, grace=1)
    storage = opened._storage
    dead = opened.ask()  # a worker took the first grid point, sent one heartbeat and died
    storage.record_heartbeat(dead._trial_id)
    time.sleep(2.5)
    runs: list[int] = []
    sweeps.work("retry", GRID, opened, lambda number, values: runs.append(number) or 1.0, poll=0.1)
    trials = opened.get_trials(deepcopy=False)
    assert trials[dead.number].state.name == "FAIL"
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retried) == 1 and retried[0].state.name == "COMPLETE" and retried[0].params == GRID.grid()[0]
    assert sweeps.counts(opened) == {"FAIL": 1, "COMPLETE": 4} and len(runs) == 4


def test_a_worker_stops_after_repeated_failures(tmp_path: Path) -> None:
    opened = study(tmp_path, "broken", TPE)

    def failing(number: int, values: dict) -> float:
        raise sweeps.TrialFailed(f"trial {number}: dvc exp run exited 1")

    assert sweeps.work("broken", TPE, opened, failing, poll=0.1) == 0
    assert sweeps.counts(opened) == {"FAIL": sweeps.MAX_FAILURES}

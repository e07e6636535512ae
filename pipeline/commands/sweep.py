"""Sweeps over many machines: workers pull the trials of one Optuna study and run each as a DVC experiment.

    python -m pipeline.commands.sweep worker <name>    # on every machine (a clone of the project), any number
    python -m pipeline.commands.sweep status <name>    # the trials so far and the best configuration

``sweeps.<name>`` in params.yaml (:mod:`pipeline.config.sweeps`) names the task, the sampler, the budget
and the space. The study lives in an Optuna RDB storage: ``$PIPELINE_SWEEP_STORAGE`` (a PostgreSQL URL such
as the team server's ``sweeps`` database; the password stays in the environment) or ``sweeps.db`` beside
params.yaml on one machine. The first worker creates the study, queues every grid point (a grid sweep)
and opens the sweep's MLflow parent run; the others wait for it. Each trial is
``dvc exp run --temp -n <name>-trial-<n> evaluate@<task> -S sweep=<name> -S ++<key>=<value> ...``: the
task's chain in a temporary copy, its runs tagged ``sweep`` as any sweep's (``make summary`` ranks them with
their intervals). The objective is the task's mean dev score over its seeds, read from that run; the trial
itself is an MLflow run under the sweep's parent. A worker's trial sends Optuna heartbeats; a worker killed
mid-trial leaves its trial RUNNING without heartbeats, and the next worker to look marks it failed and
queues it again (at most :data:`MAX_RETRIES` times), so another worker runs it. Queued trials are taken
atomically by the storage: no point runs twice. ``dvc exp push origin`` shares the experiments' results.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from pipeline.config.errors import ConfigError
from pipeline.config.loading import load_params
from pipeline.config.paths import DEFAULT_PARAMS, PROJECT_ROOT
from pipeline.config.schema import Params
from pipeline.config.sweeps import Choices, SweepConfig
from pipeline.runtime.log_setup import configure_logging

logger = logging.getLogger(__name__)

STORAGE_ENV = "PIPELINE_SWEEP_STORAGE"
#: study user attributes: set last by the creator (the others wait for it), the space it was created with,
#: the sweep's MLflow parent run
READY, SPACE, PARENT = "ready", "space", "mlflow_parent_run"
#: user attribute of a queued grid point (a retry of one keeps it)
GRID_POINT = "grid_point"
MAX_RETRIES = 2
#: tries at opening the storage: workers started together on a new database race to create its tables
STORAGE_ATTEMPTS = 5
#: a worker stops after this many trials of its own failed (a broken configuration, not a dead worker)
MAX_FAILURES = 3

Runner = Callable[[int, dict[str, Any]], float]


class TrialFailed(RuntimeError):
    """A trial's experiment failed; the trial is recorded FAIL and the worker goes on."""


def storage_url(root: Path = PROJECT_ROOT) -> str:
    """``$PIPELINE_SWEEP_STORAGE``, else a SQLite file beside params.yaml (of the project owning ``root``)."""
    from pipeline.config.workspace import owning_project

    return os.environ.get(STORAGE_ENV) or f"sqlite:///{owning_project(root) / 'sweeps.db'}"


def open_storage(url: str, heartbeat: int, grace: int) -> Any:
    """Optuna's RDB storage with heartbeats; a trial without one for ``grace`` seconds is retried."""
    import warnings

    import optuna

    from sqlalchemy.exc import IntegrityError, ProgrammingError

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeats are
    for attempt in range(STORAGE_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=heartbeat, grace_period=grace,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES),
            )
        except (IntegrityError, ProgrammingError):  # another worker is creating the tables at this moment
            if attempt == STORAGE_ATTEMPTS - 1:
                raise
            time.sleep(1 + attempt)
    raise AssertionError("unreachable")


def suggest(trial: Any, sweep: SweepConfig) -> dict[str, Any]:
    """The trial's value of every key (a queued grid point's own values, or sampled)."""
    return {key: trial.suggest_categorical(key, dim.choices) if isinstance(dim, Choices)
            else trial.suggest_float(key, dim.low, dim.high, log=dim.log) for key, dim in sorted(sweep.space.items())}


def space_key(sweep: SweepConfig) -> str:
    """What a study was created for; a worker with other params for the same name refuses to join it."""
    return json.dumps(sweep.model_dump(), sort_keys=True)


def open_study(name: str, sweep: SweepConfig, storage: Any, on_create: Callable[[], str], wait: float = 300) -> Any:
    """Create the study (queue the grid, ``on_create()`` makes the MLflow parent run) or join the one there."""
    import optuna

    sampler = optuna.samplers.TPESampler(seed=sweep.seed) if sweep.sampler == "tpe" else optuna.samplers.RandomSampler(seed=sweep.seed)
    try:
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize", sampler=sampler)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
        deadline = time.monotonic() + wait
        while not study.user_attrs.get(READY):
            if time.monotonic() > deadline:
                raise ConfigError(f"sweep {name!r}: the study exists but its first worker never finished creating it")
            time.sleep(1)
        if study.user_attrs.get(SPACE) != space_key(sweep):
            raise ConfigError(f"sweeps.{name}: params differ from those the study was created with; "
                              "hint: give the changed sweep a new name")
        return study
    if sweep.sampler == "grid":
        for point in sweep.grid()[: sweep.trials]:
            study.enqueue_trial(point, user_attrs={GRID_POINT: True})
    study.set_user_attr(SPACE, space_key(sweep))
    study.set_user_attr(PARENT, on_create())
    study.set_user_attr(READY, True)
    return study


def counts(study: Any) -> dict[str, int]:
    """Trials per state name (COMPLETE, RUNNING, WAITING, FAIL, PRUNED)."""
    found: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        found[trial.state.name] = found.get(trial.state.name, 0) + 1
    return found


def finished(sweep: SweepConfig, study: Any) -> bool:
    """No trial left to run: the budget is complete (TPE) or nothing is queued or running (grid)."""
    state = counts(study)
    if sweep.sampler == "grid":
        return not state.get("WAITING") and not state.get("RUNNING")
    return state.get("COMPLETE", 0) >= sweep.trials


def objective_of(sweep: SweepConfig, runner: Runner) -> Callable[[Any], float]:
    """Optuna's objective: the trial's values (a queued grid point's, or sampled), then ``runner``."""
    import optuna

    def objective(trial: Any) -> float:
        if sweep.sampler == "grid" and not trial.user_attrs.get(GRID_POINT):
            raise optuna.TrialPruned("no grid point is left to take")  # another worker took the last one
        return runner(trial.number, suggest(trial, sweep))

    return objective


def work(name: str, sweep: SweepConfig, study: Any, runner: Runner, poll: float = 5.0) -> int:
    """Run trials until the sweep is finished (or :data:`MAX_FAILURES` of this worker's failed); the number
    this worker completed. While the rest is running elsewhere, it waits, failing the trials whose worker
    died (no heartbeat for the grace period), which queues them again."""
    import optuna

    outcome = {"done": 0, "failed": 0}

    def counted(number: int, values: dict[str, Any]) -> float:
        try:
            score = runner(number, values)
        except TrialFailed as exc:
            outcome["failed"] += 1
            logger.error(f"[sweep] {name}: {exc}")
            raise
        outcome["done"] += 1
        return score

    objective = objective_of(sweep, counted)
    while not finished(sweep, study):
        state = counts(study)
        taken = state.get("COMPLETE", 0) + state.get("RUNNING", 0) >= sweep.trials
        if not state.get("WAITING") and (sweep.sampler == "grid" or taken):
            optuna.storages.fail_stale_trials(study)  # a dead worker's trial goes back to the queue
            time.sleep(poll)
            continue
        study.optimize(objective, n_trials=1, catch=(TrialFailed,))
        if outcome["failed"] >= MAX_FAILURES:
            logger.error(f"[sweep] {name}: {outcome['failed']} trials of this worker failed; it stops")
            break
    return outcome["done"]


# --- the real trial: a DVC experiment, its score read from MLflow -------------------------------------


def experiment_name(name: str, number: int) -> str:
    return f"{name}-trial-{number}"


def trial_command(name: str, sweep: SweepConfig, number: int, values: dict[str, Any]) -> list[str]:
    """The ``dvc exp run`` of one trial."""
    overrides = [f"++{key}={value}" for key, value in sorted(values.items())]
    return ["dvc", "exp", "run", "--temp", "-n", experiment_name(name, number), f"evaluate@{sweep.task}",
            "-S", f"sweep={name}", *(arg for override in overrides for arg in ("-S", override))]


class TrialRunner:
    """Runs a trial's experiment and records the trial as an MLflow run under the sweep's parent run."""

    def __init__(self, params: Params, name: str, root: Path = PROJECT_ROOT) -> None:
        import mlflow

        from pipeline.kinds.factory import build_kind
        from pipeline.tracking.store import open_store

        self.params, self.name, self.root = params, name, root
        self.sweep = params.sweeps[name]
        self.metric = build_kind(params.task(self.sweep.task)).selection_metric(params.task(self.sweep.task))
        uri = params.tracking_uri(root)
        open_store(uri, params.tracking.experiment)
        self.client = mlflow.MlflowClient(uri)
        experiment = self.client.get_experiment_by_name(params.tracking.experiment)
        self.experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(
            params.tracking.experiment)
        self.parent: str | None = None

    def create_parent(self) -> str:
        """The sweep's MLflow parent run."""
        run = self.client.create_run(self.experiment_id, run_name=f"sweep {self.name}", tags={
            "sweep": self.name, "sweep_parent": "true", "sweep_task": self.sweep.task,
            "sweep_space": space_key(self.sweep)})
        return run.info.run_id

    def __call__(self, number: int, values: dict[str, Any]) -> float:
        argv = trial_command(self.name, self.sweep, number, values)
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        print(f"[sweep] {self.name}: trial {number}: {' '.join(argv)}", flush=True)
        result = subprocess.run(argv, cwd=self.root, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            self._record(number, values, None, "FAILED")
            raise TrialFailed(f"trial {number}: `dvc exp run` exited {result.returncode}:\n{tail}")
        score, run_id = self.score(experiment_name(self.name, number))
        self._record(number, values, score, "FINISHED", run_id)
        print(f"[sweep] {self.name}: trial {number}: dev {self.metric} {score:.4f}", flush=True)
        return score

    def score(self, experiment: str) -> tuple[float, str]:
        """The mean dev score over seeds of the task's top-level run of ``experiment``, and its run id."""
        from pipeline.reporting.sweeps import point_of

        runs = self.client.search_runs([self.experiment_id], filter_string=(
            f"tags.dvc_exp_name = '{experiment}' and tags.task = '{self.sweep.task}'"),
            order_by=["attributes.start_time DESC"])
        for run in runs:
            point = None if "mlflow.parentRunId" in run.data.tags else point_of(run, self.metric)
            if point is not None:
                return point.dev_mean, run.info.run_id
        raise TrialFailed(f"experiment {experiment}: no run of task {self.sweep.task} with a dev {self.metric}")

    def _record(self, number: int, values: dict[str, Any], score: float | None, status: str,
                task_run: str | None = None) -> None:
        tags = {"mlflow.parentRunId": self.parent or "", "sweep": self.name, "sweep_trial": str(number),
                "sweep_task": self.sweep.task, "dvc_exp_name": experiment_name(self.name, number)}
        if task_run:
            tags["task_run_id"] = task_run
        run = self.client.create_run(self.experiment_id, run_name=f"{self.name} trial {number}",
                                     tags={k: v for k, v in tags.items() if v})
        for key, value in values.items():
            self.client.log_param(run.info.run_id, key, value)
        if score is not None:
            self.client.log_metric(run.info.run_id, f"dev_{self.metric}.mean", score)
        self.client.set_terminated(run.info.run_id, status)


# --- the command ------------------------------------------------------------------------------------------


def worker(params: Params, name: str, heartbeat: int, grace: int, root: Path = PROJECT_ROOT) -> int:
    """Join (or create) sweep ``name`` and run its trials until it is finished."""
    from pipeline.tracking.redaction import shown_uri

    sweep = sweep_of(params, name)
    url = storage_url(root)
    runner = TrialRunner(params, name, root)
    study = open_study(name, sweep, open_storage(url, heartbeat, grace), runner.create_parent)
    runner.parent = study.user_attrs[PARENT]
    print(f"[sweep] {name}: worker joined (storage {shown_uri(url)}; {sweep.sampler}, {sweep.trials} trials)", flush=True)
    if url.startswith("sqlite"):
        logger.warning(f"[sweep] {name}: SQLite storage has no row locks: run one worker at a time on it, or set "
                       f"{STORAGE_ENV} to a PostgreSQL database (the team server's `sweeps`) for several")
    done = work(name, sweep, study, runner)
    if finished(sweep, study):
        runner.client.set_terminated(runner.parent, "FINISHED")
    print(f"[sweep] {name}: this worker completed {done} trial(s); {status_line(study)}", flush=True)
    return done


def sweep_of(params: Params, name: str) -> SweepConfig:
    if name not in params.sweeps:
        raise ConfigError(f"no sweep {name!r} under 'sweeps:' in params; defined: {', '.join(params.sweeps) or 'none'}")
    return params.sweeps[name]


def status_line(study: Any) -> str:
    state = counts(study)
    line = ", ".join(f"{count} {kind.lower()}" for kind, count in sorted(state.items()))
    best = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if best:
        top = max(best, key=lambda t: t.value)
        line += f"; best: trial {top.number} {json.dumps(top.params)} dev {top.value:.4f}"
    return line


def status(params: Params, name: str, root: Path = PROJECT_ROOT) -> str:
    """Every trial of the sweep: number, state, values, dev score."""
    import optuna

    from pipeline.reporting.files import markdown_table

    sweep_of(params, name)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=storage_url(root))
    rows = [[t.number, t.state.name, json.dumps(t.params), "-" if t.value is None else f"{t.value:.4f}",
             t.system_attrs.get("failed_trial", "")] for t in study.get_trials(deepcopy=False)]
    return (markdown_table(("trial", "state", "values", "dev mean", "retry of"), rows) + "\n\n" + status_line(study)
            + "\n(`make summary`: each configuration with the interval of its dev mean over seeds)")


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    parser = argparse.ArgumentParser(prog="python -m pipeline.commands.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("worker", "status"))
    parser.add_argument("name", help="the sweep, as named under 'sweeps:' in params.yaml")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS)
    parser.add_argument("--heartbeat", type=int, default=30, help="seconds between a trial's heartbeats (default 30)")
    parser.add_argument("--grace", type=int, default=120,
                        help="seconds without a heartbeat after which a trial's worker counts as dead (default 120)")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
        if args.action == "worker":
            worker(params, args.name, args.heartbeat, args.grace)
        else:
            print(status(params, args.name))
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: the worker stopped; its running trial is retried by another worker after "
              f"{args.grace} s without heartbeats", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

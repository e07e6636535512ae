"""Where a side of a comparison finds its test predictions.

A side is one run or several joined by commas (the seeds of one configuration); each run is one of:

* an MLflow run id (32 hex digits): its ``evaluation/predictions.jsonl`` artifact, task from its ``task`` tag;
* ``<task>@<rev>``: ``reports/<task>/evaluation/predictions.jsonl`` at a git revision or DVC experiment
  (``dvc.api.open``); ``<task>@workspace`` or ``<task>`` alone: the working tree's file;
* a path to a predictions file (the task comes from ``--task``).

Each line of a predictions file is a gold test record plus its prediction under ``predicted``. The
classification kinds write their label space beside it (``confusion.json``); it is read when present.
Problems are a :class:`CompareError`: one line with a hint.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

from pipeline.config.errors import did_you_mean, shown_path
from pipeline.config.schema import Params
from pipeline.data.readers.files import DataError, parse_json_line
from pipeline.kinds import kind_spec

RUN_ID = re.compile(r"[0-9a-f]{32}")
WORKSPACE = "workspace"
PREDICTIONS = "predictions.jsonl"
CONFUSION = "confusion.json"
#: the folder of a task's evaluation files, in the project and among a run's MLflow artifacts
EVALUATION = "evaluation"


class CompareError(ValueError):
    """A side cannot be compared (not found, unreadable, another task, other test examples); one line."""


@dataclass(frozen=True)
class Evaluated:
    """One run's predictions on the test examples, and where they came from."""

    name: str  #: how tables name it: ``MLflow run <id>``, ``sst2@HEAD~3``, a path
    short: str  #: a few characters for file names and tag keys: the run id's first 8, the revision, ...
    task: str | None
    records: list[dict]
    predictions: list[dict]
    labels: list[str] | None = None  #: the label space of ``confusion.json``, when there is one
    run_id: str | None = None


@dataclass(frozen=True)
class Side:
    """``A`` or ``B``: one run, or a group of runs compared by their mean."""

    letter: str
    runs: list[Evaluated]

    @property
    def task(self) -> str:
        return self.runs[0].task or ""

    @property
    def short(self) -> str:
        first = self.runs[0].short
        return first if len(self.runs) == 1 else f"{first}-{len(self.runs)}runs"

    @property
    def what(self) -> str:
        return self.runs[0].name if len(self.runs) == 1 else ", ".join(run.short for run in self.runs)

    def who(self, index: int) -> str:
        """How messages name run ``index`` of the side: ``B``, or ``B's run 2 (sst2@HEAD)`` in a group."""
        return self.letter if len(self.runs) == 1 else f"{self.letter}'s run {index + 1} ({self.runs[index].short})"


@dataclass
class Sources:
    """What reading a side needs: the params and their project, ``--task``, a folder for downloads."""

    params: Params
    params_path: Path
    workdir: Path
    task: str | None = None

    @property
    def root(self) -> Path:
        return self.params_path.resolve().parent

    @functools.cached_property
    def tracking_uri(self) -> str:
        return self.params.tracking_uri(self.root)

    def known_task(self, task: str) -> str:
        """``task`` if params.yaml defines it, else a :class:`CompareError` with the closest name."""
        tasks = list(self.params.tasks)
        if task not in tasks:
            close = did_you_mean(task, tasks)
            raise CompareError(
                f"no task {task!r} in {shown_path(self.params_path)}{'; ' + close if close else ''} "
                f"(tasks: {', '.join(tasks)})"
            )
        return task


def read_side(text: str, letter: str, sources: Sources) -> Side:
    """Side ``letter`` as given on the command line; every run of it read, tasks filled in and checked."""
    members = [member.strip() for member in text.split(",") if member.strip()]
    if not members:
        raise CompareError(f"{letter} names no run; hint: an MLflow run id, <task>@<rev>, <task> or a predictions file")
    runs = []
    for member in [run for member in members for run in seed_runs(member, sources)]:
        run = read_run(member, sources)
        if run.task is None:
            if sources.task is None:
                raise CompareError(
                    f"{letter}: {run.name} is a predictions file: name its task with --task; hint: e.g. --task sst2"
                )
            run = replace(run, task=sources.known_task(sources.task))
        elif sources.task is not None and run.task != sources.task:
            raise CompareError(f"{letter}: {run.name} is of task {run.task!r}, not {sources.task!r} (--task)")
        runs.append(run)
    return Side(letter, runs)


def seed_runs(text: str, sources: Sources) -> list[str]:
    """The seed runs of a seed group's parent MLflow run (by seed), else ``[text]`` as it is."""
    if not RUN_ID.fullmatch(text) or sqlite_missing(sources):
        return [text]
    from mlflow import MlflowClient

    from pipeline.tracking.redaction import shown_uri

    uri = sources.tracking_uri
    client = MlflowClient(uri)
    run = _mlflow_call(lambda: client.get_run(text), text, shown_uri(uri, sources.root))
    if "seed_group" not in run.data.tags:
        return [text]
    children = client.search_runs([run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{text}'")
    if not children:
        raise CompareError(f"MLflow run {text} is the parent of a seed group with no seed runs; hint: compare "
                           f"the seed runs themselves")
    return [child.info.run_id for child in sorted(children, key=lambda child: int(child.data.tags.get("seed", 0)))]


def sqlite_missing(sources: Sources) -> bool:
    """Whether the tracking store is a local sqlite database that does not exist (never create it)."""
    from pipeline.tracking.store import sqlite_database

    database = sqlite_database(sources.tracking_uri)
    return database is not None and not database.is_file()


def read_run(text: str, sources: Sources) -> Evaluated:
    """One run of a side: an MLflow run id, ``<task>@<rev>``, ``<task>`` or a predictions file."""
    if RUN_ID.fullmatch(text):
        return from_mlflow(text, sources)
    path = Path(text).expanduser()
    if path.is_file():
        return from_file(path)
    task, at, rev = text.partition("@")
    if task and "/" not in task and not task.endswith(".jsonl"):
        task = sources.known_task(task) if at else _task_or_file(task, sources)
        return from_revision(task, rev or WORKSPACE, sources)
    if path.is_dir():
        raise CompareError(f"{text}: is a directory; hint: give its {PREDICTIONS}, e.g. {path / PREDICTIONS}")
    raise CompareError(
        f"{text}: no such predictions file; hint: check the path (relative to {Path.cwd()}), or give an MLflow "
        f"run id or <task>@<rev>"
    )


def _task_or_file(text: str, sources: Sources) -> str:
    """A bare word is a task; an unknown one may have been meant as a file."""
    try:
        return sources.known_task(text)
    except CompareError as exc:
        raise CompareError(f"{exc}; nor is {text!r} a predictions file") from None


# --- predictions files ----------------------------------------------------------------------------------


def parse_predictions(text: str, origin: str) -> tuple[list[dict], list[dict]]:
    """The gold records and predictions of a predictions file's ``text``; errors name ``origin:line``."""
    records, predictions = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        row = parse_json_line(line, f"{origin}:{number}")
        if not isinstance(row, dict) or not isinstance(row.get("predicted"), dict):
            raise DataError(
                f"{origin}:{number}: expected a JSON object holding its prediction under 'predicted'; hint: give "
                f"a reports/<task>/{EVALUATION}/{PREDICTIONS} written by the evaluate stage"
            )
        predictions.append(row["predicted"])
        records.append({key: value for key, value in row.items() if key != "predicted"})
    if not records:
        raise CompareError(f"{origin}: no predictions in it (an empty file)")
    return records, predictions


def read_labels(text: str | None) -> list[str] | None:
    """The ``labels`` of a ``confusion.json`` text (None: no such file, or not in that shape)."""
    if text is None:
        return None
    try:
        labels = json.loads(text).get("labels")
    except (ValueError, AttributeError):
        return None
    return [str(label) for label in labels] if isinstance(labels, list) else None


def _file_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CompareError(f"{shown_path(path)}: not UTF-8 ({exc.reason}); hint: give a {PREDICTIONS} file") from None


def _optional_text(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def from_file(path: Path, name: str | None = None, short: str | None = None, task: str | None = None) -> Evaluated:
    """A predictions file on disk and the ``confusion.json`` beside it; the task unknown unless given."""
    shown = shown_path(path)
    records, predictions = parse_predictions(_file_text(path), shown)
    labels = read_labels(_optional_text(path.with_name(CONFUSION)))
    return Evaluated(name or shown, short or _short_of_path(path), task, records, predictions, labels)


def _short_of_path(path: Path) -> str:
    """A file's stem, or for a ``predictions.jsonl`` the folder holding it; for
    ``<project>/reports/<task>/evaluation/predictions.jsonl`` the project's folder."""
    if path.stem != "predictions":
        return path.stem
    folders = path.resolve().parent.parts
    if len(folders) > 3 and folders[-1] == EVALUATION and folders[-3] == "reports":
        folders = folders[:-3]
    return folders[-1] if len(folders) > 1 else path.stem


# --- a task at a revision ------------------------------------------------------------------------------


def task_file(task: str, name: str) -> str:
    """``reports/<task>/evaluation/<name>``, relative to the project."""
    return f"reports/{task}/{EVALUATION}/{name}"


def from_revision(task: str, rev: str, sources: Sources) -> Evaluated:
    """``reports/<task>/evaluation/predictions.jsonl`` in the working tree (``rev`` ``workspace``) or at
    a git revision or DVC experiment."""
    if rev == WORKSPACE:
        path = sources.root / task_file(task, PREDICTIONS)
        if not path.is_file():
            raise CompareError(
                f"{shown_path(path)}: task {task!r} has no predictions in the workspace; hint: run "
                f"`dvc repro evaluate@{task}`, or name a revision ({task}@HEAD) or an MLflow run id"
            )
        return from_file(path, f"{task} in the workspace", WORKSPACE, task)
    name = f"{task}@{rev}"
    text = _read_at(task, PREDICTIONS, rev, sources.root)
    try:
        labels = read_labels(_read_at(task, CONFUSION, rev, sources.root))
    except CompareError:
        labels = None
    records, predictions = parse_predictions(text, f"{name}:{task_file(task, PREDICTIONS)}")
    return Evaluated(name, rev, task, records, predictions, labels)


def _read_at(task: str, file: str, rev: str, root: Path) -> str:
    """The task's evaluation ``file`` at ``rev`` through DVC (git-tracked, or a DVC output in the cache)."""
    import dvc.api
    from dvc.exceptions import PathMissingError
    from dvc.scm import RevError

    name, path = f"{task}@{rev}", task_file(task, file)
    try:
        with dvc.api.open(path, repo=str(root), rev=rev, encoding="utf-8") as handle:
            return handle.read()
    except RevError:
        raise CompareError(
            f"{name}: no git revision or DVC experiment {rev!r}; hint: `git log --oneline -- dvc.lock` lists "
            f"the revisions that changed results, `dvc exp list` the experiments"
        ) from None
    except PathMissingError:
        raise CompareError(f"{name}: {path} is not in that revision; hint: was {task} evaluated there?") from None
    except Exception as exc:  # noqa: BLE001  (a missing cache raises dvc_data's errors, derived from Exception only)
        if file != PREDICTIONS:
            raise CompareError(f"{name}: {path}: {_first_line(exc)}") from None
        run_id = _run_id_at(task, rev, root)
        also = f", or compare that revision's MLflow run: {run_id}" if run_id else ""
        raise CompareError(
            f"{name}: cannot read {path} at that revision ({type(exc).__name__}: {_first_line(exc)}); hint: its "
            f"data is not in the DVC cache (.dvc/cache): fetch it from a remote (`dvc fetch --all-commits`){also}"
        ) from None


def _run_id_at(task: str, rev: str, root: Path) -> str | None:
    """The MLflow run id ``reports/<task>/mlflow_run.json`` (tracked by git) names at ``rev``, if any."""
    import dvc.api

    try:
        return json.loads(dvc.api.read(f"reports/{task}/mlflow_run.json", repo=str(root), rev=rev)).get("run_id")
    except Exception:  # noqa: BLE001  (only a hint)
        return None


def _first_line(exc: BaseException | str) -> str:
    """The first line of an error, any URI and secret in it redacted, at most 160 characters."""
    from pipeline.tracking.redaction import scrub

    line = scrub((str(exc).strip().splitlines() or [""])[0])
    return line if len(line) <= 160 else line[:157] + "..."


# --- an MLflow run --------------------------------------------------------------------------------------


def from_mlflow(run_id: str, sources: Sources) -> Evaluated:
    """The ``evaluation/predictions.jsonl`` (and ``confusion.json``) artifacts of an MLflow run of the store
    ``MLFLOW_TRACKING_URI`` or params.yaml's ``tracking.uri`` names, downloaded into ``sources.workdir``."""
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts

    from pipeline.tracking.redaction import shown_uri
    from pipeline.tracking.store import open_store

    uri = sources.tracking_uri
    store = shown_uri(uri, sources.root)
    if sqlite_missing(sources):  # do not create it
        raise CompareError(
            f"no MLflow run {run_id!r} in {store}: that store does not exist; hint: set MLFLOW_TRACKING_URI "
            f"(or tracking.uri in params.yaml) to the store that holds the run"
        )
    run = _mlflow_call(lambda: (open_store(uri), MlflowClient(uri).get_run(run_id))[1], run_id, store)
    task = run.data.tags.get("task")
    if not task:
        raise CompareError(f"MLflow run {run_id} in {store} has no 'task' tag: not a task run of this pipeline")
    sources.known_task(task)
    target = sources.workdir / run_id
    try:
        path = Path(download_artifacts(
            run_id=run_id, artifact_path=f"{EVALUATION}/{PREDICTIONS}", dst_path=str(target), tracking_uri=uri
        ))  # fmt: skip
    except Exception:  # noqa: BLE001  (MLflow raises several types for a missing artifact)
        raise CompareError(
            f"MLflow run {run_id} ({task}) in {store} has no {EVALUATION}/{PREDICTIONS}; hint: the evaluate stage "
            f"logs it (dvc repro evaluate@{task}); runs kept in mlflow-outbox/ are pushed by "
            f"python -m pipeline.commands.sync_runs"
        ) from None
    try:
        download_artifacts(
            run_id=run_id, artifact_path=f"{EVALUATION}/{CONFUSION}", dst_path=str(target), tracking_uri=uri
        )
    except Exception:  # noqa: BLE001, S110  (optional: only the classification kinds write it)
        pass
    name = f"MLflow run {run_id}" + (f" ({run.info.run_name})" if run.info.run_name else "")
    records, predictions = parse_predictions(_file_text(path), f"run {run_id}:{EVALUATION}/{PREDICTIONS}")
    labels = read_labels(_optional_text(path.with_name(CONFUSION)))
    return Evaluated(name, run_id[:8], task, records, predictions, labels, run_id)


def _mlflow_call(call: Callable, run_id: str, store: str):
    """``call()``; MLflow's and the network's errors as one line naming the run and the store."""
    from mlflow.exceptions import MlflowException

    try:
        return call()
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise CompareError(
                f"no MLflow run {run_id!r} in {store}; hint: a task's latest run id is in "
                f"reports/<task>/mlflow_run.json; for a run of another store set MLFLOW_TRACKING_URI"
            ) from None
        detail = _first_line(exc.message)
    except Exception as exc:  # noqa: BLE001  (an unreachable server: requests' and sqlalchemy's errors)
        detail = f"{type(exc).__name__}: {_first_line(exc)}"
    raise CompareError(
        f"cannot read MLflow run {run_id!r} from {store} ({detail}); hint: check that the tracking server "
        f"answers, or unset MLFLOW_TRACKING_URI for the local store"
    )


# --- both sides together ----------------------------------------------------------------------------------


def check_comparable(a: Side, b: Side) -> None:
    """A :class:`CompareError` unless every run of both sides is of one task and holds the same test
    examples (by id) in the same order as A's first run."""
    reference = a.runs[0]
    for side in (a, b):
        for index, run in enumerate(side.runs):
            if run.task != reference.task:
                raise CompareError(
                    f"{side.who(index)} is a run of task {run.task!r}, {a.who(0)} of {reference.task!r}: compare "
                    f"needs runs of one task"
                )
    for side in (a, b):
        for index, run in enumerate(side.runs):
            _check_examples(run, side.who(index), reference, a.who(0))


def _check_examples(run: Evaluated, who: str, reference: Evaluated, reference_who: str) -> None:
    if run is reference:
        return
    if len(run.records) != len(reference.records):
        raise CompareError(
            f"{who} has {len(run.records)} test examples, {reference_who} {len(reference.records)}: compare needs "
            f"both evaluated on the same test examples (set the same max_test_samples)"
        )
    for position, (mine, theirs) in enumerate(zip(run.records, reference.records), start=1):
        if _example_key(mine) != _example_key(theirs):
            raise CompareError(
                f"{who}'s test example {position} is {_example_key(mine)!r}, {reference_who}'s "
                f"{_example_key(theirs)!r}: compare needs both evaluated on the same test examples in the same order"
            )


def _example_key(record: dict) -> str:
    """What identifies a test example: its id (the whole record when it has none)."""
    return str(record["id"]) if "id" in record else json.dumps(record, sort_keys=True, ensure_ascii=False)[:80]


def gold_differences(a: Side, b: Side) -> int:
    """How many test examples of some run carry other gold annotations than A's first run (scores use A's)."""
    reference = a.runs[0].records
    return sum(
        any(run.records[i] != reference[i] for run in (*a.runs, *b.runs)) for i in range(len(reference))
    )


def label_space(kind: str, runs: Sequence[Evaluated]) -> list[str]:
    """The labels scores are computed with: the runs' ``confusion.json`` label spaces (the training labels,
    as the evaluate stage scored with), merged in order; else the sorted union of gold and predicted labels."""
    written = [label for run in runs for label in run.labels or ()]
    if written:
        return list(dict.fromkeys(written))
    spec = kind_spec(kind)
    return sorted({
        str(label) for run in runs for item in (*run.records, *run.predictions) for label in spec.labels_of(item)
    })  # fmt: skip

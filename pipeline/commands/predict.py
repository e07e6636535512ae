"""Predict with a trained task, from the command line or a file.

    python -m pipeline.commands.predict sst2 "a gripping, funny film"
    python -m pipeline.commands.predict ccks_event --query 实控人股东变更 "华谊兄弟实控人王中军转让公司5%股份"
    python -m pipeline.commands.predict mrpc --text-b "He left." "He went away."
    python -m pipeline.commands.predict cluener --file texts.txt            # one text per line
    python -m pipeline.commands.predict --run-id 3f2a... --file rows.jsonl  # the model logged in an MLflow run
    python -m pipeline.commands.predict --model-uri models:/sst2@champion "a gripping, funny film"

A task name loads ``models/tasks/<task>``; ``--run-id`` (or ``--model-uri``: ``models:/<task>@champion``
is the registered version ``pipeline.commands.promote`` made champion) loads the MLflow model instead.
Files: ``.jsonl`` (objects with the task's input fields), ``.csv``/``.tsv`` (a header naming them) or plain text (one ``text`` per line); ``--query`` / ``--text-b`` fill rows that lack
them. Prints one JSON object per input. Bad input is one line on stderr naming the file, line and
field (``error: rows.jsonl:3: field 'text' must be a string, got int 5; hint: ...``), exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from pipeline.config.paths import DEFAULT_PARAMS
from pipeline.config.errors import ConfigError, did_you_mean, shown_path
from pipeline.config.loading import load_params
from pipeline.data.readers import DataError
from pipeline.data.readers.files import UTF8_HINT, csv_rows, numbered_lines, read_json_objects
from pipeline.runtime.log_setup import configure_logging

Rows = list[dict[str, Any]]

#: the option that gives a field to every row, for hints
FIELD_OPTIONS = {"query": "--query", "text_b": "--text-b"}


@dataclass
class Located:
    """Input rows and where each came from: ``file:line`` or ``row N`` (the N-th text argument)."""

    rows: Rows
    origins: list[str]


@dataclass
class Model:
    """A model to predict with: the input fields it needs (None: unknown) and its predict function."""

    columns: tuple[str, ...] | None
    predict: Callable[[Rows], list[dict]]
    what: str  #: how messages name it


def read_rows(path: Path, columns: Sequence[str] | None = None) -> Located:
    """Input rows from a JSON-lines, CSV/TSV or plain-text file; errors name the file and line.

    ``columns`` (the model's input fields) are checked against a CSV/TSV header."""
    if path.is_dir():
        raise DataError(f"{path}: is a directory; hint: give --file an input file (.jsonl, .csv, .tsv or .txt)")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such input file; hint: check the path (relative to {Path.cwd()})")
    if path.suffix == ".jsonl":
        try:
            pairs = read_json_objects(path, hint=UTF8_HINT)
        except DataError as exc:
            if "; hint: " in str(exc):
                raise
            raise DataError(f"{exc}; hint: one JSON object per line, e.g. {{\"text\": \"...\"}}") from None
        return Located([row for _, row in pairs], [f"{path}:{line}" for line, _ in pairs])
    if path.suffix in (".csv", ".tsv"):
        return _read_delimited(path, "\t" if path.suffix == ".tsv" else ",", columns)
    rows, origins = [], []
    for line_no, line in numbered_lines(path, hint=UTF8_HINT):
        if line.strip():
            rows.append({"text": line})
            origins.append(f"{path}:{line_no}")
    return Located(rows, origins)


def _read_delimited(path: Path, delimiter: str, columns: Sequence[str] | None) -> Located:
    """Rows of a CSV/TSV file whose first line names the columns; empty lines are skipped."""
    rows, origins = [], []
    header: list[str] | None = None
    what = path.suffix[1:].upper()
    for line_no, fields in csv_rows(path, hint=UTF8_HINT, what=what, delimiter=delimiter):
        if header is None:
            header = [name.strip() for name in fields]
            missing = [name for name in columns or () if name not in header]
            if missing:
                raise DataError(
                    f"{path}:{line_no}: field {missing[0]!r}: no such column in the header "
                    f"(columns: {', '.join(header) or 'none'}); hint: the first line must name the "
                    f"model's input columns: {', '.join(columns or ())}"
                )
            continue
        if not any(field.strip() for field in fields):
            continue
        if len(fields) != len(header):
            raise DataError(
                f"{path}:{line_no}: expected {len(header)} fields ({', '.join(header)}) separated by "
                f"{delimiter!r}, found {len(fields)}; hint: quote fields that hold {delimiter!r}"
            )
        rows.append(dict(zip(header, fields)))
        origins.append(f"{path}:{line_no}")
    if header is None:
        raise DataError(f"{path}:1: empty file; hint: the first line must name the input columns, e.g. text")
    return Located(rows, origins)


def rows_from_args(args: argparse.Namespace, columns: Sequence[str] | None = None) -> Located:
    """Rows from ``--file`` or from the positional texts, with ``--query`` / ``--text-b`` where a row lacks them."""
    extra = {key: value for key, value in (("query", args.query), ("text_b", args.text_b)) if value is not None}
    if args.file:
        located = read_rows(args.file, [column for column in columns or () if column not in extra])
        return Located([{**extra, **row} for row in located.rows], located.origins)
    rows = [{"text": text, **extra} for text in args.texts]
    return Located(rows, [f"row {number}" for number in range(1, len(rows) + 1)])


def check_located(located: Located, columns: Sequence[str] | None, from_file: bool) -> None:
    """A :class:`DataError` ``<file:line | row N>: field '<name>' <what is wrong>; hint: ...`` for the
    first row whose input fields are not all non-empty text."""
    from pipeline.serving.predictor import InputError, check_rows

    if not columns:
        return
    try:
        check_rows(located.rows, columns)
    except InputError as exc:
        raise DataError(row_message(located.origins[exc.row], exc.field, exc.problem, from_file)) from None


def row_message(origin: str, field: str, problem: str, from_file: bool) -> str:
    """One line for a bad input field, with a hint that fits where the row came from."""
    if problem.startswith("is missing"):
        option = FIELD_OPTIONS.get(field)
        if from_file:
            hint = f"give every row a {field!r} field (a .jsonl key or a .csv/.tsv column)"
            hint += f", or {option} for all rows" if option else ""
        else:
            hint = f"give it with {option}" if option else f"use --file with rows that have {field!r}"
    elif problem.startswith("is empty"):
        hint = "give it text, or remove the row"
    else:
        hint = f'write it as a JSON string, e.g. "{field}": "..."'
    return f"{origin}: field {field!r} {problem}; hint: {hint}"


def local_model(task: str, params_path: Path = DEFAULT_PARAMS) -> Model:
    """The task's trained bundle in ``models/tasks/<task>``; a one-line error naming what is missing."""
    from pipeline.serving.bundle import read_bundle
    from pipeline.config.paths import task_model_dir

    directory = task_model_dir(task)
    try:
        bundle = read_bundle(directory)
    except FileNotFoundError:
        raise FileNotFoundError(untrained_message(task, directory, params_path)) from None

    def predict(rows: Rows) -> list[dict]:
        from pipeline.serving.predictor import TaskPredictor

        return TaskPredictor(bundle).predict(rows)

    return Model(tuple(bundle.kind.input_columns(bundle.cfg)), predict, f"task {task!r}")


def untrained_message(task: str, directory: Path, params_path: Path = DEFAULT_PARAMS) -> str:
    """Why ``task`` has no trained model: not a task of params.yaml (with the closest name), or not trained."""
    try:
        tasks = list(load_params(params_path).tasks)
    except ConfigError:
        tasks = None  # params.yaml has its own problems: `python -m pipeline.commands.check` reports them
    if tasks is not None and task not in tasks:
        close = did_you_mean(task, tasks)
        suggestion = f"; {close}" if close else ""
        return f"no task {task!r} in {shown_path(params_path)}{suggestion} (tasks: {', '.join(tasks)})"
    return (
        f"{shown_path(directory)}: task {task!r} has no trained model (no task.json / model.weights.h5); "
        f"hint: run `dvc repro train@{task}`"
    )


def mlflow_model(uri: str, run_id: str | None = None) -> Model:
    """The MLflow model at ``uri``, or with ``run_id`` the model that run logged (tracking store from
    params.yaml or ``MLFLOW_TRACKING_URI``); a one-line error when the run or the model is not in that store."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from pipeline.serving.mlflow_model import LEGACY_MODEL_NAME, run_model_uri
    from pipeline.tracking.redaction import shown_uri

    tracking = load_params().tracking_uri()
    store = shown_uri(tracking)
    database = tracking.removeprefix("sqlite:///")
    in_store = bool(run_id) or uri.startswith(("runs:/", "models:/"))
    if in_store and database != tracking and not Path(database.partition("?")[0]).is_file():  # do not create it
        what = f"MLflow run {run_id!r}" if run_id else f"MLflow model {uri}"
        raise DataError(
            f"no {what} in {store}: that store does not exist yet; hint: run the pipeline (dvc repro) to log "
            f"models there, or set MLFLOW_TRACKING_URI to the store that holds the run"
        )
    from pipeline.tracking.store import open_store

    open_store(tracking)  # a copied or moved project: its local store's artifacts are found where they are now
    mlflow.set_tracking_uri(tracking)
    try:
        if run_id:
            task = mlflow.MlflowClient().get_run(run_id).data.tags.get("task", LEGACY_MODEL_NAME)
            uri = run_model_uri(run_id, task)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise DataError(
                f"no MLflow run {run_id!r} in {store}; hint: a task's run id is in reports/<task>/mlflow_run.json; "
                f"for a run of another store set MLFLOW_TRACKING_URI (or tracking.uri in params.yaml)"
            ) from None
        raise DataError(
            f"cannot read MLflow run {run_id!r} from {store}: {_first_line(exc.message)}; "
            f"hint: check that the tracking server answers (or unset MLFLOW_TRACKING_URI for the local store)"
        ) from None
    try:
        try:
            info = mlflow.models.get_model_info(uri)
        except MlflowException:
            if not run_id:
                raise
            uri = run_model_uri(run_id, LEGACY_MODEL_NAME)  # a run logged before models were named by task
            info = mlflow.models.get_model_info(uri)
    except MlflowException as exc:
        if run_id and exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise DataError(
                f"MLflow run {run_id!r} in {store} has no logged model at {uri}; hint: the evaluate stage logs it "
                f"(dvc repro evaluate@<task>); runs kept in mlflow-outbox/ are pushed by python -m pipeline.commands.sync_runs"
            ) from None
        raise DataError(
            f"no MLflow model {uri} in {store} ({_first_line(exc.message)}){registry_hint(uri)}"
        ) from None
    inputs = info.signature.inputs if info.signature is not None else None
    columns = None
    if inputs is not None and inputs.has_input_names():
        columns = tuple(spec.name for spec in inputs.inputs if getattr(spec, "required", True))

    def predict(rows: Rows) -> list[dict]:
        import pandas as pd

        from pipeline.serving.mlflow_model import load_task_model

        return load_task_model(uri).predict(pd.DataFrame(rows))

    return Model(columns, predict, uri)


def registry_hint(uri: str) -> str:
    """A hint for a ``models:/<task>@champion`` URI that names no model: the promote command sets that alias."""
    from pipeline.tracking.registry import CHAMPION

    name, _, alias = uri.removeprefix("models:/").partition("@")
    if not uri.startswith("models:/") or alias != CHAMPION:
        return ""
    return f"; hint: `python -m pipeline.commands.promote {name}` makes a registered version the {CHAMPION}"


def _first_line(text: str) -> str:
    """The first line of an MLflow message, with any URI in it redacted."""
    from pipeline.tracking.redaction import scrub

    return scrub((str(text).strip().splitlines() or [""])[0])


def predict_rows(model: Model, located: Located, from_file: bool) -> list[dict]:
    """``model``'s outputs for the rows; a bad row that passed the checks here is still named by its origin."""
    from pipeline.serving.predictor import InputError

    try:
        return model.predict(located.rows)
    except InputError as exc:
        raise DataError(row_message(located.origins[exc.row], exc.field, exc.problem, from_file)) from None
    except Exception as exc:  # MLflow's errors about the rows (schema, a bad row): the message is the useful part
        exceptions = sys.modules.get("mlflow.exceptions")
        if exceptions is None or not isinstance(exc, exceptions.MlflowException):
            raise
        row, field = getattr(exc, "row", None), getattr(exc, "field", None)
        if isinstance(row, int) and 0 <= row < len(located.origins) and field:
            message = str(exc.message).removeprefix(f"row {row}: field {field!r} ")
            raise DataError(row_message(located.origins[row], field, message, from_file)) from None
        raise DataError(f"{model.what}: {_first_line(exc.message)}") from None


def main(argv: list[str] | None = None) -> None:
    configure_logging()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="Prints one JSON line per input.")
    parser.add_argument("task", nargs="?", help="a task of params.yaml with a trained model (models/tasks/<task>)")
    parser.add_argument("texts", nargs="*", help="texts to predict (or use --file)")
    parser.add_argument("--file", type=Path, help="input rows: .jsonl, .csv, .tsv or plain text lines")
    parser.add_argument("--query", help="the query joined to every text (span extraction)")
    parser.add_argument("--text-b", help="the second text of every pair (sentence-pair classification)")
    parser.add_argument("--run-id", help="use the model logged in this MLflow run instead of a local task")
    parser.add_argument("--model-uri", help="use this MLflow model URI (models:/..., runs:/...)")
    args = parser.parse_intermixed_args(argv)
    if args.run_id or args.model_uri:
        if args.task:  # with a run id, the first positional is a text, not a task
            args.texts.insert(0, args.task)
    elif not args.task:
        parser.error("name a task, or give --run-id / --model-uri")
    if not args.file and not args.texts:
        parser.error("give texts to predict, or --file")
    try:
        if args.run_id or args.model_uri:
            run_id = None if args.model_uri else args.run_id
            model = mlflow_model(args.model_uri or "", run_id)
        else:
            model = local_model(args.task)
        located = rows_from_args(args, model.columns)
        check_located(located, model.columns, bool(args.file))
        outputs = predict_rows(model, located, bool(args.file))
    except (ConfigError, DataError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    for row, output in zip(located.rows, outputs):
        print(json.dumps({**row, "predicted": output}, ensure_ascii=False))


if __name__ == "__main__":
    main()

"""Predict with a trained task, from the command line or a file.

    python -m pipeline.predict sst2 "a gripping, funny film"
    python -m pipeline.predict ccks_event --query 实控人股东变更 "华谊兄弟实控人王中军转让公司5%股份"
    python -m pipeline.predict mrpc --text-b "He left." "He went away."
    python -m pipeline.predict cluener --file texts.txt            # one text per line
    python -m pipeline.predict --run-id 3f2a... --file rows.jsonl  # the model logged in an MLflow run

A task name loads ``models/tasks/<task>``; ``--run-id`` (or ``--model-uri``) loads the MLflow model
instead. Files: ``.jsonl`` (objects with the task's input fields), ``.csv``/``.tsv`` (a header
naming them) or plain text (one ``text`` per line). Prints one JSON object per input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

from pipeline.config import ConfigError
from pipeline.readers import DataError
from pipeline.readers.files import read_json_objects

Rows = list[dict[str, Any]]


def read_rows(path: Path) -> Rows:
    """Input rows from a JSON-lines, CSV/TSV or plain-text file; errors name the file and line."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such input file")
    if path.suffix == ".jsonl":
        return [row for _, row in read_json_objects(path)]
    if path.suffix in (".csv", ".tsv"):
        import pandas as pd

        frame = pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
        return frame.to_dict("records")
    return [{"text": line} for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def rows_from_args(args: argparse.Namespace) -> Rows:
    """Rows from ``--file`` or from the positional texts plus ``--query`` / ``--text-b``."""
    if args.file:
        return read_rows(args.file)
    extra = {key: value for key, value in (("query", args.query), ("text_b", args.text_b)) if value is not None}
    return [{"text": text, **extra} for text in args.texts]


def local_predictor(task: str) -> Callable[[Rows], list[dict]]:
    """The task's trained bundle in ``models/tasks/<task>``."""
    from pipeline.bundle import read_bundle
    from pipeline.paths import task_model_dir
    from pipeline.serving import TaskPredictor

    return TaskPredictor(read_bundle(task_model_dir(task))).predict


def mlflow_predictor(uri: str) -> Callable[[Rows], list[dict]]:
    """A model logged to MLflow (tracking store from params.yaml or ``MLFLOW_TRACKING_URI``)."""
    import mlflow
    import pandas as pd

    from pipeline.config import load_params
    from pipeline.mlflow_model import load_task_model

    mlflow.set_tracking_uri(load_params().tracking_uri())
    model = load_task_model(uri)
    return lambda rows: model.predict(pd.DataFrame(rows))


def main(argv: list[str] | None = None) -> None:
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
        rows = rows_from_args(args)
        from pipeline.serving import InputError

        try:
            if args.run_id or args.model_uri:
                predict = mlflow_predictor(args.model_uri or f"runs:/{args.run_id}/model")
            else:
                predict = local_predictor(args.task)
            outputs = predict(rows)
        except InputError as exc:
            raise DataError(f"{args.file or 'input'}: {exc}") from None
        except Exception as exc:  # MLflow's schema check of the input rows: its message is the useful part
            if type(exc).__name__ != "MlflowException":
                raise
            raise DataError(f"{args.file or 'input'}: {exc}") from None
    except (ConfigError, DataError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    for row, output in zip(rows, outputs):
        print(json.dumps({**row, "predicted": output}, ensure_ascii=False))


if __name__ == "__main__":
    main()

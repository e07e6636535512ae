"""A trained task as an MLflow pyfunc model: raw text in; a label, entities, an answer or triples out.

The model carries the task bundle (weights, backbone config, vocabulary, labels, the task's params,
hence the CRF transitions and decoder options) and this package's code, so that::

    mlflow.pyfunc.load_model("runs:/<run id>/<task>").predict(pd.DataFrame({"text": ["..."]}))

works in a fresh process, and ``mlflow models serve -m runs:/<run id>/<task> --env-manager local``
answers ``/invocations``.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Sequence

import mlflow.pyfunc
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

# no progress bar for each artifact MLflow downloads while logging (it reads the input example back) or
# loading a model: a user's own setting wins
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

#: the model's name inside its run before it was named after its task: ``runs:/<run id>/model``
LEGACY_MODEL_NAME = "model"
#: packages a served model needs; their installed versions are pinned in the logged model
RUNTIME_PACKAGES = ("tensorflow-cpu", "tf-keras", "bert4keras", "mlflow", "pandas", "numpy", "scikit-learn", "pydantic")

PACKAGE_DIR = Path(__file__).resolve().parent


def package_versions(names: Sequence[str] = RUNTIME_PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (those installed)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


class InvalidInputRow(MlflowException):
    """A bad input row, as MLflow reports a bad request: ``INVALID_PARAMETER_VALUE`` (HTTP 400 from the
    scoring server), the message ``row 0: field 'text' must be a string, got int 5`` and ``row`` and
    ``field`` in the JSON body, no stack trace.

    The scoring server (MLflow 3.17) rewrites the message of an MlflowException raised by ``predict``
    to ``Failed to predict data '<the whole input frame>'. Error: <message>``; the message here stays
    the one line that names the row and the field.
    """

    def __init__(self, row: int, field: str, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE, row=row, field=field)
        self.row, self.field = row, field

    @property
    def message(self) -> str:
        return self._row_message

    @message.setter
    def message(self, value: str) -> None:
        if not hasattr(self, "_row_message"):  # set once, by __init__
            self._row_message = value


class TaskModel(mlflow.pyfunc.PythonModel):
    """Loads the bundle artifact once; ``predict`` takes a DataFrame (or list of dicts) of raw rows."""

    def load_context(self, context: Any) -> None:
        from pipeline.serving.bundle import read_bundle
        from pipeline.serving.predictor import TaskPredictor

        self._predictor = TaskPredictor(read_bundle(context.artifacts["bundle"]))

    # a DataFrame hint is one MLflow infers no schema from (other hints would become one, and without
    # any hint MLflow warns as the class is defined): inputs are checked against the logged signature
    def predict(self, context, model_input: pd.DataFrame, params=None):
        """One output dict per input row (a DataFrame or a list of dicts); a bad row raises
        :class:`InvalidInputRow` naming it and its field."""
        from pipeline.serving.predictor import InputError

        rows = model_input.to_dict("records") if hasattr(model_input, "to_dict") else list(model_input)
        try:
            return self._predictor.predict(rows)
        except InputError as exc:
            raise InvalidInputRow(exc.row, exc.field, str(exc)) from None


#: what MLflow says on every log_model of this model, none of it about this run: that a python_model
#: object is pickled, and that it validates the input example
LOG_MODEL_CHATTER = ("mlflow.pyfunc", "mlflow.models")


@contextmanager
def quiet_log_model() -> Iterator[None]:
    """Silence :data:`LOG_MODEL_CHATTER` (warnings and INFO lines) around one log_model call."""
    loggers = [logging.getLogger(name) for name in LOG_MODEL_CHATTER]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for log, level in zip(loggers, levels):
            log.setLevel(level)


def run_model_uri(run_id: str, task: str) -> str:
    """The URI of the model a task's run logged (it is named after the task)."""
    return f"runs:/{run_id}/{task}"


def log_task_model(bundle_dir: Path, example_rows: list[dict], example_outputs: list[dict], task: str) -> Any:
    """Log the bundle as the active run's pyfunc model named ``task``, with a signature inferred from
    the examples."""
    from mlflow.models import infer_signature

    example = pd.DataFrame(example_rows)
    with quiet_log_model():
        return mlflow.pyfunc.log_model(
            name=task,
            python_model=TaskModel(),
            artifacts={"bundle": str(bundle_dir)},
            code_paths=[str(PACKAGE_DIR)],
            signature=infer_signature(example, example_outputs),
            input_example=example,
            pip_requirements=[f"{name}=={version}" for name, version in package_versions().items()],
        )


def load_task_model(uri: str) -> Any:
    """An MLflow model URI (``runs:/<id>/<task>``, ``models:/<name>/<version>``...) as a pyfunc model."""
    return mlflow.pyfunc.load_model(uri)

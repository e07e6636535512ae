"""A trained task as an MLflow pyfunc model: raw text in; a label, entities, an answer or triples out.

The model carries the task bundle (weights, backbone config, vocabulary, labels, the task's params,
hence the CRF transitions and decoder options) and this package's code, so that::

    mlflow.pyfunc.load_model("runs:/<run id>/model").predict(pd.DataFrame({"text": ["..."]}))

works in a fresh process, and ``mlflow models serve -m runs:/<run id>/model --env-manager local``
answers ``/invocations``.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import mlflow.pyfunc
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

#: the name of the model inside its run: ``runs:/<run id>/model``
MODEL_NAME = "model"
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

    def predict(self, context, model_input, params=None):  # untyped: MLflow reads type hints as a schema
        """One output dict per input row (a DataFrame or a list of dicts); a bad row raises
        :class:`InvalidInputRow` naming it and its field."""
        from pipeline.serving.predictor import InputError

        rows = model_input.to_dict("records") if hasattr(model_input, "to_dict") else list(model_input)
        try:
            return self._predictor.predict(rows)
        except InputError as exc:
            raise InvalidInputRow(exc.row, exc.field, str(exc)) from None


def log_task_model(bundle_dir: Path, example_rows: list[dict], example_outputs: list[dict]) -> Any:
    """Log the bundle as the active run's pyfunc model, with a signature inferred from the examples."""
    import pandas as pd
    from mlflow.models import infer_signature

    example = pd.DataFrame(example_rows)
    return mlflow.pyfunc.log_model(
        name=MODEL_NAME,
        python_model=TaskModel(),
        artifacts={"bundle": str(bundle_dir)},
        code_paths=[str(PACKAGE_DIR)],
        signature=infer_signature(example, example_outputs),
        input_example=example,
        pip_requirements=[f"{name}=={version}" for name, version in package_versions().items()],
    )


def load_task_model(uri: str) -> Any:
    """An MLflow model URI (``runs:/<id>/model``, ``models:/<name>/<version>``...) as a pyfunc model."""
    return mlflow.pyfunc.load_model(uri)

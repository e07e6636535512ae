"""Predictions on raw input rows from a trained task: what the MLflow model, ``predict`` and ``serve`` share.

A row is a mapping with the kind's input columns (``text``; ``text`` + ``text_b`` for sentence
pairs; ``query`` + ``text`` for span extraction). Bad rows raise :class:`InputError` naming the
row (0-based) and the field: ``row 0: field 'text' must be a string, got int 5``.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from pipeline.serving.bundle import TaskBundle


class InputError(ValueError):
    """A prediction input row lacks a field, or a field is not text or is empty.

    ``row`` is the row's 0-based position (its index in a request's ``dataframe_records``);
    callers that know where a row came from (a file's line) say so with ``field`` and ``problem``.
    """

    def __init__(self, row: int, field: str, problem: str) -> None:
        self.row, self.field, self.problem = row, field, problem
        super().__init__(f"row {row}: field {field!r} {problem}")


def _is_missing(value: Any) -> bool:
    """None, NaN, or pandas' NA: what a DataFrame holds where a row has no such key."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or type(value).__name__ == "NAType"


def row_problem(row: Mapping[str, Any], column: str, columns: Sequence[str]) -> str | None:
    """What is wrong with ``row[column]`` as an input text (None when it is a non-empty string)."""
    value = row.get(column) if isinstance(row, Mapping) else None
    if _is_missing(value):
        return f"is missing (this task needs {', '.join(map(repr, columns))})"
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__} {value!r}"[:200]
    if not value.strip():
        return f"is empty (got {value!r})"
    return None


def check_rows(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """Raise an :class:`InputError` for the first row whose input fields are not all non-empty text."""
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise InputError(index, columns[0], f"is missing: the row is a {type(row).__name__}, not an object")
        for column in columns:
            problem = row_problem(row, column, columns)
            if problem:
                raise InputError(index, column, problem)


class TaskPredictor:
    """A task bundle's model, tokenizer, labels and decoder, loaded once, predicting raw rows."""

    def __init__(self, bundle: TaskBundle) -> None:
        self.bundle = bundle
        self.kind = bundle.kind
        self.cfg = bundle.cfg
        self.labels = bundle.labels
        self.tokenizer = bundle.tokenizer()
        self.model = bundle.load_model()

    @property
    def input_columns(self) -> tuple[str, ...]:
        return self.kind.input_columns(self.cfg)

    def records(self, rows: Sequence[Mapping[str, Any]]) -> list[dict]:
        """Canonical unlabelled records, after checking every row has every input field as non-empty text."""
        check_rows(rows, self.input_columns)
        return [
            {"id": str(number), **self.kind.record_from_input(dict(row), self.cfg)}
            for number, row in enumerate(rows, start=1)
        ]

    def predict(self, rows: Sequence[Mapping[str, Any]]) -> list[dict]:
        """One output dict per row, in order: a label, entities, an answer span or triples."""
        records = self.records(rows)
        if not records:
            return []
        features = [self.kind.encode(record, self.tokenizer, self.labels, self.cfg.maxlen) for record in records]
        predictions = self.kind.predict(self.model, records, features, self.labels, self.cfg.batch_size * 2)
        return [self.kind.public_output(prediction) for prediction in predictions]

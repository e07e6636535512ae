"""Predictions on raw input rows from a trained task: what the MLflow model, ``predict`` and ``serve`` share.

A row is a mapping with the kind's input columns (``text``; ``text`` + ``text_b`` for sentence
pairs; ``query`` + ``text`` for span extraction). Bad rows raise :class:`InputError` naming the
row and the field.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from pipeline.bundle import TaskBundle


class InputError(ValueError):
    """A prediction input row lacks a field, or a field is not text."""


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
        """Canonical unlabelled records, after checking every row has every input field as text."""
        records = []
        for number, row in enumerate(rows, start=1):
            for column in self.input_columns:
                value = row.get(column)
                if value is None or (isinstance(value, float) and math.isnan(value)):
                    raise InputError(f"row {number}: field {column!r} is missing (this task needs {self.input_columns})")
                if not isinstance(value, str):
                    raise InputError(f"row {number}: field {column!r} must be text, got {type(value).__name__}")
            records.append({"id": str(number), **self.kind.record_from_input(dict(row), self.cfg)})
        return records

    def predict(self, rows: Sequence[Mapping[str, Any]]) -> list[dict]:
        """One output dict per row, in order: a label, entities, an answer span or triples."""
        records = self.records(rows)
        if not records:
            return []
        features = [self.kind.encode(record, self.tokenizer, self.labels, self.cfg.maxlen) for record in records]
        predictions = self.kind.predict(self.model, records, features, self.labels, self.cfg.batch_size * 2)
        return [self.kind.public_output(prediction) for prediction in predictions]

"""SQuAD JSON (``data[].paragraphs[].qas[].answers[]`` with ``answer_start``) as span records.

One record per question, keeping every distinct gold answer (EM/F1 take the best over them; the
first is the training target). An answer whose ``answer_start`` does not point at its text is
re-located by its first occurrence, or dropped and counted when absent; a question left without
answers (or a SQuAD 2.0 ``is_impossible`` one) is skipped or kept as unanswerable
(``missing_answer``), and counted. ``query_type`` is the question's wh-word bucket.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pipeline.data.readers.base import ReadReport
from pipeline.data.readers.files import DataError, check_unicode, read_json_document
from pipeline.data.readers.query_csv import NO_ANSWER_KEPT, NO_ANSWER_SKIPPED, NOT_IN_TEXT, QuerySource, locate_answer

#: question words that name a query-type bucket, checked in this order ("how many" before "how")
WH_BUCKETS = ("how many", "how much", "what", "which", "who", "whom", "whose", "when", "where", "why", "how")
_WORDS = re.compile(r"[a-z]+")


class SquadSource(QuerySource):
    """``format: squad`` -- SQuAD v1.1/v2.0 JSON files."""

    format: Literal["squad"]


def question_bucket(question: str) -> str:
    """The first wh-word (phrase) of a question, e.g. 'what', 'how many'; 'other' if none."""
    words = " " + " ".join(_WORDS.findall(question.lower())) + " "
    found = [(words.find(f" {wh} "), -len(wh), wh) for wh in WH_BUCKETS if f" {wh} " in words]
    return min(found)[2] if found else "other"


def read_squad(source: SquadSource, path: Path, split: str, report: ReadReport) -> Iterator[dict]:
    """Yield one span record per question; the ``id`` is ``<split>-<question id>``."""
    data = read_json_document(path, "SQuAD JSON", source.encoding)
    articles = _field(data, "data", list, path, "")
    seen: dict[str, str] = {}  # question id -> where it first occurs
    for a, article in enumerate(articles):
        for p, paragraph in enumerate(_field(article, "paragraphs", list, path, f"data[{a}]")):
            where = f"data[{a}].paragraphs[{p}]"
            context = check_unicode(_field(paragraph, "context", str, path, where), f"{path}: {where}.context")
            for q, qa in enumerate(_field(paragraph, "qas", list, path, where)):
                record = _question(qa, context, source, path, f"{where}.qas[{q}]", split, report)
                if record is not None:
                    _check_unique_id(qa["id"], f"{where}.qas[{q}]", seen, path)
                    yield record


def _check_unique_id(qid: str, where: str, seen: dict[str, str], path: Path) -> None:
    """A question id must be non-empty and unique in the file: it names the record in every report."""
    if not qid.strip():
        raise DataError(f"{path}: {where}.id is empty; hint: give every question its own id")
    if qid in seen:
        raise DataError(f"{path}: {where}.id: {qid!r} is also the id of {seen[qid]}; hint: give every question its own id")
    seen[qid] = where


def _question(
    qa: Any, context: str, source: SquadSource, path: Path, where: str, split: str, report: ReadReport
) -> dict | None:
    question = check_unicode(_field(qa, "question", str, path, where), f"{path}: {where}.question").strip()
    qid = check_unicode(_field(qa, "id", str, path, where), f"{path}: {where}.id")
    if not question:
        raise DataError(f"{path}: {where}.question is empty")
    given = qa.get("answers", [])
    if not isinstance(given, list):
        raise DataError(f"{path}: {where}.answers: expected list, got {type(given).__name__}")
    answers: list[dict] = []
    for n, answer in enumerate(given if not qa.get("is_impossible") else []):
        text = _field(answer, "text", str, path, f"{where}.answers[{n}]")
        start = answer.get("answer_start")
        # a negative start would slice from the end (and a bool is an int): neither points at the answer
        valid_start = isinstance(start, int) and not isinstance(start, bool) and start >= 0
        span = (
            {"start": start, "end": start + len(text), "text": text}
            if valid_start and text and context[start : start + len(text)] == text
            else locate_answer(context, text)
        )
        if span is None:
            report.skip(split, f"{NOT_IN_TEXT} (answer dropped)")
        elif span not in answers:
            answers.append(span)
    if not answers:
        if source.missing_answer == "skip":
            report.skip(split, NO_ANSWER_SKIPPED)
            return None
        report.skip(split, NO_ANSWER_KEPT)
    return {
        "id": f"{split}-{qid}",
        "text": context,
        "query": question,
        "answers": answers,
        "query_type": question_bucket(question),
        "template": source.template,
    }


def _field(node: Any, key: str, kind: type, path: Path, where: str) -> Any:
    """``node[key]``, which must be of type ``kind``; else a DataError naming the JSON path."""
    value = node.get(key) if isinstance(node, dict) else None
    if not isinstance(value, kind):
        got = "missing" if value is None else type(value).__name__
        raise DataError(f"{path}: {where + '.' if where else ''}{key}: expected {kind.__name__}, got {got}")
    return value

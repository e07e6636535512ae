"""The error type of invalid params, and the small helpers its messages share."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from pydantic_core import PydanticCustomError


class ConfigError(ValueError):
    """params.yaml is invalid; the message has one line per problem: file:line: key.path: reason; hint."""


def located(errors: list[dict], summary: str) -> PydanticCustomError:
    """An error carrying sub-errors whose ``loc`` is relative to where it is raised (see :func:`_expand`)."""
    return PydanticCustomError("located", "{summary}", {"summary": summary, "errors": errors})


def did_you_mean(word: str, choices: Any) -> str:
    """``" did you mean 'x'?"`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(str(word), [str(choice) for choice in choices], n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


def shown_path(path: str | Path) -> str:
    """``path`` as messages show it: relative to the working directory when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)

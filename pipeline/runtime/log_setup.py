"""How the entry points show the library's log messages: plain lines, notes on stdout, problems on stderr.

Library modules log through ``logging.getLogger(__name__)`` (all under the ``pipeline`` logger) and
never configure logging; every DVC stage (:mod:`pipeline.stages.cli`) and every command in
:mod:`pipeline.commands` calls :func:`configure_logging` first. A message is shown as its bare text
(no logger name, level or time), INFO and below on stdout, WARNING and above on stderr, so the lines
read as they did when the library printed them.

``PIPELINE_LOG_LEVEL`` (``DEBUG``, ``INFO``, the default, ``WARNING``, ``ERROR``, ``CRITICAL`` or a
number) sets the ``pipeline`` logger's level: ``PIPELINE_LOG_LEVEL=WARNING`` keeps only warnings and
errors. Only the ``pipeline`` logger is touched: the root logger and other libraries' loggers keep
their levels and handlers, and records still propagate to the root (where pytest's ``caplog`` sees them).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

LOG_LEVEL_ENV = "PIPELINE_LOG_LEVEL"
DEFAULT_LEVEL = logging.INFO
#: the logger every library module's logger descends from
PACKAGE_LOGGER = "pipeline"


class _StdStreamHandler(logging.StreamHandler):
    """Writes to ``sys.stdout`` or ``sys.stderr`` as it is when a record is emitted (not when the handler
    was made), so a stream redirected or captured later (``contextlib.redirect_stdout``, pytest's
    ``capsys``) receives the messages, like a ``print`` would."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.stream_name = name

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return getattr(sys, self.stream_name)

    @stream.setter
    def stream(self, value: TextIO) -> None:
        """Ignored: the stream is always the current ``sys.<name>``."""


def _below_warning(record: logging.LogRecord) -> bool:
    return record.levelno < logging.WARNING


def parse_level(level: str | int) -> int:
    """A level name (any case) or number as a ``logging`` level; ``ValueError`` for anything else."""
    if isinstance(level, int):
        return level
    text = level.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    value = logging.getLevelName(text.upper())
    if not isinstance(value, int):
        raise ValueError(f"unknown log level {level!r}; one of DEBUG, INFO, WARNING, ERROR, CRITICAL or a number")
    return value


def configure_logging(level: str | int | None = None) -> None:
    """Show the ``pipeline`` loggers' messages as plain lines: below WARNING on stdout, WARNING and above on stderr.

    ``level`` (a name or number) defaults to ``$PIPELINE_LOG_LEVEL``, else INFO; an unknown value in the
    variable is reported on stderr (once) and INFO used. Idempotent: a second call adds no handler, it
    only sets the level again.
    """
    logger = logging.getLogger(PACKAGE_LOGGER)
    invalid = None
    if level is None:
        setting = os.environ.get(LOG_LEVEL_ENV, "").strip()
        try:
            resolved = parse_level(setting) if setting else DEFAULT_LEVEL
        except ValueError as exc:
            resolved, invalid = DEFAULT_LEVEL, f"warning: {LOG_LEVEL_ENV}: {exc}; using INFO"
    else:
        resolved = parse_level(level)
    logger.setLevel(resolved)
    first = not any(isinstance(handler, _StdStreamHandler) for handler in logger.handlers)
    if first:
        formatter = logging.Formatter("%(message)s")
        out = _StdStreamHandler("stdout")
        out.addFilter(_below_warning)
        err = _StdStreamHandler("stderr")
        err.setLevel(logging.WARNING)
        for handler in (out, err):
            handler.setFormatter(formatter)
            logger.addHandler(handler)
    if invalid and first:
        logger.warning(invalid)

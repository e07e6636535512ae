"""How a stage is stopped: SIGINT and SIGTERM raise ``KeyboardInterrupt`` in it, whatever its parent set.

A process started with SIGINT ignored (a background job of a non-interactive shell, ``make run &``
in a script) inherits the ignore: Python then installs no Ctrl-C handler, ``kill -INT`` does
nothing and the stage finishes as if it had never been interrupted, so DVC records its outputs.
Every stage entry point calls :func:`install_stop_handlers` first (SIGHUP is left alone, so
``nohup`` keeps working).

Fault points: ``PIPELINE_INTERRUPT_AT=<point>[:<n>]`` makes the stage send itself
``PIPELINE_INTERRUPT_SIGNAL`` (``INT``, the default, or ``TERM``) the ``n``-th time (default 1) it
reaches ``<point>`` (one of :data:`POINTS`). The fault tests use it to stop a real stage at an exact
moment instead of racing the clock on a slow machine; without the variable :func:`reached` does nothing.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections import Counter
from typing import Any

logger = logging.getLogger(__name__)

#: the named moments a stage can be stopped at (see the module docstring)
POINTS = (
    "loaded",            # train: data read and encoded, before the model is built
    "batch",             # train: after a training batch (mid-epoch)
    "dev_evaluation",    # train: dev predictions made, history not yet written
    "checkpoint_write",  # train: the epoch's checkpoint written, state.json not yet
    "model_logging",     # evaluate: metrics written, the model being logged to MLflow
)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_visits: Counter[str] = Counter()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def install_stop_handlers() -> None:
    """Make SIGINT and SIGTERM raise ``KeyboardInterrupt`` in the main thread (even if inherited as ignored)."""
    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            signal.signal(signum, _interrupt)


def fault_point() -> tuple[str, int] | None:
    """The ``(point, n)`` named by ``PIPELINE_INTERRUPT_AT``, if set."""
    spec = os.environ.get("PIPELINE_INTERRUPT_AT", "").strip()
    if not spec:
        return None
    point, _, count = spec.partition(":")
    if point not in POINTS:
        raise ValueError(f"PIPELINE_INTERRUPT_AT: unknown point {point!r}; one of {', '.join(POINTS)}")
    return point, int(count or 1)


def wants(point: str) -> bool:
    """Whether ``PIPELINE_INTERRUPT_AT`` names ``point`` (cheap hooks such as a per-batch callback are only added then)."""
    target = fault_point()
    return target is not None and target[0] == point


def reached(point: str) -> None:
    """Mark ``point``; send this process the configured signal if it is the configured visit."""
    target = fault_point()
    if target is None or target[0] != point:
        return
    _visits[point] += 1
    if _visits[point] == target[1]:
        name = os.environ.get("PIPELINE_INTERRUPT_SIGNAL", "INT").upper().removeprefix("SIG")
        message = f"[fault] stopping at {point} (visit {target[1]}) with SIG{name}"
        if logger.hasHandlers():
            logger.error(message)
        else:  # logging not configured anywhere: the line must still be seen before the signal stops the process
            sys.stderr.write(message + "\n")
            sys.stderr.flush()
        os.kill(os.getpid(), getattr(signal, f"SIG{name}"))

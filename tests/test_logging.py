"""configure_logging: the library's messages as plain lines, INFO on stdout and WARNING on stderr, at the
level ``PIPELINE_LOG_LEVEL`` names, set up once however often it is called; and the fault point's line
reaches stderr even where logging was never configured."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from typing import Iterator

import pytest

from pipeline.config.paths import PROJECT_ROOT
from pipeline.runtime.log_setup import LOG_LEVEL_ENV, PACKAGE_LOGGER, configure_logging

pytestmark = pytest.mark.unit

log = logging.getLogger("pipeline.x")


@pytest.fixture(autouse=True)
def fresh_pipeline_logger(monkeypatch: pytest.MonkeyPatch) -> Iterator[logging.Logger]:
    """The ``pipeline`` logger without handlers or level during the test, as it was afterwards."""
    monkeypatch.delenv(LOG_LEVEL_ENV, raising=False)
    logger = logging.getLogger(PACKAGE_LOGGER)
    handlers, level = logger.handlers[:], logger.level
    logger.handlers.clear()
    logger.setLevel(logging.NOTSET)
    yield logger
    logger.handlers[:] = handlers
    logger.setLevel(level)


def emit_all() -> None:
    log.debug("a debug line")
    log.info("an info line")
    log.warning("warning: a warning line")
    log.error("an error line")


def test_info_goes_to_stdout_and_warnings_to_stderr_as_plain_text(capsys: pytest.CaptureFixture) -> None:
    configure_logging()
    emit_all()
    shown = capsys.readouterr()
    assert shown.out == "an info line\n"
    assert shown.err == "warning: a warning line\nan error line\n"


@pytest.mark.parametrize(
    ("setting", "out", "err"),
    [
        ("WARNING", "", "warning: a warning line\nan error line\n"),
        ("error", "", "an error line\n"),
        ("debug", "a debug line\nan info line\n", "warning: a warning line\nan error line\n"),
        ("10", "a debug line\nan info line\n", "warning: a warning line\nan error line\n"),
    ],
)
def test_level_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, setting: str, out: str, err: str
) -> None:
    monkeypatch.setenv(LOG_LEVEL_ENV, setting)
    configure_logging()
    emit_all()
    assert capsys.readouterr() == (out, err)


def test_an_explicit_level_wins_and_a_bad_variable_falls_back_to_info(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv(LOG_LEVEL_ENV, "WARNING")
    configure_logging("INFO")
    log.info("an info line")
    assert capsys.readouterr().out == "an info line\n"
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("loud")

    logging.getLogger(PACKAGE_LOGGER).handlers.clear()
    monkeypatch.setenv(LOG_LEVEL_ENV, "loud")
    configure_logging()
    log.info("an info line")
    shown = capsys.readouterr()
    assert shown.out == "an info line\n"
    assert shown.err.startswith(f"warning: {LOG_LEVEL_ENV}: unknown log level 'loud'") and shown.err.count("\n") == 1


def test_calling_it_again_adds_no_handler(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    configure_logging()
    handlers = logging.getLogger(PACKAGE_LOGGER).handlers[:]
    monkeypatch.setenv(LOG_LEVEL_ENV, "WARNING")
    configure_logging()
    configure_logging()
    assert logging.getLogger(PACKAGE_LOGGER).handlers == handlers and len(handlers) == 2
    emit_all()
    assert capsys.readouterr() == ("", "warning: a warning line\nan error line\n")  # each line once, new level


def test_other_loggers_are_left_alone(capsys: pytest.CaptureFixture) -> None:
    root, other = logging.getLogger(), logging.getLogger("some_library")
    before = (root.level, root.handlers[:], other.level, other.handlers[:])
    configure_logging("DEBUG")
    assert (root.level, root.handlers[:], other.level, other.handlers[:]) == before
    other.info("not shown")
    assert capsys.readouterr().out == ""


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("PIPELINE_")}
    return subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env={**environ, **env},
                          capture_output=True, text=True, timeout=60)


def test_streams_and_level_in_a_real_process() -> None:
    code = ("import logging\nfrom pipeline.runtime.log_setup import configure_logging\n"
            "configure_logging(); configure_logging()\nlog = logging.getLogger('pipeline.x')\n"
            "log.info('an info line'); log.warning('warning: a warning line')\n")
    shown = run_python(code)
    assert (shown.returncode, shown.stdout, shown.stderr) == (0, "an info line\n", "warning: a warning line\n")
    quiet = run_python(code, PIPELINE_LOG_LEVEL="WARNING")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "warning: a warning line\n")


@pytest.mark.parametrize("configured", [False, True])
def test_the_fault_point_line_reaches_stderr_configured_or_not(configured: bool) -> None:
    code = ("from pipeline.runtime import interrupts\n"
            + ("from pipeline.runtime.log_setup import configure_logging\nconfigure_logging()\n" if configured else "")
            + "interrupts.reached('loaded')\n")
    stopped = run_python(code, PIPELINE_INTERRUPT_AT="loaded", PIPELINE_INTERRUPT_SIGNAL="TERM",
                         PIPELINE_LOG_LEVEL="WARNING")
    assert stopped.returncode == -15
    assert stopped.stderr == "[fault] stopping at loaded (visit 1) with SIGTERM\n" and stopped.stdout == ""

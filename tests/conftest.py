"""Shared fixtures (paths to the real datasets and vocabularies beside the project) and the test tiers.

Every test has exactly one tier marker (registered in pyproject.toml): ``unit`` (no TensorFlow, seconds;
``make test-fast``), ``model`` (a small TensorFlow/bert4keras model or a real tokenizer; ``make test-model``)
or ``e2e`` (the real DVC pipeline, stage subprocesses or MLflow servers and stores end to end). Collection
fails on a test without one or with several, and ``pytest -m unit`` fails if TensorFlow got imported.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.helpers import minilm_wheel_vocab

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"

TIERS = ("unit", "model", "e2e")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = SHARED / "data"
    if not path.is_dir():
        pytest.fail(f"{path} is missing: the datasets must sit beside the project (../shared/data)")
    return path


@pytest.fixture(scope="session")
def zh_vocab() -> Path:
    return SHARED / "models" / "chinese-vocab" / "vocab.txt"


@pytest.fixture(scope="session")
def en_vocab() -> Path:
    return minilm_wheel_vocab()


# --- tiers ---------------------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)  # before -m deselects: every collected test is checked
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wrong = []
    for item in items:
        tiers = sorted({mark.name for mark in item.iter_markers() if mark.name in TIERS})
        if len(tiers) != 1:
            wrong.append(f"  {item.nodeid}: {'no tier' if not tiers else 'several tiers: ' + ', '.join(tiers)}")
    if wrong:
        raise pytest.UsageError(
            f"{len(wrong)} test(s) need exactly one tier marker, one of {', '.join(TIERS)} "
            "(pytestmark = pytest.mark.unit for a whole file, @pytest.mark.unit for one test):\n" + "\n".join(wrong)
        )


def unit_tier_only(config: pytest.Config) -> bool:
    return (config.getoption("markexpr", "") or "").strip() == "unit"


#: where TensorFlow was first imported in a ``-m unit`` session (the test that imported it)
TF_IMPORTED_BY: list[str] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    before = "tensorflow" in sys.modules
    yield
    if not before and "tensorflow" in sys.modules and unit_tier_only(item.config):
        TF_IMPORTED_BY.append(item.nodeid)


def tensorflow_in_unit_tier(config: pytest.Config) -> str | None:
    """Where and how a ``-m unit`` session imported TensorFlow (None: it did not, or another tier was selected)."""
    if not unit_tier_only(config) or "tensorflow" not in sys.modules:
        return None
    if TF_IMPORTED_BY:
        return f"first imported by {TF_IMPORTED_BY[0]}: mark that test 'model', or make it TensorFlow-free"
    return ("imported while collecting the test files: a test module imports it at the top; "
            "import it inside the tests or fixtures that need it")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The unit tier is TensorFlow-free: ``pytest -m unit`` fails if anything imported TensorFlow."""
    if tensorflow_in_unit_tier(session.config):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    where = tensorflow_in_unit_tier(config)
    if where:
        terminalreporter.write_sep("=", "the unit tier imported TensorFlow", red=True)
        terminalreporter.write_line(where)

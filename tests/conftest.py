"""Shared fixtures (paths to the real datasets and vocabularies beside the project) and the test tiers.

Every test has exactly one tier marker (registered in pyproject.toml): ``unit`` (no TensorFlow, seconds;
``make test-fast``), ``model`` (a small TensorFlow/bert4keras model or a real tokenizer; ``make test-model``)
or ``e2e`` (the real DVC pipeline, stage subprocesses or MLflow servers and stores end to end). Collection
fails on a test without one or with several, and ``pytest -m unit`` fails if TensorFlow got imported.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
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


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A folder for one test module's shared projects, removed when the module ends.

    Module-wide projects (trained models, MLflow stores) run to hundreds of MB each; pytest would keep them
    all until the session ends, so a full run would need several GB of free disk at its peak.
    """
    path = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    yield path
    shutil.rmtree(path, ignore_errors=True)


MIN_FREE_GB = 2.0  # the largest module's projects plus the stores of the test running beside them


def pytest_sessionstart(session: pytest.Session) -> None:
    """Stop at once, with the reason, when the temporary folder's disk cannot hold the suite's projects."""
    import tempfile

    where = Path(tempfile.gettempdir())
    free_gb = shutil.disk_usage(where).free / 1e9
    if free_gb < MIN_FREE_GB and not unit_tier_only(session.config):
        raise pytest.UsageError(
            f"only {free_gb:.1f} GB free on the disk of {where}; the model and e2e tests need about "
            f"{MIN_FREE_GB:.0f} GB there (set TMPDIR to a roomier disk, or run `make test-fast`)")


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

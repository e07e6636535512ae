"""What every dataset format shares: split file names, split carving, a report of skipped rows."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pydantic import Field, model_validator

from pipeline.schema import StrictModel

SPLITS = ("train", "dev", "test")


class CarveSpec(StrictModel):
    """Carve missing splits out of train, deterministically: a seeded shuffle, then slices."""

    dev_fraction: float = Field(ge=0.0, lt=1.0)
    test_fraction: float = Field(ge=0.0, lt=1.0)
    seed: int


class DataSource(StrictModel):
    """Where a task's data lies: ``dir`` (relative to ``data_root``) and one file per split."""

    dir: str
    train: str
    dev: str | None = None
    test: str | None = None
    carve: CarveSpec | None = None
    label_names: dict[str, str] | None = None

    @model_validator(mode="after")
    def _every_split_has_a_source(self) -> "DataSource":
        carve = self.carve
        if self.dev is None and not (carve and carve.dev_fraction > 0):
            raise ValueError("no dev split: give 'dev' or 'carve.dev_fraction' > 0")
        if self.test is None and not (carve and carve.test_fraction > 0):
            raise ValueError("no test split: give 'test' or 'carve.test_fraction' > 0")
        return self


@dataclass
class ReadReport:
    """Counts of rows a reader skipped, by split and reason; written next to the prepared data."""

    skipped: dict[str, Counter] = field(default_factory=dict)

    def skip(self, split: str, reason: str) -> None:
        self.skipped.setdefault(split, Counter())[reason] += 1

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {split: dict(counts) for split, counts in self.skipped.items()}

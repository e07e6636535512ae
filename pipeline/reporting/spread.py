"""The spread of one figure over the seeds of a task: what every multi-seed figure is shown with."""

from __future__ import annotations

import statistics
from typing import Sequence


def spread(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for a single value), min and max of ``values``."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}

"""Paired resampling over test examples: is B's metric really above A's, or is the gap noise?

Pure statistics on predictions already made (no I/O, no MLflow, no TensorFlow). A side is one run or a
group of runs (seeds); every run holds one prediction per test example, all in the same order, and a
side's value is the mean of its runs' metric. The metric is any ``score(records, predictions) -> float``
(a kind's :meth:`~pipeline.kinds.common.base.TaskKind.score` and one of its keys), recomputed on each
resample, so corpus-level metrics such as entity F1 are resampled correctly.

* Confidence interval: paired bootstrap (``scipy.stats.bootstrap``, percentile method) of
  mean(B) - mean(A) over resampled example indices, every run of both sides scored on the same resample.
* p-value: with as many runs on each side (runs paired by position), a two-sided paired approximate
  randomization test (``scipy.stats.permutation_test``, ``permutation_type="samples"``): per example,
  A's and B's predictions swap sides at random. With group sizes that differ no such swap exists, and
  the p-value is the paired bootstrap's (:func:`bootstrap_p_value`).
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import fmean
from typing import Callable, Sequence

import numpy as np
from scipy import stats

#: one run's predictions, one per test example
Predictions = Sequence[dict]
#: the metric of one run's predictions against the gold records
Scorer = Callable[[Sequence[dict], Sequence[dict]], float]

PERMUTATION_TEST = "paired approximate randomization"
BOOTSTRAP_TEST = "paired bootstrap (the sides have different numbers of runs)"
#: resamples evaluated per scipy batch (memory: batch x examples indices)
BATCH = 100


@dataclass(frozen=True)
class Comparison:
    """The difference B - A of one metric, with its confidence interval and p-value."""

    metric: str
    a: float  #: mean of A's runs
    b: float  #: mean of B's runs
    a_runs: tuple[float, ...]  #: each of A's runs
    b_runs: tuple[float, ...]
    delta: float  #: b - a
    ci_low: float
    ci_high: float
    p_value: float
    p_test: str  #: which test gave the p-value (:data:`PERMUTATION_TEST` or :data:`BOOTSTRAP_TEST`)
    n_examples: int
    n_resamples: int
    confidence: float
    seed: int

    @property
    def runs_a(self) -> int:
        return len(self.a_runs)

    @property
    def runs_b(self) -> int:
        return len(self.b_runs)

    @property
    def better(self) -> str | None:
        """``"B"`` or ``"A"`` when the confidence interval excludes 0 on that side, else None."""
        if self.ci_low > 0:
            return "B"
        if self.ci_high < 0:
            return "A"
        return None


def planned_steps(n_examples: int, runs_a: int, runs_b: int, n_resamples: int) -> int:
    """How many times :func:`paired_difference` evaluates its statistic (for a progress bar's total)."""
    if runs_a != runs_b:
        return n_resamples
    swaps = 2**n_examples if n_examples < 63 else n_resamples  # scipy enumerates all swaps when there are fewer
    return n_resamples + 1 + min(n_resamples, swaps)


def paired_difference(
    records: Sequence[dict],
    runs_a: Sequence[Predictions],
    runs_b: Sequence[Predictions],
    score: Scorer,
    metric: str,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    on_step: Callable[[], object] | None = None,
) -> Comparison:
    """Compare ``runs_b`` with ``runs_a`` (each a list of per-run predictions of ``records``) on ``score``.

    ``on_step`` is called once per evaluation of the statistic (:func:`planned_steps` in all), e.g. a
    progress bar's ``update``. The same ``seed`` gives the same interval and p-value.
    """
    n = len(records)
    _check(n, runs_a, runs_b, n_resamples, confidence)
    step = on_step or (lambda: None)

    def side(runs: Sequence[Predictions], index: np.ndarray) -> float:
        chosen = [records[i] for i in index]
        return fmean(score(chosen, [run[i] for i in index]) for run in runs)

    def resampled_difference(index: np.ndarray) -> float:
        step()
        index = index.astype(np.intp)
        return side(runs_b, index) - side(runs_a, index)

    a_runs = tuple(float(score(records, run)) for run in runs_a)
    b_runs = tuple(float(score(records, run)) for run in runs_b)
    boot = stats.bootstrap(
        (np.arange(n),), resampled_difference, n_resamples=n_resamples, vectorized=False, method="percentile",
        confidence_level=confidence, batch=BATCH, rng=np.random.default_rng(seed),
    )  # fmt: skip
    if len(runs_a) == len(runs_b):
        p_value = _randomization_p_value(records, runs_a, runs_b, score, n_resamples, seed, step)
        p_test = PERMUTATION_TEST
    else:
        p_value = bootstrap_p_value(boot.bootstrap_distribution)
        p_test = BOOTSTRAP_TEST
    a, b = fmean(a_runs), fmean(b_runs)
    return Comparison(
        metric=metric, a=a, b=b, a_runs=a_runs, b_runs=b_runs, delta=b - a,
        ci_low=float(boot.confidence_interval.low), ci_high=float(boot.confidence_interval.high),
        p_value=p_value, p_test=p_test, n_examples=n, n_resamples=n_resamples, confidence=confidence, seed=seed,
    )  # fmt: skip


def bootstrap_p_value(differences: Sequence[float] | np.ndarray) -> float:
    """Two-sided p-value of "no difference" from a bootstrap distribution of B - A: twice the smaller
    share of resampled differences at or below 0 and at or above 0 (each share counting the observed
    difference too, +1 / +1, so it is never 0), at most 1."""
    values = np.asarray(differences, dtype=float)
    below = (np.count_nonzero(values <= 0) + 1) / (values.size + 1)
    above = (np.count_nonzero(values >= 0) + 1) / (values.size + 1)
    return float(min(1.0, 2 * min(below, above)))


def _randomization_p_value(
    records: Sequence[dict],
    runs_a: Sequence[Predictions],
    runs_b: Sequence[Predictions],
    score: Scorer,
    n_resamples: int,
    seed: int,
    step: Callable[[], object],
) -> float:
    """Two-sided p-value of the paired approximate randomization test; runs paired by position.

    Each run pair's predictions are pooled (A's at ``i``, B's at ``n + i``); a sample holds, per example,
    the pooled index of the prediction that plays A (``x``) or B (``y``), and scipy swaps them per example,
    for all run pairs at once.
    """
    n = len(records)
    pooled = [[*a, *b] for a, b in zip(runs_a, runs_b)]

    def side(index: np.ndarray) -> float:
        return fmean(score(records, [run[i] for i in index]) for run in pooled)

    def difference(x: np.ndarray, y: np.ndarray) -> float:
        step()
        return side(y.astype(np.intp)) - side(x.astype(np.intp))

    result = stats.permutation_test(
        (np.arange(n), np.arange(n, 2 * n)), difference, permutation_type="samples", vectorized=False,
        n_resamples=n_resamples, alternative="two-sided", batch=BATCH, rng=np.random.default_rng(seed),
    )  # fmt: skip
    return float(result.pvalue)


def _check(n: int, runs_a: Sequence[Predictions], runs_b: Sequence[Predictions], resamples: int, level: float) -> None:
    if n == 0:
        raise ValueError("no test examples to compare")
    if not runs_a or not runs_b:
        raise ValueError("each side needs at least one run")
    if any(len(run) != n for run in (*runs_a, *runs_b)):
        raise ValueError(f"every run needs one prediction per test example ({n})")
    if resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {resamples}")
    if not 0 < level < 1:
        raise ValueError(f"confidence must lie between 0 and 1, got {level}")

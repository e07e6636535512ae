"""``sweeps:`` entries: a search space over params keys, searched by workers on any number of machines (TF-free).

    sweeps:
      mrpc-lr:
        task: mrpc                       # the objective: this task's mean dev score over its seeds
        sampler: tpe                     # tpe (Optuna's TPE) | grid (every combination of choices, once)
        trials: 8                        # tpe: trials to complete; grid: at most this many points
        space:
          tasks.mrpc.learning_rate: {low: 1.0e-5, high: 1.0e-4, log: true}
          tasks.mrpc.warmup_proportion: {choices: [0.06, 0.1]}

A key is ``tasks.<task>.<hyper-parameter>`` or ``defaults.<hyper-parameter>`` (a key of :class:`TaskConfig`
that a task may set). :func:`sweep_problems` lists what is wrong, each as ``(key path, message)``.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Any, Literal, Mapping, Union

from pydantic import Discriminator, Field, Tag, model_validator

from pipeline.config.strict_model import StrictModel

#: what a sweep may vary: hyper-parameters of a task (a trial is a DVC experiment: ``-S key=value``)
SWEEPABLE = ("batch_size", "epochs", "learning_rate", "warmup_proportion", "weight_decay", "dropout", "maxlen",
             "layerwise_lr_decay", "unfreeze_after_epochs")


class Interval(StrictModel):
    """A float range; ``log``: sampled on a log scale (learning rates)."""

    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> "Interval":
        if not self.low < self.high:
            raise ValueError(f"low must be below high (got {self.low} and {self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log scale needs low > 0 (got {self.low})")
        return self


class Choices(StrictModel):
    """A list of values, tried as they are."""

    choices: list[Union[int, float, str]] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> "Choices":
        if len(set(map(repr, self.choices))) != len(self.choices):
            raise ValueError(f"choices repeat a value (got {self.choices})")
        return self


def _kind(value: Any) -> str:
    return "choices" if isinstance(value, Choices) or (isinstance(value, dict) and "choices" in value) else "interval"


#: a list of values when the mapping has ``choices``, else an interval (one error message, not one per kind)
Dimension = Annotated[Union[Annotated[Interval, Tag("interval")], Annotated[Choices, Tag("choices")]],
                      Discriminator(_kind)]


class SweepConfig(StrictModel):
    """One sweep: the task whose mean dev score it maximises, the sampler, the budget and the space."""

    task: str
    sampler: Literal["tpe", "grid"] = "tpe"
    trials: int = Field(ge=1)
    space: dict[str, Dimension] = Field(min_length=1)
    seed: int = 42

    def grid(self) -> list[dict[str, Any]]:
        """Every combination of the choices (a grid sweep), in a fixed order."""
        keys = sorted(self.space)
        values = [self.space[key].choices for key in keys]  # type: ignore[union-attr]
        return [dict(zip(keys, combination)) for combination in itertools.product(*values)]


def sweep_problems(sweeps: Mapping[str, SweepConfig], tasks: Mapping[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    """Unknown tasks, keys a sweep cannot vary, a key of another task, a grid over an interval."""
    problems: list[tuple[tuple[str, ...], str]] = []
    for name, sweep in sweeps.items():
        loc = ("sweeps", name)
        if sweep.task not in tasks:
            problems.append((loc + ("task",), f"unknown task {sweep.task!r}; defined tasks: {', '.join(tasks)}"))
        for key, dimension in sweep.space.items():
            parts = key.split(".")
            where = parts[1] if len(parts) == 3 and parts[0] == "tasks" else None
            if not ((len(parts) == 3 and parts[0] == "tasks") or (len(parts) == 2 and parts[0] == "defaults")) \
                    or parts[-1] not in SWEEPABLE:
                problems.append((loc + ("space", key), f"not a key a sweep can vary; hint: 'tasks.<task>.<key>' or "
                                                      f"'defaults.<key>' with <key> one of {', '.join(SWEEPABLE)}"))
            elif where is not None and where != sweep.task:
                problems.append((loc + ("space", key), f"varies task {where!r}, but the sweep scores {sweep.task!r}"))
            if sweep.sampler == "grid" and isinstance(dimension, Interval):
                problems.append((loc + ("space", key), "a grid needs a list of values; hint: '{choices: [...]}', or "
                                                      "'sampler: tpe' to sample the interval"))
    return problems

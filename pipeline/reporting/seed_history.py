"""A task's configurations in MLflow, with each seed's test score, and the plot of their seed spreads.

A configuration is one seed-group parent run of the task (tagged ``seed_group``; each seed a child run
tagged ``seed`` with its own ``test.<metric>``), or, for a task trained with one seed, its top-level
task run with ``test.<metric>``. :func:`configurations` lists them oldest first from one store query;
:func:`plot_seed_scores` draws the last few of them, one dot per seed and the mean with its standard
deviation, labelled by run, date and the params that changed since the configuration before. Reads
MLflow only (logs nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Sequence

from pipeline.reporting.plots import _save, plt
from pipeline.reporting.spread import spread

#: configurations shown in a task's plot
LAST = 5
#: a task's seed-spread plot, in ``reports/<task>/``
PLOT_NAME = "seed_scores.png"
PARENT = "mlflow.parentRunId"
COMMIT = "mlflow.source.git.commit"


@dataclass(frozen=True)
class Configuration:
    """One configuration of a task: its (parent) run and each seed's primary test score."""

    run_id: str
    name: str
    started: int  #: start time, ms since the epoch
    scores: dict[str, float]  #: ``{seed: test score}``, by seed
    params: dict[str, str] = field(default_factory=dict)
    commit: str = ""

    @property
    def mean(self) -> float:
        return spread(list(self.scores.values()))["mean"]

    @property
    def std(self) -> float:
        return spread(list(self.scores.values()))["std"]

    @property
    def short(self) -> str:
        """How the summary names it: run name and the run id's first 8 characters."""
        return f"{self.name} {self.run_id[:8]}".strip()

    @property
    def date(self) -> str:
        return datetime.fromtimestamp(self.started / 1000).strftime("%Y-%m-%d %H:%M")


# --- from the store ------------------------------------------------------------------------------------------


def task_runs(client: Any, experiment_id: str, task: str) -> Iterator[Any]:
    """Every active run tagged ``task=<task>`` in the experiment, page by page."""
    token = None
    while True:
        page = client.search_runs([experiment_id], filter_string=f"tags.task = '{task}'", page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def configurations(client: Any, experiment_id: str, task: str, metric: str) -> list[Configuration]:
    """The task's configurations with at least one seed scored on ``test.<metric>``, oldest first."""
    key = f"test.{metric}"
    runs = list(task_runs(client, experiment_id, task))
    children: dict[str, dict[str, float]] = {}
    for run in runs:
        parent = run.data.tags.get(PARENT)
        if parent and key in run.data.metrics:
            children.setdefault(parent, {})[run.data.tags.get("seed", "")] = run.data.metrics[key]
    found = []
    for run in runs:
        tags = run.data.tags
        if "seed_group" in tags:
            scores = children.get(run.info.run_id, {})
        elif PARENT not in tags and key in run.data.metrics:
            scores = {run.data.params.get("seed", ""): run.data.metrics[key]}
        else:
            continue
        if scores:
            ordered = dict(sorted(scores.items(), key=lambda item: _seed_order(item[0])))
            found.append(Configuration(run.info.run_id, run.info.run_name or "", run.info.start_time or 0, ordered,
                                       dict(run.data.params), tags.get(COMMIT, "")))  # fmt: skip
    return sorted(found, key=lambda c: (c.started, c.run_id))


def _seed_order(seed: str) -> tuple[int, str]:
    return (int(seed), "") if seed.isdigit() else (0, seed)


def best_earlier(history: Sequence[Configuration]) -> Configuration | None:
    """The configuration before the latest with the highest mean score (the newer on a tie); None if none."""
    earlier = list(history[:-1])
    return max(reversed(earlier), key=lambda c: c.mean) if earlier else None


# --- what differs ---------------------------------------------------------------------------------------------


def changes(previous: Configuration | None, current: Configuration, limit: int = 2, width: int = 22) -> list[str]:
    """What changed since ``previous``: up to ``limit`` params as ``name: old→new`` (values cut to
    ``width``), else the git commit, else "same params"; "first" without a previous configuration."""
    if previous is None:
        return ["first"]
    keys = sorted(key for key in {*previous.params, *current.params}
                  if previous.params.get(key) != current.params.get(key))  # fmt: skip
    if not keys:
        if previous.commit != current.commit and current.commit:
            return [f"code {current.commit[:7]}"]
        return ["same params"]
    lines = [f"{key}: {_cut(previous.params.get(key, '-'), width)}→{_cut(current.params.get(key, '-'), width)}"
             for key in keys[:limit]]  # fmt: skip
    return lines + ([f"+{len(keys) - limit} more"] if len(keys) > limit else [])


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def axis_label(history: Sequence[Configuration], index: int) -> str:
    """The x label of configuration ``index``: short run name, date, what changed since the one before."""
    current = history[index]
    previous = history[index - 1] if index > 0 else None
    return "\n".join([current.short, current.date, *changes(previous, current)])


# --- the plot -----------------------------------------------------------------------------------------------


def plot_seed_scores(task: str, metric: str, history: Sequence[Configuration], path: Path,
                     last: int = LAST) -> Path:  # fmt: skip
    """The last ``last`` configurations of ``history`` (oldest first): one dot per seed (a colour per seed,
    left of the tick), the mean with its standard deviation (black, right of it), each configuration
    labelled by :func:`axis_label`."""
    shown = range(max(0, len(history) - last), len(history))
    seeds = sorted({seed for index in shown for seed in history[index].scores}, key=_seed_order)
    colours = {seed: plt.get_cmap("tab10")(i % 10) for i, seed in enumerate(seeds)}
    fig, ax = plt.subplots(figsize=(max(5.0, 2.1 * len(shown) + 1.5), 4.8))
    for x, index in enumerate(shown):
        config = history[index]
        for seed, value in config.scores.items():
            ax.scatter(x - 0.12, value, color=colours[seed], s=30, zorder=3, label=f"seed {seed}" if seed else "run")
        ax.errorbar(x + 0.12, config.mean, yerr=config.std, fmt="_", color="black", markersize=16, capsize=4)
        ax.annotate(f"{config.mean:.4f}", (x + 0.12, config.mean), xytext=(10, -3), textcoords="offset points",
                    fontsize=8)  # fmt: skip
    handles = dict(zip(*reversed(ax.get_legend_handles_labels())))  # one entry per seed
    ax.legend(handles.values(), handles.keys(), fontsize=8, loc="best")
    ax.set_xticks(range(len(shown)), [axis_label(history, index) for index in shown], fontsize=8)
    ax.set_xlim(-0.6, len(shown) - 0.4)
    ax.set_ylabel(f"test {metric}")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"{task}: test {metric} per seed\nlast {len(shown)} of {len(history)} configurations; "
                 "black: mean ± std", fontsize=10)  # fmt: skip
    fig.tight_layout()
    return _save(fig, path)

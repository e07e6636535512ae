"""Which sweep a run belongs to: the tags ``sweep`` and ``sweep_point`` of runs of DVC experiments.

A sweep is a grid of DVC experiments (``dvc exp run --queue -S 'tasks.sst2.learning_rate=2e-5,5e-5'``
then ``dvc queue start``). Each experiment's runs carry

- ``sweep``: params' ``sweep`` when set (``-S sweep=lr-grid``), else ``exp-<baseline commit>``: every
  experiment started from one commit is one sweep;
- ``sweep_point``: what the experiment changes in params.yaml against that commit
  (``tasks.sst2.learning_rate=2e-05``; ``baseline`` when nothing).

:func:`pipeline.reporting.sweeps.sweep_section` ranks the points of each sweep in the summary.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from pipeline.config.paths import DEFAULT_PARAMS
from pipeline.config.schema import Params
from pipeline.config.workspace import owning_project
from pipeline.tracking.store import flatten

#: what DVC puts in the environment of an experiment's stages: the commit it started from
BASELINE_ENV = "DVC_EXP_BASELINE_REV"
#: the tags this module sets (also on a kept run that an experiment re-evaluates)
SWEEP_TAGS = ("sweep", "sweep_point")
#: ``sweep_point`` of an experiment that changes nothing
UNCHANGED = "baseline"


def _flat(data: Any) -> dict[str, Any]:
    return flatten(data) if isinstance(data, dict) else {}


def baseline_params(revision: str, root: Path) -> dict | None:
    """params.yaml as committed at ``revision`` in the project owning ``root`` (None if git cannot say)."""
    from ruamel.yaml import YAML, YAMLError

    try:
        shown = subprocess.run(["git", "show", f"{revision}:params.yaml"], cwd=owning_project(root),
                               capture_output=True, text=True, timeout=20, check=True).stdout
        loaded = YAML(typ="safe").load(shown)
    except (OSError, subprocess.SubprocessError, YAMLError):
        return None
    return loaded if isinstance(loaded, dict) else None


def changed_params(now: dict, before: dict) -> dict[str, Any]:
    """Dotted keys whose value differs between two params.yaml documents (``sweep`` aside);
    a key that one of them lacks counts, with its value or None."""
    flat_now, flat_before = _flat(now), _flat(before)
    keys = sorted(set(flat_now) | set(flat_before))
    return {key: flat_now.get(key) for key in keys
            if key != "sweep" and flat_now.get(key) != flat_before.get(key)}


def point_label(changes: dict[str, Any]) -> str:
    """``key=value, key=value`` (``baseline`` for no change)."""
    return ", ".join(f"{key}={value}" for key, value in changes.items()) or UNCHANGED


def sweep_tags(params: Params, params_file: Path = DEFAULT_PARAMS) -> dict[str, str]:
    """``sweep`` and ``sweep_point`` of a run of a DVC experiment or of params naming a ``sweep``;
    nothing for a plain ``dvc repro``."""
    from pipeline.config.yaml_source import read_yaml

    baseline = os.environ.get(BASELINE_ENV)
    tags = {}
    if params.sweep or baseline:
        tags["sweep"] = params.sweep or f"exp-{baseline[:7]}"  # type: ignore[index]
    if baseline:
        before = baseline_params(baseline, params_file.parent)
        if before is not None:
            tags["sweep_point"] = point_label(changed_params(read_yaml(params_file), before))[:5000]
    return tags

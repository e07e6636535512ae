"""``distribute:`` of a task (TF-free): data-parallel training through TensorFlow's ``tf.distribute``.

``strategy: none`` (the default) trains on one device. ``mirrored`` replicates the model on every visible
GPU of the machine (``tf.distribute.MirroredStrategy``), or, with ``cpu_replicas: N``, on N logical
devices carved out of the CPU (what the tests and ``benchmarks/replicas.py`` use on a machine without a
GPU). ``multi_worker`` spans machines (``tf.distribute.MultiWorkerMirroredStrategy``): every worker runs
the train stage with its own ``TF_CONFIG``; the chief writes the outputs and logs to MLflow, the others
keep theirs under ``.workers/``. The global ``batch_size`` is split across the replicas, so a
configuration trains on the same batches whatever the number of devices.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.config.strict_model import StrictModel

class Distribute(StrictModel):
    """How one training spreads over devices and machines."""

    strategy: Literal["none", "mirrored", "multi_worker"] = "none"
    #: mirrored only: replicas on this many logical CPU devices instead of the GPUs
    cpu_replicas: int | None = Field(default=None, ge=2, le=64)


def distribution_problems(distribute: Distribute, adversarial: object | None) -> list[tuple[str, str]]:
    """``(key, message)`` for each ``distribute`` setting that cannot work with the task's other options."""
    problems = []
    if distribute.cpu_replicas is not None and distribute.strategy != "mirrored":
        problems.append(("distribute.cpu_replicas", f"applies to strategy 'mirrored' only, not "
                                                     f"'{distribute.strategy}'; hint: remove it, or set "
                                                     "'strategy: mirrored'"))
    if adversarial is not None and distribute.strategy != "none":
        problems.append(("distribute.strategy", f"'{distribute.strategy}' does not support 'adversarial' yet "
                                                "(FGM perturbs the embeddings inside each replica's step); hint: "
                                                "remove 'adversarial', or use 'strategy: none'"))
    return problems

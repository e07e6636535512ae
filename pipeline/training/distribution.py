"""Where a training runs: one device, or replicas under a ``tf.distribute`` strategy (``distribute:``).

:func:`place` must run before TensorFlow has run anything in the process: logical CPU devices and a
``MultiWorkerMirroredStrategy`` can only be set up then. The model is built, compiled and restored
inside :meth:`Placement.scope`; each training step runs the model's own ``train_step`` on every
replica (``strategy.run``) with the replica's slice of the global batch, so the gradients are summed
over replicas and workers by the strategy and every copy of the weights takes the same update.

Every worker of a ``multi_worker`` training runs the same stage on the same batches (the same
seeds draw them) and takes its replicas' slices. The chief writes the outputs and logs to MLflow;
the others write theirs under ``.workers/<task type>-<index>/`` (checkpoints included: each worker
resumes from its own, once all of them hold the same epoch). Whatever could differ between workers is
decided together through a collective sum (:meth:`Placement.all_agree`, :meth:`Placement.any_true`): the
training fingerprint, a kept seed, the epoch to resume, early stopping. A worker left waiting in a
collective operation (its peer died) stops with an error after :data:`COLLECTIVE_TIMEOUT_S`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Sequence

from pipeline.config.distribution import Distribute
from pipeline.config.errors import ConfigError

logger = logging.getLogger(__name__)

#: under the project root: the outputs of the workers that are not the chief
WORKERS_DIR = ".workers"
#: a worker waiting this long in a collective operation (its peer died or never came) stops with an error
COLLECTIVE_TIMEOUT_S = 1800

Batch = tuple


@dataclass(frozen=True)
class Placement:
    """The strategy of one training (None: one device) and this process's part in it."""

    strategy: Any = None
    #: ``distribute.strategy``: none, mirrored or multi_worker
    name: str = "none"
    #: ``chief``/``worker`` and its index in TF_CONFIG's cluster (``chief``, 0 without a cluster)
    task_type: str = "chief"
    task_index: int = 0
    workers: int = 1

    @property
    def replicas(self) -> int:
        return 1 if self.strategy is None else int(self.strategy.num_replicas_in_sync)

    @property
    def chief(self) -> bool:
        """Whether this process writes the outputs and logs to MLflow."""
        return self.task_type == "chief"

    def scope(self) -> ContextManager:
        """Where variables must be created (model, optimizer, weight average)."""
        return nullcontext() if self.strategy is None else self.strategy.scope()

    def output_root(self, root: Path) -> Path:
        """The project root for the chief; ``.workers/<task type>-<index>`` under it for the others."""
        return root if self.chief else root / WORKERS_DIR / f"{self.task_type}-{self.task_index}"

    def describe(self) -> str:
        if self.strategy is None:
            return "one device"
        devices = ", ".join(device.rsplit("/", 1)[-1] for device in self.strategy.extended.worker_devices)
        where = f"{self.replicas} replicas"
        if self.workers > 1:
            return f"{self.name}: {where} on {self.workers} workers (this one: {self.task_type} {self.task_index}, {devices})"
        return f"{self.name}: {where} ({devices})"

    def summed(self, values: Sequence[float]) -> list[float]:
        """``values`` summed over every replica of every worker (each replica adds its worker's values).
        A collective operation: every worker must call it at the same point, with as many values."""
        from pipeline.runtime.tf_runtime import tf

        local = tf.constant([float(value) for value in values], tf.float64)

        def on_replica() -> Any:
            return tf.distribute.get_replica_context().all_reduce("SUM", local)

        @tf.function(autograph=False)
        def all_reduce() -> Any:
            return self.strategy.run(on_replica)

        return [float(total) for total in self.strategy.experimental_local_results(all_reduce())[0].numpy()]

    def all_agree(self, values: Sequence[int]) -> bool:
        """Whether every worker passed the same ``values`` (integers below 2**16; a collective operation,
        see :meth:`summed`). Trivially true on one worker."""
        if self.workers == 1:
            return True
        if any(not 0 <= value < 1 << 16 for value in values):
            raise ValueError(f"all_agree compares integers in [0, 65536), not {list(values)}")
        sums = self.summed([*values, *(value * value for value in values)])
        totals, squares = sums[: len(values)], sums[len(values):]
        # equality in Cauchy-Schwarz: n * sum(v^2) == sum(v)^2 exactly when all v are equal (exact in
        # float64: n * 2**32 stays far below 2**53)
        return all(self.replicas * square == total * total for total, square in zip(totals, squares))

    def any_true(self, flag: bool) -> bool:
        """Whether any worker passed True (a collective operation, see :meth:`summed`); ``flag`` on one worker."""
        if self.workers == 1:
            return flag
        return self.summed([1.0 if flag else 0.0])[0] > 0


def fingerprint_tokens(text: str) -> list[int]:
    """64 bits of a hash of ``text`` as four 16-bit integers, for :meth:`Placement.all_agree`."""
    digest = hashlib.sha256(text.encode()).digest()
    return [int.from_bytes(digest[i: i + 2], "big") for i in range(0, 8, 2)]


def cluster_of(tf_config: str | None) -> tuple[str, int, int]:
    """``(task type, index, number of workers)`` from a ``TF_CONFIG`` value; a clear error when it is
    missing or malformed."""
    hint = ('hint: set TF_CONFIG on every worker, e.g. \'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}\' (README, "Scaling out")')
    if not tf_config:
        raise ConfigError(f"distribute.strategy: multi_worker needs the TF_CONFIG environment variable; {hint}")
    try:
        config = json.loads(tf_config)
    except ValueError as exc:
        raise ConfigError(f"TF_CONFIG is not JSON ({exc}); {hint}") from None
    problem = tf_config_problem(config)
    if problem:
        raise ConfigError(f"TF_CONFIG: {problem}; {hint}")
    members = {name: addresses for name, addresses in config["cluster"].items() if name in ("chief", "worker")}
    task_type, index = config["task"]["type"], config["task"]["index"]
    workers = sum(len(addresses) for addresses in members.values())
    chief = task_type == "chief" or (not members.get("chief") and task_type == "worker" and index == 0)
    return ("chief" if chief else task_type), index, workers


def tf_config_problem(config: Any) -> str | None:
    """What is wrong with a parsed ``TF_CONFIG`` for a multi-worker training (None: nothing)."""
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict) or not isinstance(config.get("task"), dict):
        return "needs a 'cluster' object and a 'task' object"
    cluster, task = config["cluster"], config["task"]
    for name in ("chief", "worker"):
        addresses = cluster.get(name, [])
        if not isinstance(addresses, list) or not all(isinstance(address, str) and ":" in address for address in addresses):
            return f"cluster.{name} must be a list of 'host:port' strings (got {addresses!r})"
    if not cluster.get("worker") and not cluster.get("chief"):
        return "the cluster names no 'worker' (nor 'chief')"
    task_type, index = task.get("type"), task.get("index")
    if not isinstance(index, int) or isinstance(index, bool):
        return f"task.index must be a whole number (got {index!r})"
    if task_type not in ("chief", "worker") or not 0 <= index < len(cluster.get(task_type, [])):
        return f"task {task_type} {index} is not in the cluster"
    return None


def place(distribute: Distribute) -> Placement:
    """Set up ``distribute``'s strategy in this process (before anything else runs in TensorFlow)."""
    if distribute.strategy == "none":
        return Placement()
    from pipeline.runtime.tf_runtime import tf

    if distribute.strategy == "mirrored":
        devices = None
        if distribute.cpu_replicas:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * distribute.cpu_replicas)
            devices = [f"/cpu:{index}" for index in range(distribute.cpu_replicas)]
        return Placement(tf.distribute.MirroredStrategy(devices=devices), "mirrored")
    task_type, index, workers = cluster_of(os.environ.get("TF_CONFIG"))
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=COLLECTIVE_TIMEOUT_S)
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    return Placement(strategy, "multi_worker", task_type, index, workers)


def replica_slice(batch: Batch, replica: Any, replicas: int) -> Batch:
    """Replica ``replica``'s share of a global batch: rows ``[n * r / R, n * (r + 1) / R)`` of every array
    (shares differ by at most one row)."""
    import tensorflow as tf

    def share(array: Any) -> Any:
        rows = tf.shape(array, out_type=tf.int64)[0]
        r = tf.cast(replica, tf.int64)
        return array[rows * r // replicas: rows * (r + 1) // replicas]

    return tf.nest.map_structure(share, batch)


def distributed_step(strategy: Any, step: Callable[[Batch], dict], after: Callable[[], None] | None = None
                     ) -> Callable[[Batch], dict]:
    """``step`` on every replica's slice of the global batch; ``after`` (the weight average's update) then
    runs once, across replicas; the logs are the replicas' mean."""
    import tensorflow as tf

    replicas = int(strategy.num_replicas_in_sync)

    def on_replica(batch: Batch) -> dict:
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        return step(replica_slice(batch, replica, replicas))

    def global_step(batch: Batch) -> dict:
        logs = strategy.run(on_replica, args=(batch,))
        if after is not None:
            after()
        return {name: strategy.reduce("MEAN", value, axis=None) for name, value in logs.items()}

    return global_step

"""How a worker learns its part in a ``multi_worker`` training from ``TF_CONFIG``, and the one-line errors
when it cannot (no TensorFlow: the strategy itself is exercised in test_distributed_training_e2e.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.config.distribution import Distribute
from pipeline.config.errors import ConfigError
from pipeline.training.distribution import Placement, cluster_of, fingerprint_tokens, place

pytestmark = pytest.mark.unit


def _tf_config(cluster: object, task_type: str, index: object) -> str:
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


def test_the_first_worker_is_the_chief_unless_the_cluster_names_one() -> None:
    workers = {"worker": ["10.0.0.1:2222", "10.0.0.2:2222", "10.0.0.3:2222"]}
    assert cluster_of(_tf_config(workers, "worker", 0)) == ("chief", 0, 3)
    assert cluster_of(_tf_config(workers, "worker", 2)) == ("worker", 2, 3)
    with_chief = {"chief": ["10.0.0.9:2222"], **workers}
    assert cluster_of(_tf_config(with_chief, "chief", 0)) == ("chief", 0, 4)
    assert cluster_of(_tf_config(with_chief, "worker", 0)) == ("worker", 0, 4)
    assert cluster_of(_tf_config({"chief": [], **workers}, "worker", 0)) == ("chief", 0, 3)


@pytest.mark.parametrize(("value", "says"), [
    (None, "multi_worker needs the TF_CONFIG environment variable"),
    ("{not json", "TF_CONFIG is not JSON (Expecting property name"),
    ('{"cluster": {"worker": ["a:1"]}}', "TF_CONFIG: needs a 'cluster' object and a 'task' object"),
    (_tf_config(["a:1"], "worker", 0), "TF_CONFIG: needs a 'cluster' object and a 'task' object"),
    (_tf_config({"worker": "a:1"}, "worker", 0), "TF_CONFIG: cluster.worker must be a list of 'host:port' strings (got 'a:1')"),
    (_tf_config({"worker": ["a"]}, "worker", 0), "cluster.worker must be a list of 'host:port' strings (got ['a'])"),
    (_tf_config({}, "worker", 0), "TF_CONFIG: the cluster names no 'worker' (nor 'chief')"),
    (_tf_config({"worker": ["a:1"]}, "worker", "0"), "TF_CONFIG: task.index must be a whole number (got '0')"),
    (_tf_config({"worker": ["a:1", "b:1"]}, "worker", 2), "TF_CONFIG: task worker 2 is not in the cluster"),
    (_tf_config({"worker": ["a:1"]}, "ps", 0), "TF_CONFIG: task ps 0 is not in the cluster"),
])
def test_a_missing_or_wrong_tf_config_is_one_line_with_an_example(value: str | None, says: str) -> None:
    with pytest.raises(ConfigError) as error:
        cluster_of(value)
    message = str(error.value)
    assert says in message and "hint: set TF_CONFIG on every worker" in message and "\n" not in message


def test_one_device_needs_no_strategy_and_writes_the_project_itself(tmp_path: Path) -> None:
    placement = place(Distribute())
    assert placement.strategy is None and placement.chief and placement.replicas == 1
    assert placement.describe() == "one device" and placement.all_agree([7, 8])
    assert placement.any_true(True) and not placement.any_true(False)
    assert placement.output_root(tmp_path) == tmp_path
    other = Placement(task_type="worker", task_index=2)
    assert not other.chief and other.output_root(tmp_path) == tmp_path / ".workers" / "worker-2"


def test_fingerprint_tokens_are_small_and_stable() -> None:
    tokens = fingerprint_tokens("ab" * 32)
    assert tokens == fingerprint_tokens("ab" * 32) and len(tokens) == 4
    assert all(0 <= token < 2 ** 16 for token in tokens)
    assert tokens != fingerprint_tokens("ab" * 31 + "ac")

"""benchmarks.compute_floor counts the FLOPs of the batches a run draws, at each batch's padded length."""

import pytest

from benchmarks.compute_floor import batch_flops
from benchmarks.side_by_side import flops_per_sample

pytestmark = pytest.mark.unit

CONFIG = {"hidden_size": 384, "intermediate_size": 1536, "num_hidden_layers": 6}


def test_each_batch_costs_its_size_at_its_longest_sequence():
    lengths = [10, 30, 20, 128]
    flops, mean = batch_flops(CONFIG, lengths, [[0, 1], [2, 3]], "train")
    first, second = 2 * flops_per_sample(CONFIG, "train", 30), 2 * flops_per_sample(CONFIG, "train", 128)
    assert flops == pytest.approx(first + second)
    assert mean == pytest.approx((first * 30 + second * 128) / (first + second))


def test_minilm_costs_what_the_benchmark_table_says_at_128_tokens():
    assert flops_per_sample(CONFIG, "train", 128) / 1e9 == pytest.approx(8.6, abs=0.1)
    assert flops_per_sample(CONFIG, "predict", 128) / 1e9 == pytest.approx(2.9, abs=0.1)


def test_no_batches_cost_nothing():
    assert batch_flops(CONFIG, [5, 6], [], "predict") == (0.0, 0.0)

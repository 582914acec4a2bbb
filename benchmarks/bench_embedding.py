"""Embedding forward (gather) and backward (scatter-add), float32, 2 threads: the cases of
fasttrain.bench.embedding under pytest-benchmark. extra_info: GB/s counting the rows read and
written."""
import pytest

from conftest import contenders, measure
from fasttrain.bench import embedding as kernel


@pytest.mark.parametrize("case, name", contenders(kernel))
def test_embedding(benchmark, settle, case, name):
    measure(benchmark, settle, case, name)

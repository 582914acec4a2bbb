"""Layer normalization, forward, backward and both, float32, 2 threads: the cases of
fasttrain.bench.layernorm under pytest-benchmark. extra_info: GB/s counting every (N, C) array
read or written once, and that as a share of the bandwidth measured in the same session."""
import pytest

from conftest import contenders, measure
from fasttrain.bench import layernorm as kernel


@pytest.mark.parametrize("case, name", contenders(kernel))
def test_layernorm(benchmark, settle, bandwidth, case, name):
    measure(benchmark, settle, case, name, machine_gbps=bandwidth)

"""The elementwise activations, tanh and GELU, forward and backward, float32, 2 threads: the
cases of fasttrain.bench.elementwise under pytest-benchmark. extra_info: GB/s counting every
array read and written once."""
import pytest

from conftest import contenders, measure
from fasttrain.bench import elementwise as kernel


@pytest.mark.parametrize("case, name", contenders(kernel))
def test_elementwise(benchmark, settle, case, name):
    measure(benchmark, settle, case, name)

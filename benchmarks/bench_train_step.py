"""One training step of the default model (fasttrain train's defaults), float32, 2 threads: the
cases of fasttrain.bench.train_step under pytest-benchmark. extra_info: tokens/s (predicted
tokens per second: batch / step time).

Run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (see BENCHMARKING.md):
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE pytest benchmarks/bench_train_step.py
or, interleaved with its peers: fasttrain bench --kernels train_step
"""
import pytest

from conftest import contenders, measure
from fasttrain.bench import train_step as kernel


@pytest.mark.parametrize("case, name", contenders(kernel))
def test_train_step(benchmark, settle, case, name):
    measure(benchmark, settle, case, name)

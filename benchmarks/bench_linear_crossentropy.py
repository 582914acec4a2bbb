"""Fused linear + cross-entropy, forward and backward, float32, 2 threads: time and extra memory,
the cases of fasttrain.bench.linear_crossentropy (fused through every backend, "c-unfused",
torch) under pytest-benchmark. extra_info: GFLOP/s (6·N·C·V), "extra_mb" (the peak resident
memory above the level before a warm call) and "traced_mb" (numpy's traced peak); see
fasttrain.bench.harness.peak_memory. The largest shape is slow-marked (seconds a call). Interleaved
figures with memory:
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE fasttrain bench --kernels linear_crossentropy \
        --backends c,torch --memory [--shapes 8192x768x50257 --rounds 3]
"""
import pytest

from conftest import contenders, measure
from fasttrain.bench import linear_crossentropy as kernel


@pytest.mark.parametrize("case, name", contenders(kernel))
def test_linear_crossentropy(benchmark, settle, case, name):
    measure(benchmark, settle, case, name, memory=True)

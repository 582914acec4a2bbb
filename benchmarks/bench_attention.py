"""Causal multi-head self-attention, forward + backward, float32, 2 threads: the cases of
fasttrain.bench.attention under pytest-benchmark (torch: F.scaled_dot_product_attention, PyTorch's
CPU flash kernel; torch formula: nanoGPT's attention without flash). extra_info: GFLOP/s as
FlashAttention counts them. Interleaved ratios and peak memory:
`fasttrain bench --kernels attention --memory`."""
import pytest

from conftest import contenders, measure
from fasttrain.bench import attention as kernel


@pytest.mark.parametrize("case, name", contenders(kernel))
def test_attention(benchmark, settle, case, name):
    measure(benchmark, settle, case, name)

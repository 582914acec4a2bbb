"""Fused softmax cross-entropy, forward + backward, float32, 2 threads: the cases of
fasttrain.bench.crossentropy (its docstring: contenders, c-inplace, the 8-bytes-per-logit
roofline) under pytest-benchmark. extra_info: GB/s and its fraction of the machine's read+write
bandwidth measured in the same session. Interleaved figures:
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE fasttrain bench --kernels crossentropy \
        [--backends c,c-inplace,numba,numpy,torch] [--shapes 2048x50304] [--rounds 9]
"""
import pytest

from conftest import contenders, measure
from fasttrain.bench import crossentropy as kernel


@pytest.mark.parametrize("case, name", contenders(kernel))
def test_crossentropy(benchmark, settle, bandwidth, case, name):
    measure(benchmark, settle, case, name, machine_gbps=bandwidth)

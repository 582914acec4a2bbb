"""A PyTorch model's training step, stock against fasttrain.torch's linear_cross_entropy and
AdamW swapped in (and everything swapped in), and AdamW alone over GPT-2 124M's 148 tensors
against torch's fused=True: the cases of fasttrain.bench.torch_face under pytest-benchmark, float32,
2 threads, with each step's extra peak memory in extra_info. Interleaved figures (the README's
"Use it from PyTorch" table):
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE fasttrain bench --kernels torch_face --memory
"""
import pytest

from conftest import contenders, measure
from fasttrain.bench import torch_face as kernel


@pytest.mark.parametrize("case, name", contenders(kernel))
def test_torch_face(benchmark, settle, case, name):
    measure(benchmark, settle, case, name, memory=True)

"""One training step of each model, float32, 2 threads: the cases of fasttrain.bench.train_step
(fasttrain train's default MLP) and fasttrain.bench.gpt_step (the GPT: small, then GPT-2 124M)
under pytest-benchmark. extra_info: tokens/s (predicted tokens per second: the batch's targets
/ step time); the GPT's also GFLOP/s (its model FLOPs, gpt_step's formula).

Run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (see BENCHMARKING.md):
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE pytest benchmarks/bench_train_step.py
or, interleaved with its peers: fasttrain bench --kernels train_step,gpt_step
The MLP's numba contender starts Numba's threading layer, after which PyTorch's attention runs
several times slower in the same process: time the GPT alone with -k gpt_step.
"""
import pytest

from conftest import contenders, measure
from fasttrain.bench import gpt_step
from fasttrain.bench import train_step as kernel


@pytest.mark.parametrize("case, name", contenders(kernel))
def test_train_step(benchmark, settle, case, name):
    measure(benchmark, settle, case, name)


@pytest.mark.parametrize("case, name", contenders(gpt_step))
def test_gpt_step(benchmark, settle, case, name):
    measure(benchmark, settle, case, name)

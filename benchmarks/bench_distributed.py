"""Data-parallel training steps over MPI ranks (1x1, 2x1, 1x2: ranks x threads), the default
model: the cases of fasttrain.bench.distributed under pytest-benchmark, one round each (every
call is a fresh process or two timing their own steps). extra_info: the median step, its
all-reduce, tokens/s. Under --benchmark-disable, 2 steps of a batch of 64 to prove it works.
Interleaved figures (the README's table):
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE fasttrain bench --kernels distributed \
        --shapes 1024x20 --rounds 5
"""
import pytest

from fasttrain.bench import distributed as kernel


@pytest.mark.skipif(bool(kernel.why_no_mpi()), reason=str(kernel.why_no_mpi()))
@pytest.mark.parametrize("name", list(kernel.CONTENDERS))
def test_distributed(benchmark, name):
    batch, steps = kernel.TINY[0] if getattr(benchmark, "disabled", False) else kernel.SHAPES[0]
    result = {}
    benchmark.group = "data-parallel train step, default MLP"
    benchmark.pedantic(lambda: result.update(kernel.run_worker(name, batch, steps)), rounds=1,
                       iterations=1)
    assert result["ranks"] == kernel.CONTENDERS[name][0] and result["step_s"] > 0
    benchmark.extra_info.update(step_ms=round(result["step_s"] * 1e3, 3),
                                allreduce_ms=round(result["allreduce_s"] * 1e3, 3),
                                tokens_per_s=round(batch / result["step_s"]))

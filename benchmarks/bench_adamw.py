"""One AdamW step over a whole model, float32, 2 threads: the cases of fasttrain.bench.adamw
(models 1M, 10M, 10M as 100 tensors and 100M; fasttrain's backends over an arena, numpy-inplace,
torch default, fused and foreach) under pytest-benchmark. extra_info: GB/s counting 28 bytes per
parameter and that as a fraction of the machine's read+write bandwidth measured in the same
session. Interleaved figures (the README's table):
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE fasttrain bench --kernels adamw \
        --backends c,numba,numpy,numpy-inplace,torch,torch-foreach --shapes 1M --rounds 40
"""
import numpy as np
import pytest

import fasttrain
from conftest import contenders, measure, rng
from fasttrain.bench import adamw as kernel


@pytest.mark.parametrize("case, name", contenders(kernel))
def test_adamw(benchmark, settle, bandwidth, case, name):
    measure(benchmark, settle, case, name, machine_gbps=bandwidth)


def test_numpy_inplace_matches_the_reference():
    """The benchmark's hand-written numpy step computes what the reference computes."""
    r = rng()
    p, g = r.standard_normal(1000, dtype=np.float32), r.standard_normal(1000, dtype=np.float32)
    m, v = np.zeros_like(p), np.zeros_like(p)
    p2, m2, v2 = p.copy(), m.copy(), v.copy()
    t1, t2 = np.empty_like(p), np.empty_like(p)
    hyper = kernel.HYPER
    for step in (1, 2, 3):
        kernel.numpy_inplace_step(p, g, m, v, t1, t2, step=step, **hyper)
        fasttrain.adamw_step(p2, g, m2, v2, step=step, lr=hyper["lr"], beta1=hyper["betas"][0],
                             beta2=hyper["betas"][1], eps=hyper["eps"],
                             weight_decay=hyper["weight_decay"], backend="numpy")
    assert np.array_equal(p, p2) and np.array_equal(m, m2) and np.array_equal(v, v2)

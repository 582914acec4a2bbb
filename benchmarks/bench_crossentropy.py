"""Fused softmax cross-entropy, forward + backward, float32, 2 threads.

fasttrain backends write the gradient into a preallocated buffer (out=); "c-inplace" is the C
kernel with out=logits, the way the training loop calls it. torch is F.cross_entropy + backward.
extra_info: GB/s counting 8 bytes per logit (read once, gradient written once) and that as a
fraction of the machine's read+write bandwidth measured in the same session.
"""
import numpy as np
import pytest

import fasttrain
from conftest import available, record, rng, sizes
from fasttrain.bench import CROSSENTROPY_SHAPES as SHAPES  # the shapes `fasttrain bench` runs

BACKENDS = [available("c"), pytest.param("c-inplace", id="c-inplace",
                                         marks=available("c").marks),
            available("numba"), available("numpy"), available("torch")]


def make_call(backend, N, V):
    r = rng()
    logits = r.standard_normal((N, V), dtype=np.float32)  # (N, V)
    targets = r.integers(0, V, size=N)                     # (N,)
    if backend == "torch":
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(logits).requires_grad_()
        t = torch.from_numpy(targets)

        def call():
            x.grad = None
            F.cross_entropy(x, t).backward()
        return call
    if backend == "c-inplace":
        return lambda: fasttrain.softmax_cross_entropy(logits, targets, out=logits, backend="c")
    out = np.empty_like(logits)
    return lambda: fasttrain.softmax_cross_entropy(logits, targets, out=out, backend=backend)


@pytest.mark.parametrize("shape", sizes(SHAPES, lambda s: f"{s[0]}x{s[1]}"))
@pytest.mark.parametrize("backend", BACKENDS)
def test_crossentropy(benchmark, settle, bandwidth, backend, shape):
    N, V = shape
    call = settle(make_call(backend, N, V))
    benchmark.group = f"crossentropy {N}x{V}"
    benchmark(call)
    record(benchmark, nbytes=8 * N * V, machine_gbps=bandwidth, shape=list(shape))

"""Embedding forward (gather) and backward (scatter-add) at the default MLP's size and a GPT's,
float32, 2 threads. extra_info: GB/s counting the rows read and written."""
import numpy as np
import pytest

import fasttrain
from conftest import available, record, rng, sizes
# (V, E, N): the default byte MLP (1024 windows x 8 tokens), a GPT-2-sized table; the shapes
# `fasttrain bench` runs
from fasttrain.bench import EMBEDDING_SHAPES as SHAPES


def make_call(backend, direction, V, E, N):
    r = rng()
    W = r.standard_normal((V, E), dtype=np.float32)
    idx = r.integers(0, V, size=N)
    dout = r.standard_normal((N, E), dtype=np.float32)
    if backend == "torch":
        import torch

        Wt = torch.from_numpy(W).requires_grad_()
        it, dt = torch.from_numpy(idx), torch.from_numpy(dout)
        if direction == "forward":
            return lambda: torch.nn.functional.embedding(it, Wt).detach()

        def call():
            Wt.grad = None
            torch.nn.functional.embedding(it, Wt).backward(dt)
        return call
    if direction == "forward":
        out = np.empty((N, E), dtype=np.float32)
        return lambda: fasttrain.kernels.embedding_forward(idx, W, out=out, backend=backend)
    dW = np.empty_like(W)
    return lambda: fasttrain.kernels.embedding_backward(idx, dout, dW, backend=backend)


@pytest.mark.parametrize("shape", sizes(SHAPES, lambda s: "V{}xE{}xN{}".format(*s)))
@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("backend", [available(b) for b in ("c", "numba", "numpy", "torch")])
def test_embedding(benchmark, settle, backend, direction, shape):
    V, E, N = shape
    call = settle(make_call(backend, direction, V, E, N))
    benchmark.group = f"embedding {direction} V{V} E{E} N{N}"
    benchmark(call)
    record(benchmark, nbytes=8 * N * E, shape=list(shape))

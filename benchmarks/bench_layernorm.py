"""Layer normalization, forward, backward and both, float32, 2 threads, at a small GPT's rows
(2048 x 256: 2 MB, it lives in cache) and GPT-2 small's (8192 x 768).

fasttrain backends write into preallocated buffers (out=, dx=, ...); torch is
F.layer_norm and its autograd backward (weight and bias requiring gradients, as in a model).
extra_info: GB/s counting the minimum traffic, every (N, C) array read or written once (forward:
x in, y out; backward: x and dy in, dx out; the (C,) and (N,) vectors left out), and that as a
fraction of the machine's read+write bandwidth measured in the same session (above 1 is possible
at 2048 x 256, which never leaves the caches).
"""
import numpy as np
import pytest

from conftest import available, record, rng, sizes

SHAPES = [(2048, 256), (8192, 768)]
DIRECTIONS = {"forward": 2, "backward": 3, "forward+backward": 5}  # (N, C) arrays moved


def make_call(backend, direction, N, C):
    r = rng()
    x = r.standard_normal((N, C), dtype=np.float32)   # (N, C)
    w = r.standard_normal(C, dtype=np.float32)        # (C,)
    b = r.standard_normal(C, dtype=np.float32)        # (C,)
    dy = r.standard_normal((N, C), dtype=np.float32)  # (N, C)
    if backend == "torch":
        import torch
        import torch.nn.functional as F

        xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
        wt, bt = torch.from_numpy(w).requires_grad_(), torch.from_numpy(b).requires_grad_()
        xg = xt.clone().requires_grad_()
        if direction == "forward":
            return lambda: F.layer_norm(xt, (C,), wt.detach(), bt.detach())
        if direction == "backward":
            yt = F.layer_norm(xg, (C,), wt, bt)

            def backward():
                xg.grad = wt.grad = bt.grad = None
                yt.backward(dyt, retain_graph=True)
            return backward

        def both():
            xg.grad = wt.grad = bt.grad = None
            F.layer_norm(xg, (C,), wt, bt).backward(dyt)
        return both
    from fasttrain.kernels import layernorm_backward, layernorm_forward

    y, dx = np.empty_like(x), np.empty_like(x)
    mean, rstd = np.empty(N, np.float32), np.empty(N, np.float32)
    dw, db = np.empty_like(w), np.empty_like(b)
    layernorm_forward(x, w, b, out=y, mean=mean, rstd=rstd, backend=backend)  # the statistics

    def forward():
        layernorm_forward(x, w, b, out=y, mean=mean, rstd=rstd, backend=backend)

    def backward():
        layernorm_backward(x, w, mean, rstd, dy, dx=dx, dweight=dw, dbias=db, backend=backend)

    def both():
        forward()
        backward()
    return {"forward": forward, "backward": backward, "forward+backward": both}[direction]


@pytest.mark.parametrize("shape", sizes(SHAPES, lambda s: f"{s[0]}x{s[1]}"))
@pytest.mark.parametrize("direction", list(DIRECTIONS))
@pytest.mark.parametrize("backend", [available(b) for b in ("c", "numba", "numpy", "torch")])
def test_layernorm(benchmark, settle, bandwidth, backend, direction, shape):
    N, C = shape
    call = settle(make_call(backend, direction, N, C))
    benchmark.group = f"layernorm {direction} {N}x{C}"
    benchmark(call)
    record(benchmark, nbytes=4 * N * C * DIRECTIONS[direction], machine_gbps=bandwidth,
           shape=list(shape))

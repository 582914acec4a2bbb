"""The elementwise activations, tanh and GELU, forward and backward, float32, 2 threads, at the
default MLP's hidden size (1024 x 512) and a GPT MLP's (8192 x 3072). extra_info: GB/s counting
every array read and written once."""
import numpy as np
import pytest

from fasttrain import kernels as K
from conftest import available, record, rng, sizes
from fasttrain.bench import ELEMENTWISE_SHAPES as SHAPES  # the shapes `fasttrain bench` runs

KERNELS = {
    ("tanh", "forward"): (K.tanh_forward, 1),
    ("tanh", "backward"): (K.tanh_backward, 2),
    ("gelu", "forward"): (K.gelu_forward, 1),
    ("gelu", "backward"): (K.gelu_backward, 2),
}


def make_call(backend, act, direction, shape):
    r = rng()
    x = r.standard_normal(shape, dtype=np.float32)
    dy = r.standard_normal(shape, dtype=np.float32)
    if backend == "torch":
        import torch

        xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
        f = torch.tanh if act == "tanh" else (
            lambda t: torch.nn.functional.gelu(t, approximate="tanh"))
        if direction == "forward":
            return lambda: f(xt)
        xg = xt.clone().requires_grad_()

        def call():
            xg.grad = None
            f(xg).backward(dyt)
        return call
    kernel, _ = KERNELS[(act, direction)]
    out = np.empty_like(x)
    if direction == "forward":
        return lambda: kernel(x, out=out, backend=backend)
    return lambda: kernel(x, dy, out=out, backend=backend)


@pytest.mark.parametrize("shape", sizes(SHAPES, lambda s: f"{s[0]}x{s[1]}"))
@pytest.mark.parametrize("act,direction", list(KERNELS), ids=["-".join(k) for k in KERNELS])
@pytest.mark.parametrize("backend", [available(b) for b in ("c", "numba", "numpy", "torch")])
def test_elementwise(benchmark, settle, backend, act, direction, shape):
    call = settle(make_call(backend, act, direction, shape))
    benchmark.group = f"{act} {direction} {shape[0]}x{shape[1]}"
    benchmark(call)
    arrays = KERNELS[(act, direction)][1] + 1  # inputs + the output
    record(benchmark, nbytes=4 * shape[0] * shape[1] * arrays, shape=list(shape))

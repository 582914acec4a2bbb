"""Linear layer forward and backward (fasttrain.linear_forward / linear_backward, csrc/linear.c).

Contenders: fasttrain's backends writing into preallocated buffers; torch autograd (F.linear;
the backward is y.backward(dy) on a retained graph with the grads set to None first, as
optimizer.zero_grad() leaves them); "sgemm" (named with --backends): the bare BLAS GEMMs the
kernel is made of (one forward; dy @ W and dy.T @ x backward), called through scipy.linalg.blas
on transposed views, on the very OpenBLAS the c backend uses. Roofline: 2·N·C·OC flops forward,
twice that backward (the bias, O(N·OC), not counted), as a share of the GEMM rate.
"""
import numpy as np

from fasttrain.bench._case import FASTTRAIN_BACKENDS, Case, rng

ORDER = 20
ALIASES = ("linear_forward", "linear_backward")
SHAPES = [(64, 64, 64), (1024, 256, 256), (4096, 768, 3072), (4096, 3072, 768)]  # (N, C, OC)
QUICK = [(1024, 256, 256)]
TINY = [(16, 24, 8)]
EXTRAS = ("sgemm",)


def _sgemm(direction, x, W, y, dy, dx, dW):
    from scipy.linalg import blas

    # Column-major views of row-major arrays: y.T = W @ x.T, dx.T = W.T @ dy.T, dW.T = x.T @ dy;
    # every operand and result is a Fortran-ordered view, so f2py copies nothing (checked
    # below) and the calls are the bare GEMMs.
    if direction == "forward":
        def forward():
            return blas.sgemm(1.0, W.T, x.T, trans_a=1, c=y.T, overwrite_c=1)
        assert np.shares_memory(forward(), y)
        return forward

    def pair():
        return (blas.sgemm(1.0, W.T, dy.T, c=dx.T, overwrite_c=1),
                blas.sgemm(1.0, x.T, dy.T, trans_b=1, c=dW.T, overwrite_c=1))
    got = pair()
    assert np.shares_memory(got[0], dx) and np.shares_memory(got[1], dW)
    return pair


def cases(shapes, torch_names):
    import fasttrain

    def case(direction, N, C, OC):
        def setup(names):
            r = rng()
            x = r.standard_normal((N, C), dtype=np.float32)    # (N, C)
            W = r.standard_normal((OC, C), dtype=np.float32)   # (OC, C)
            b = r.standard_normal(OC, dtype=np.float32)        # (OC,)
            dy = r.standard_normal((N, OC), dtype=np.float32)  # (N, OC)
            calls = {}
            for name in names:
                if name.startswith("torch"):
                    import torch
                    import torch.nn.functional as F

                    xt, Wt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, W, b))
                    if direction == "forward":
                        calls[name] = lambda xt=xt, Wt=Wt, bt=bt: F.linear(xt, Wt, bt)
                        continue
                    yt, dyt = F.linear(xt, Wt, bt), torch.from_numpy(dy)

                    def call(xt=xt, Wt=Wt, bt=bt, yt=yt, dyt=dyt):
                        xt.grad = Wt.grad = bt.grad = None
                        yt.backward(dyt, retain_graph=True)
                elif name == "sgemm":
                    call = _sgemm(direction, x, W, np.empty((N, OC), dtype=np.float32), dy,
                                  np.empty_like(x), np.empty_like(W))
                elif direction == "forward":
                    y = np.empty((N, OC), dtype=np.float32)

                    def call(name=name, y=y):
                        fasttrain.linear_forward(x, W, b, out=y, backend=name)
                else:
                    dx, dW, db = np.empty_like(x), np.empty_like(W), np.empty_like(b)

                    def call(name=name, dx=dx, dW=dW, db=db):
                        fasttrain.linear_backward(x, W, dy, dx=dx, dW=dW, db=db, backend=name)
                calls[name] = call
            return calls
        flops = (2 if direction == "forward" else 4) * N * C * OC
        return Case("linear", direction, f"{N}x{C}x{OC}", [*FASTTRAIN_BACKENDS, *torch_names],
                    setup, flops=flops, extras=list(EXTRAS), api=(f"linear_{direction}",))
    return [case(d, *s) for s in shapes for d in ("forward", "backward")]

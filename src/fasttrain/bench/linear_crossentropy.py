"""Fused linear + cross-entropy, forward and backward (fasttrain.linear_cross_entropy,
csrc/linear_crossentropy.c): a language model's head and loss, chunk by chunk.

Contenders: fasttrain's backends into preallocated dx, dW, db (default chunks); "c-unfused":
linear_forward into an (N, V) logits buffer allocated in the call (as the fused kernel
allocates its chunk's), softmax_cross_entropy over it in place, linear_backward: the MLP's
fused_head=False path; torch is F.cross_entropy(F.linear(x, W, b), t).backward(). Roofline:
6·N·C·V flops (the logits, dx and dW GEMMs) as a share of the GEMM rate. Its point is memory
as much as time: `fasttrain bench --kernels linear_crossentropy --memory` reports each
contender's extra peak memory.
"""
import numpy as np

from fasttrain.bench._case import FASTTRAIN_BACKENDS, Case, rng

ORDER = 25
ALIASES = ("linear_cross_entropy",)
SHAPES = [(4096, 256, 256)]  # (N, C, V)
# seconds a call (minutes for a full run's five contenders), 1.5 GB of logits unfused at the
# largest: only with --shapes (and in benchmarks/, marked slow)
MORE = [(8192, 512, 8192), (8192, 768, 50257)]
QUICK = [(4096, 256, 256)]
TINY = [(40, 16, 48)]


def cases(shapes, torch_names):
    import fasttrain

    def case(N, C, V):
        def setup(names):
            r = rng()
            x = r.standard_normal((N, C), dtype=np.float32)                         # (N, C)
            W = r.standard_normal((V, C), dtype=np.float32) * np.float32(C ** -0.5)  # (V, C)
            b = np.zeros(V, dtype=np.float32)                                       # (V,)
            t = r.integers(0, V, size=N)                                            # (N,)
            calls = {}
            for name in names:
                if name.startswith("torch"):
                    import torch
                    import torch.nn.functional as F

                    xt, Wt = (torch.from_numpy(x).requires_grad_(),
                              torch.from_numpy(W).requires_grad_())
                    bt, tt = torch.from_numpy(b).requires_grad_(), torch.from_numpy(t)

                    def call(xt=xt, Wt=Wt, bt=bt, tt=tt):
                        xt.grad = Wt.grad = bt.grad = None
                        F.cross_entropy(F.linear(xt, Wt, bt), tt).backward()
                    calls[name] = call
                    continue
                dx, dW, db = np.empty_like(x), np.empty_like(W), np.empty_like(b)
                if name == "c-unfused":
                    def call(dx=dx, dW=dW, db=db):
                        logits = np.empty((N, V), dtype=np.float32)                # (N, V)
                        fasttrain.linear_forward(x, W, b, out=logits, backend="c")
                        fasttrain.softmax_cross_entropy(logits, t, out=logits, backend="c")
                        fasttrain.linear_backward(x, W, logits, dx=dx, dW=dW, db=db,
                                                  backend="c")
                else:
                    def call(name=name, dx=dx, dW=dW, db=db):
                        fasttrain.linear_cross_entropy(x, W, t, b, dx=dx, dW=dW, db=db,
                                                       backend=name)
                calls[name] = call
            return calls
        return Case("linear_crossentropy", "fwd+bwd", f"{N}x{C}x{V}",
                    [*FASTTRAIN_BACKENDS, "c-unfused", *torch_names], setup, flops=6 * N * C * V)
    return [case(*s) for s in shapes]

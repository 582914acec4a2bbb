"""Embedding forward (gather) and backward (scatter-add) (fasttrain.kernels.embedding_forward /
embedding_backward, csrc/embedding.c). Roofline: N rows of E floats read and N written (the
backward's zeroing of dW not counted)."""
import numpy as np

from fasttrain.bench._case import FASTTRAIN_BACKENDS, Case, rng

ORDER = 40
ALIASES = ("embedding_forward", "embedding_backward")
SHAPES = [(256, 64, 8192), (50304, 768, 8192)]  # (V, E, N): the byte MLP's, a GPT-2's
QUICK = SHAPES[:1]
TINY = [(40, 8, 64)]


def label(shape):
    return "V{} E{} N{}".format(*shape)


def cases(shapes, torch_names):
    from fasttrain import kernels as K

    def case(direction, V, E, N):
        def setup(names):
            r = rng()
            W = r.standard_normal((V, E), dtype=np.float32)      # (V, E)
            idx = r.integers(0, V, size=N)                       # (N,)
            dout = r.standard_normal((N, E), dtype=np.float32)   # (N, E)
            calls = {}
            for name in names:
                if name.startswith("torch"):
                    import torch
                    import torch.nn.functional as F

                    Wt = torch.from_numpy(W).requires_grad_()
                    it, dt = torch.from_numpy(idx), torch.from_numpy(dout)
                    if direction == "forward":
                        calls[name] = lambda Wt=Wt, it=it: F.embedding(it, Wt).detach()
                        continue

                    def call(Wt=Wt, it=it, dt=dt):
                        Wt.grad = None
                        F.embedding(it, Wt).backward(dt)
                elif direction == "forward":
                    out = np.empty((N, E), dtype=np.float32)

                    def call(name=name, out=out):
                        K.embedding_forward(idx, W, out=out, backend=name)
                else:
                    dW = np.empty_like(W)

                    def call(name=name, dW=dW):
                        K.embedding_backward(idx, dout, dW, backend=name)
                calls[name] = call
            return calls
        return Case("embedding", direction, label((V, E, N)), [*FASTTRAIN_BACKENDS, *torch_names],
                    setup, nbytes=8 * N * E, api=(f"embedding_{direction}",))
    return [case(d, *s) for s in shapes for d in ("forward", "backward")]

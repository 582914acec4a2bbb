"""Softmax cross-entropy, forward + backward (fasttrain.softmax_cross_entropy, csrc/crossentropy.c).

Contenders: fasttrain's backends writing the gradient into a preallocated buffer (out=), as a
training loop calls it; "c-inplace" (named with --backends) the C kernel with out=logits; torch
is F.cross_entropy + backward. Roofline: the logits read once and the gradient written once,
8 bytes per logit in float32.
"""
import numpy as np

from fasttrain.bench._case import FASTTRAIN_BACKENDS, Case, rng

ORDER = 10
ALIASES = ("softmax_cross_entropy", "cross_entropy")
SHAPES = [(4096, 256), (8192, 4096), (4096, 32768), (2048, 50304)]  # (N, V)
# the byte model's vocabulary (its numpy and torch peers at 8192x4096 took a fifth of a quick
# run's minute)
QUICK = [(4096, 256)]
TINY = [(64, 96)]
EXTRAS = ("c-inplace",)


def cases(shapes, torch_names):
    import fasttrain

    def case(N, V):
        def setup(names):
            r = rng()
            logits = r.standard_normal((N, V), dtype=np.float32)  # (N, V)
            targets = r.integers(0, V, size=N)                    # (N,)
            calls = {}
            for name in names:
                if name.startswith("torch"):
                    import torch
                    import torch.nn.functional as F

                    x, t = torch.from_numpy(logits).requires_grad_(), torch.from_numpy(targets)

                    def call(x=x, t=t):
                        x.grad = None
                        F.cross_entropy(x, t).backward()
                elif name == "c-inplace":  # the gradient over the logits (their values drift:
                    # a row of gradients is still a valid row of logits, of the same cost)
                    inplace = logits.copy()

                    def call(inplace=inplace):
                        fasttrain.softmax_cross_entropy(inplace, targets, out=inplace,
                                                        backend="c")
                else:
                    out = np.empty_like(logits)

                    def call(name=name, out=out):
                        fasttrain.softmax_cross_entropy(logits, targets, out=out, backend=name)
                calls[name] = call
            return calls
        return Case("crossentropy", "fwd+bwd", f"{N}x{V}", [*FASTTRAIN_BACKENDS, *torch_names],
                    setup, nbytes=8 * N * V, extras=list(EXTRAS), api=("softmax_cross_entropy",))
    return [case(*s) for s in shapes]

"""Layer normalization over the last axis, forward, backward and both (fasttrain.kernels.layernorm_*,
csrc/layernorm.c), float32, against F.layer_norm and its autograd backward (weight and bias
requiring gradients, as in a model).

Roofline: the minimum traffic, every (N, C) array read or written once: the forward reads x and
writes y, the backward reads x and dy and writes dx (the (C,) and (N,) vectors left out). At
2048 x 256 (2 MB) the arrays live in cache, so a share of the DRAM probe above 100% is possible.
"""
import numpy as np

from fasttrain.bench._case import FASTTRAIN_BACKENDS, Case, rng

ORDER = 55
ALIASES = ("layernorm_forward", "layernorm_backward", "layer_norm")
SHAPES = [(2048, 256), (8192, 768)]  # (N, C): a small GPT's B*T x width, GPT-2 small's
QUICK = SHAPES[:1]
TINY = [(16, 24)]
OPS = {"forward": 2, "backward": 3, "fwd+bwd": 5}  # op: (N, C) arrays moved
API = {"forward": ("layernorm_forward",), "backward": ("layernorm_backward",),
       "fwd+bwd": ("layernorm_forward", "layernorm_backward")}  # op: the kernels it calls


def cases(shapes, torch_names):
    from fasttrain import kernels as K

    def case(op, N, C):
        def setup(names):
            r = rng()
            x = r.standard_normal((N, C), dtype=np.float32)    # (N, C)
            dy = r.standard_normal((N, C), dtype=np.float32)   # (N, C)
            w = (1 + 0.1 * r.standard_normal(C)).astype(np.float32)  # (C,)
            b = (0.1 * r.standard_normal(C)).astype(np.float32)      # (C,)
            calls = {}
            for name in names:
                if name.startswith("torch"):
                    import torch

                    F = torch.nn.functional
                    xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
                    wt, bt = torch.from_numpy(w), torch.from_numpy(b)
                    if op == "forward":
                        calls[name] = lambda xt=xt, wt=wt, bt=bt: F.layer_norm(xt, (C,), wt, bt)
                        continue
                    xg, wg, bg = (t.clone().requires_grad_() for t in (xt, wt, bt))
                    if op == "backward":  # the graph built once, its backward timed alone
                        yg = F.layer_norm(xg, (C,), wg, bg)

                        def call(xg=xg, wg=wg, bg=bg, yg=yg, dyt=dyt):
                            xg.grad = wg.grad = bg.grad = None
                            yg.backward(dyt, retain_graph=True)
                    else:
                        def call(xg=xg, wg=wg, bg=bg, dyt=dyt):
                            xg.grad = wg.grad = bg.grad = None
                            F.layer_norm(xg, (C,), wg, bg).backward(dyt)
                else:
                    y, dx = np.empty_like(x), np.empty_like(x)
                    mean, rstd = np.empty(N, np.float32), np.empty(N, np.float32)
                    dw, db = np.empty_like(w), np.empty_like(b)
                    K.layernorm_forward(x, w, b, out=y, mean=mean, rstd=rstd, backend=name)

                    def forward(name=name, y=y, mean=mean, rstd=rstd):
                        K.layernorm_forward(x, w, b, out=y, mean=mean, rstd=rstd, backend=name)

                    def backward(name=name, mean=mean, rstd=rstd, dx=dx, dw=dw, db=db):
                        K.layernorm_backward(x, w, mean, rstd, dy, dx=dx, dweight=dw, dbias=db,
                                             backend=name)

                    call = {"forward": forward, "backward": backward}.get(op)
                    if call is None:
                        def call(forward=forward, backward=backward):
                            forward()
                            backward()
                calls[name] = call
            return calls
        return Case("layernorm", op, f"{N}x{C}", [*FASTTRAIN_BACKENDS, *torch_names], setup,
                    nbytes=4 * N * C * OPS[op],
                    api=API[op])
    return [case(op, *shape) for shape in shapes for op in OPS]

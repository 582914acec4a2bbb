"""The elementwise activations, tanh and GELU (tanh approximation), forward and backward
(fasttrain.kernels.tanh_* / gelu_*, csrc/tanh.c and csrc/gelu.c).

One case module for both stems (`--kernels tanh` and `--kernels gelu` mean this one): they share
shapes, contenders and roofline, and the quick run measures the default model's activation only
(a third element of a shape names it). Roofline: every array read and written once.
"""
import numpy as np

from fasttrain.bench._case import FASTTRAIN_BACKENDS, Case, rng

ORDER = 50
ALIASES = ("tanh", "gelu", "tanh_forward", "tanh_backward", "gelu_forward", "gelu_backward")
SHAPES = [(1024, 512), (8192, 3072)]  # the default MLP's hidden layer, a GPT MLP's
QUICK = [(*SHAPES[0], "tanh")]
TINY = [(8, 16)]
OPS = (("tanh", "forward"), ("tanh", "backward"), ("gelu", "forward"), ("gelu", "backward"))


def label(shape):
    return f"{shape[0]}x{shape[1]}"


def cases(shapes, torch_names):
    from fasttrain import kernels as K

    kernels = {("tanh", "forward"): (K.tanh_forward, 1), ("tanh", "backward"): (K.tanh_backward, 2),
               ("gelu", "forward"): (K.gelu_forward, 1), ("gelu", "backward"): (K.gelu_backward, 2)}

    def case(act, direction, shape):
        kernel, inputs = kernels[(act, direction)]
        shape = shape[:2]

        def setup(names):
            r = rng()
            x = r.standard_normal(shape, dtype=np.float32)
            dy = r.standard_normal(shape, dtype=np.float32)
            calls = {}
            for name in names:
                if name.startswith("torch"):
                    import torch

                    f = torch.tanh if act == "tanh" else (
                        lambda t: torch.nn.functional.gelu(t, approximate="tanh"))
                    xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
                    if direction == "forward":
                        calls[name] = lambda f=f, xt=xt: f(xt)
                        continue
                    xg = xt.clone().requires_grad_()

                    def call(f=f, xg=xg, dyt=dyt):
                        xg.grad = None
                        f(xg).backward(dyt)
                elif direction == "forward":
                    out = np.empty_like(x)

                    def call(name=name, out=out):
                        kernel(x, out=out, backend=name)
                else:
                    out = np.empty_like(x)

                    def call(name=name, out=out):
                        kernel(x, dy, out=out, backend=name)
                calls[name] = call
            return calls
        return Case("elementwise", f"{act} {direction}", label(shape),
                    [*FASTTRAIN_BACKENDS, *torch_names], setup,
                    nbytes=4 * shape[0] * shape[1] * (inputs + 1), api=(f"{act}_{direction}",))
    return [case(a, d, s) for s in shapes for (a, d) in OPS if len(s) == 2 or s[2] == a]


def parse_shape(text):
    """"1024x512" (both activations) or "1024x512xtanh" (one)."""
    parts = text.lower().split("x")
    act = parts.pop() if parts and parts[-1] in ("tanh", "gelu") else None
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"an elementwise shape is NxC (e.g. 1024x512), optionally xtanh or "
                         f"xgelu, got {text!r}")
    return (*shape, act) if act else shape

"""One AdamW step over a whole model (fasttrain.AdamW over an Arena, csrc/adamw.c).

Contenders: fasttrain's backends over an arena (the model as one buffer: one kernel call per
step); torch.optim.AdamW as CPU users get it by default ("torch": one tensor at a time) and
with fused=True ("torch fused", PyTorch's fastest; "vs torch" divides by the faster of the
torch variants measured). Named with --backends: "numpy-inplace" (the reference's formula with
out= into two scratch buffers: no allocation, still 14 passes over memory) and "torch foreach"
(foreach=True). Roofline: 28 bytes per parameter (param, grad, m, v read; param, m, v written).
"""
import numpy as np

from fasttrain.bench._case import FASTTRAIN_BACKENDS, Case, rng

ORDER = 30
ALIASES = ("adamw_step",)
HYPER = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
BYTES_PER_PARAM = 28
MODELS = {  # name: the sizes of the model's parameter tensors (one arena in fasttrain)
    "1M": [1_000_000],
    "10M": [10_000_000],
    "10Mx100": [100_000] * 100,
    "100M": [100_000_000],  # 6+ GB with every contender's state: only with --shapes
    "tiny": [1000, 24],
}
SHAPES = ["1M", "10M", "10Mx100"]
MORE = ["100M"]
QUICK = ["10M"]
TINY = ["tiny"]
TORCH_OPTIONS = {"torch": {}, "torch fused": {"fused": True}, "torch foreach": {"foreach": True}}
EXTRAS = ("numpy-inplace", "torch foreach")


def label(model):
    return model


def parse_shape(text):
    if text not in MODELS:
        raise ValueError(f"an adamw shape is a model, one of {', '.join(MODELS)}; got {text!r}")
    return text


def numpy_inplace_step(p, g, m, v, t1, t2, *, step, lr, betas, eps, weight_decay):
    """The reference's AdamW (beta1 > 0.5) written with out= into two scratch buffers t1, t2:
    no allocation, but still 14 passes over memory where the fused kernels make one."""
    real = p.dtype.type
    beta1, beta2 = betas
    bias_correction1, bias_correction2 = 1 - beta1**step, 1 - beta2**step
    np.multiply(p, real(1 - lr * weight_decay), out=p)
    np.subtract(g, m, out=t1)                      # m = lerp(m, g, 1 - beta1)
    np.multiply(t1, real(1 - beta1), out=t1)
    np.add(m, t1, out=m)
    np.multiply(v, real(beta2), out=v)             # v = v*beta2 + (1 - beta2)*g*g
    np.multiply(g, real(1 - beta2), out=t1)
    np.multiply(t1, g, out=t1)
    np.add(v, t1, out=v)
    np.sqrt(v, out=t1)                             # denom
    np.divide(t1, real(bias_correction2**0.5), out=t1)
    np.add(t1, real(eps), out=t1)
    np.multiply(m, real(-lr / bias_correction1), out=t2)
    np.divide(t2, t1, out=t2)
    np.add(p, t2, out=p)


def make_arena(sizes, params0, grads0):
    """A fasttrain arena holding the model, one parameter per tensor."""
    import fasttrain

    arena = fasttrain.Arena()
    for i, n in enumerate(sizes):
        arena.add(f"w{i}", n)
    arena.build()
    lo = 0
    for i, n in enumerate(sizes):
        arena[f"w{i}"][...] = params0[lo:lo + n]
        arena.grad(f"w{i}")[...] = grads0[lo:lo + n]
        lo += n
    return arena


def make_tensors(sizes, params0, grads0):
    """The model as a list of PyTorch leaf tensors with their .grad set."""
    import torch

    tensors, lo = [], 0
    for n in sizes:
        t = torch.from_numpy(params0[lo:lo + n].copy()).requires_grad_()
        t.grad = torch.from_numpy(grads0[lo:lo + n].copy())
        tensors.append(t)
        lo += n
    return tensors


def make_step(name, sizes, params0, grads0):
    """The step of contender `name`, on buffers of its own."""
    import fasttrain

    if name.startswith("torch"):
        import torch

        tensors = make_tensors(sizes, params0, grads0)
        return torch.optim.AdamW(tensors, **HYPER, **TORCH_OPTIONS[name]).step
    arena = make_arena(sizes, params0, grads0)
    if name == "numpy-inplace":
        m, v = np.zeros_like(arena.params), np.zeros_like(arena.params)
        t1, t2 = np.empty_like(arena.params), np.empty_like(arena.params)
        state = {"step": 0}

        def call():
            state["step"] += 1
            numpy_inplace_step(arena.params, arena.grads, m, v, t1, t2, step=state["step"],
                               **HYPER)
        return call
    return fasttrain.AdamW(arena, **HYPER, backend=name).step


def cases(models, torch_names):
    def case(model):
        sizes = MODELS[model]
        P = sum(sizes)

        def setup(names):
            r = rng()
            params0 = r.standard_normal(P, dtype=np.float32)                 # (P,)
            grads0 = r.standard_normal(P, dtype=np.float32) * np.float32(1e-2)
            return {name: make_step(name, sizes, params0, grads0) for name in names}
        shape = f"{P:,} params" + (f" in {len(sizes)} tensors" if len(sizes) > 1 else "")
        names = [*FASTTRAIN_BACKENDS, *(["torch", "torch fused"] if torch_names else [])]
        return Case("adamw", "step", shape, names, setup, nbytes=BYTES_PER_PARAM * P,
                    extras=list(EXTRAS), api=("adamw_step",))
    return [case(m) for m in models]

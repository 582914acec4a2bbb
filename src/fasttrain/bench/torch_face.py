"""fasttrain from PyTorch (fasttrain.torch): a PyTorch model's training step, stock against the
same model with fasttrain's kernels and optimizer swapped in; and the optimizer step alone.

"GPT ..." shapes: one training step (forward, loss, backward, clip_grad_norm_ to 1, AdamW,
zero_grad) of fasttrain.models.torch_gpt.TorchGPT (nanoGPT's model) on nanoGPT's two param
groups, float32. Contenders, each on its own copy of the same weights and batch:
  "torch"          the stock model with torch.optim.AdamW(fused=True), PyTorch's fastest on CPU;
  "c lce+adamw"    the same model with the loss through fasttrain.torch.linear_cross_entropy
                   (no (N, V) logits) and fasttrain.torch.AdamW (fasttrain.torch.patch with
                   layers=False);
  "c all"          also LayerNorm, attention on the packed qkv and GELU on fasttrain's kernels
                   (fasttrain.torch.patch(model)).
Rate: tokens per second (B*T a step). --memory gives each one's extra peak resident memory in
a step: at V = 50304 the stock step holds the logits and their gradient, (B*T, V) each.

"AdamW ..." shapes: one optimizer step over a model held in many tensors (GPT-2 124M's 148
parameter tensors, the gradients set once): "torch fused" (fused=True), "torch" (the default,
one tensor at a time), "c arena" (fasttrain.torch.AdamW: one kernel call over the arena).
Roofline: 28 bytes per parameter (fasttrain.bench.adamw).

fasttrain's contenders are named "c ...": they run on its default (C) backend, and the
table's "vs torch" column divides the faster torch contender's time by theirs.
"""
import math

from fasttrain.bench._case import Case, rng

ORDER = 95  # after gpt_step
ALIASES = ("fasttrain.torch", "torch_gpt")
DEFAULT = False  # needs torch, and the V = 50304 and 124M cases take minutes: only when named

# (n_layer, n_head, n_embd, block_size, batch, vocab)
GPTS = {
    "GPT V256": (4, 4, 256, 128, 16, 256),
    "GPT V50304": (2, 4, 256, 128, 8, 50304),
    "GPT tiny": (1, 2, 32, 16, 2, 64),
}


def gpt2_tensors(L=12, C=768, V=50257, T=1024):
    """The shapes of GPT-2's parameter tensors (124M at the defaults: 4 + 12 per block)."""
    block = [(C,), (C,), (3 * C, C), (3 * C,), (C, C), (C,), (C,), (C,), (4 * C, C), (4 * C,),
             (C, 4 * C), (C,)]
    return [(V, C), (T, C), *block * L, (C,), (C,)]


OPTIMIZERS = {"AdamW 124M": gpt2_tensors(), "AdamW tiny": gpt2_tensors(2, 16, 64, 16)}
SHAPES = ["GPT V256", "GPT V50304", "AdamW 124M"]
QUICK = ["GPT V256"]
TINY = ["GPT tiny", "AdamW tiny"]
BYTES_PER_PARAM = 28


def label(shape):
    return shape


def parse_shape(text):
    if text not in GPTS and text not in OPTIMIZERS:
        raise ValueError(f"a torch_face shape is one of {', '.join([*GPTS, *OPTIMIZERS])}; "
                         f"got {text!r}")
    return text


def make_step(name, L, H, C, T, B, V):
    """Contender `name`'s training step on its own model, all from the same seed and batch."""
    import torch

    import fasttrain.torch as ft
    from fasttrain.models.torch_gpt import TorchGPT
    from fasttrain.models.torch_mlp import torch_train_step

    torch.manual_seed(0)
    model = TorchGPT(vocab_size=V, block_size=T, n_layer=L, n_head=H, n_embd=C)
    groups = model.param_groups(0.1)
    if name == "torch":
        opt = torch.optim.AdamW(groups, lr=3e-4, betas=(0.9, 0.95), fused=True)
    else:
        ft.patch(model, layers=name == "c all")
        opt = ft.AdamW(groups, lr=3e-4, betas=(0.9, 0.95))
    r = rng()
    x = torch.from_numpy(r.integers(0, V, size=(B, T)))  # (B, T) tokens
    y = torch.from_numpy(r.integers(0, V, size=(B, T)))  # (B, T) the next token of each
    return lambda: torch_train_step(model, opt, x, y, 1.0)


def make_optimizer_step(name, shapes):
    import torch

    import fasttrain.torch as ft

    g = torch.Generator().manual_seed(0)
    params = []
    for s in shapes:
        p = torch.randn(s, generator=g).requires_grad_()
        p.grad = torch.randn(s, generator=g) * 1e-2
        params.append(p)
    hyper = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    if name == "c arena":
        return ft.AdamW(params, **hyper).step
    return torch.optim.AdamW(params, **hyper, fused=name == "torch fused").step


def cases(shapes, torch_names):
    if not torch_names:
        return []  # every contender is a PyTorch model

    def gpt_case(shape):
        L, H, C, T, B, V = GPTS[shape]
        return Case("torch_face", "train step", shape, ["torch", "c lce+adamw", "c all"],
                    lambda names: {n: make_step(n, L, H, C, T, B, V) for n in names},
                    tokens=B * T)

    def adamw_case(shape):
        sizes = OPTIMIZERS[shape]
        P = sum(math.prod(s) for s in sizes)
        return Case("torch_face", "AdamW step", f"{shape} ({P:,} in {len(sizes)} tensors)",
                    ["torch fused", "torch", "c arena"],
                    lambda names: {n: make_optimizer_step(n, sizes) for n in names},
                    nbytes=BYTES_PER_PARAM * P)
    return [gpt_case(s) if s in GPTS else adamw_case(s) for s in shapes]

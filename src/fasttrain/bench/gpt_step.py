"""One training step of the GPT (fasttrain.models.GPT): forward, fused head + cross-entropy,
backward, gradient norm and clipping, AdamW (fasttrain.train.train_step), with the optimizer
settings of fasttrain train's defaults. Its peers are the same model in PyTorch
(fasttrain.models.torch_gpt, nanoGPT's) with torch.optim.AdamW on nanoGPT's two parameter
groups and clip_grad_norm_: "torch" in eager mode, "torch compile" with the model's forward and
loss under torch.compile (compiled on the first call, which the harness's warm-up makes: the
compile time is not timed; if it cannot compile here, the run reports it under failed).

Rate: tokens per second (B*T predicted per step); "of limit": the model's FLOPs per step as a
share of the GEMM probe's rate (MFU), counted as

    6 * (P + V*C) * B*T  +  6 * L * B * T^2 * C

P the non-embedding parameters (every block's matrices, biases and layernorms, and ln_f), V*C
the head's matrix (tied to wte: the embedding lookup itself costs no FLOPs), 6 = 2 forward + 4
backward per weight and token; the second term is causal attention: q k^T and att @ v, 2*T*T*C
FLOPs each per sequence and layer forward, twice that backward, 12 * L * B * T^2 * C in all,
halved for the causal mask.

Contenders: c, torch, torch compile; the numpy reference (the "vs numpy" column's base) only up
to NUMPY_MAX_FLOPS a step: at the small shape its step took 3.8 s against c's 0.5-1.0 s (its
attention materialises (T, T) per head), which would add half a minute to --quick, and
far more at the 124M shape. Numba is left out: with its OpenMP threading layer started in the
same process, PyTorch's scaled_dot_product_attention runs ~10x slower (README, attention),
which would flatter every ratio against torch, and its first step compiles for 30 s."""
from fasttrain.bench._case import Case, rng

ORDER = 91  # just after train_step (the MLP's)
ALIASES = ("gpt", "gpt_train_step")

# (n_layer, n_head, n_embd, block_size, batch, vocab)
SMALL = (4, 4, 256, 128, 16, 256)
GPT2_124M = (12, 12, 768, 64, 4, 50304)
SHAPES = [SMALL]
MORE = [GPT2_124M]  # ~2.5 GB and seconds a step per contender, a cold torch.compile of a
                    # minute: only with --shapes "L12 H12 C768 T64 B4 V50304"
QUICK = [SMALL]
TINY = [(1, 2, 32, 16, 2, 64)]
NUMPY_MAX_FLOPS = 10e9  # the numpy reference runs up to this many FLOPs a step


def label(shape):
    return "L{} H{} C{} T{} B{} V{}".format(*shape)


def parse_shape(text: str):
    """'L4 H4 C256 T128 B16 V256' (as the table writes it, in any order) or 4x4x256x128x16x256
    (n_layer x n_head x n_embd x block_size x batch x vocab)."""
    letters = "LHCTBV"
    parts = text.replace("x", " ").split()
    try:
        if len(parts) == 6 and all(p[:1].upper() in letters for p in parts):
            values = {p[0].upper(): int(p[1:]) for p in parts}
            shape = tuple(values[k] for k in letters)
        else:
            shape = tuple(int(p) for p in parts)
    except (ValueError, KeyError):
        shape = ()
    if len(shape) != 6 or min(shape) < 1 or shape[2] % shape[1]:
        raise ValueError(f"a gpt_step shape is n_layer, n_head, n_embd, block_size, batch, vocab "
                         f"(n_embd a multiple of n_head) as '{label(SMALL)}' or "
                         f"{'x'.join(map(str, SMALL))}, got {text!r}")
    return shape


def flops(L, H, C, T, B, V) -> int:
    """The model FLOPs of one step (the module docstring's formula)."""
    P = L * (12 * C * C + 13 * C) + 2 * C  # non-embedding: blocks and ln_f
    return 6 * (P + V * C) * B * T + 6 * L * B * T * T * C


def make_step(name, L, H, C, T, B, V):
    """Contender `name`'s step on its own model, all built from the same seed and batch."""
    from fasttrain.config import TrainConfig
    from fasttrain.models.gpt import GPT
    from fasttrain.optim import AdamW
    from fasttrain.train import train_step

    cfg = TrainConfig()  # the optimizer settings of fasttrain train's defaults
    r = rng()
    x = r.integers(0, V, size=(B, T))  # (B, T) tokens
    y = r.integers(0, V, size=(B, T))  # (B, T) the next token of each
    torch_side = name.startswith("torch")
    model = GPT(vocab_size=V, block_size=T, n_layer=L, n_head=H, n_embd=C,
                backend=None if torch_side else name)
    model.init(cfg.seed)
    if torch_side:
        import torch

        from fasttrain.models.torch_gpt import TorchGPT
        from fasttrain.models.torch_mlp import torch_train_step

        tm = TorchGPT.like(model)
        del model
        opt = torch.optim.AdamW(tm.param_groups(cfg.weight_decay), lr=cfg.min_lr,
                                betas=(cfg.beta1, cfg.beta2))
        forward = torch.compile(tm) if name == "torch compile" else tm  # compiles on 1st call
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def step():
            return torch_train_step(forward, opt, xt, yt, cfg.grad_clip)
        return step
    opt = AdamW(model.arena, lr=cfg.min_lr, betas=(cfg.beta1, cfg.beta2),
                weight_decay=cfg.weight_decay, backend=name)
    return lambda: train_step(model, opt, [(x, y)], cfg.min_lr, cfg.grad_clip)


def cases(shapes, torch_names):
    def case(L, H, C, T, B, V):
        def setup(names):
            return {name: make_step(name, L, H, C, T, B, V) for name in names}
        numpy = ["numpy"] if flops(L, H, C, T, B, V) <= NUMPY_MAX_FLOPS else []
        torch = [*torch_names, "torch compile"] if torch_names else []
        return Case("gpt_step", "GPT step", label((L, H, C, T, B, V)), ["c", *numpy, *torch],
                    setup, flops=flops(L, H, C, T, B, V), tokens=B * T)
    return [case(*s) for s in shapes]

"""One training step of the default model (fasttrain train's defaults: byte-level MLP):
forward, fused cross-entropy, backward, gradient norm and clipping, AdamW (fasttrain.train).
torch is the same model in PyTorch eager (fasttrain.models.torch_mlp) with torch.optim.AdamW as
users get it by default and clip_grad_norm_. Rate: tokens (predicted) per second."""
from fasttrain.bench._case import FASTTRAIN_BACKENDS, Case, rng

ORDER = 90
ALIASES = ("train", "step")


def _default_model() -> tuple[int, int, int, int]:
    """(B, T, E, H) of the model `fasttrain train` trains by default (bytes: V = 256)."""
    from fasttrain.config import TrainConfig

    c = TrainConfig()
    return c.batch_size, c.context, c.n_embd, c.hidden


SHAPES = [_default_model()]
QUICK = SHAPES
TINY = [(32, 4, 8, 16)]


def label(shape):
    return "B{} T{} E{} H{}".format(*shape)


def make_step(name, B, T, E, H):
    """Contender `name`'s step on its own model, all built from the same seed and batch."""
    from fasttrain.config import TrainConfig
    from fasttrain.models import MLP
    from fasttrain.optim import AdamW
    from fasttrain.train import train_step

    cfg = TrainConfig()  # the optimizer settings of fasttrain train's defaults
    r = rng()
    x = r.integers(0, 256, size=(B, T))  # (B, T) byte windows
    y = r.integers(0, 256, size=B)       # (B,) the next byte
    torch_side = name.startswith("torch")
    model = MLP(vocab_size=256, context=T, n_embd=E, hidden=H, activation=cfg.activation,
                backend=None if torch_side else name)
    model.init(cfg.seed)
    if torch_side:
        import torch

        from fasttrain.models.torch_mlp import TorchMLP, torch_train_step

        tm = TorchMLP.like(model)
        opt = torch.optim.AdamW(tm.parameters(), lr=cfg.min_lr, betas=(cfg.beta1, cfg.beta2),
                                weight_decay=cfg.weight_decay)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        return lambda: torch_train_step(tm, opt, xt, yt, cfg.grad_clip)
    opt = AdamW(model.arena, lr=cfg.min_lr, betas=(cfg.beta1, cfg.beta2),
                weight_decay=cfg.weight_decay, backend=name)
    return lambda: train_step(model, opt, [(x, y)], cfg.min_lr, cfg.grad_clip)


def cases(shapes, torch_names):
    def case(B, T, E, H):
        def setup(names):
            return {name: make_step(name, B, T, E, H) for name in names}
        return Case("train_step", "MLP step", label((B, T, E, H)),
                    [*FASTTRAIN_BACKENDS, *torch_names], setup, tokens=B)
    return [case(*s) for s in shapes]

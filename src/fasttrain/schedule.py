"""Learning-rate schedules: linear warmup, then cosine, linear or constant to min_lr.

    lr(step), step counting from 0:
      1. warmup:  step < warmup         -> lr * (step + 1) / warmup
      2. decay:   warmup <= step        -> min_lr + c(progress) * (lr - min_lr),
                                           progress = (step - warmup) / (steps - warmup) in [0, 1]
                  cosine:   c = (1 + cos(pi * progress)) / 2
                  linear:   c = 1 - progress
                  constant: c = 1  (min_lr unused)
"""
import math


def learning_rate(step: int, *, lr: float, min_lr: float, warmup: int, steps: int,
                  schedule: str = "cosine") -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    if schedule == "constant":
        return lr
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    if schedule == "cosine":
        c = 0.5 * (1.0 + math.cos(math.pi * progress))
    elif schedule == "linear":
        c = 1.0 - progress
    else:
        raise ValueError(f"schedule must be 'cosine', 'linear' or 'constant', got {schedule!r}")
    return min_lr + c * (lr - min_lr)


def from_config(cfg) -> list[float]:
    """The learning rate at every step of a TrainConfig's run."""
    return [learning_rate(s, lr=cfg.lr, min_lr=cfg.min_lr, warmup=cfg.warmup, steps=cfg.steps,
                          schedule=cfg.schedule) for s in range(cfg.steps)]

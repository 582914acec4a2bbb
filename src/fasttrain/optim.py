"""Optimizers over a whole parameter arena: AdamW and SGD with momentum.

    opt = AdamW(arena, lr=3e-4, weight_decay=0.1)
    ...                                           # forward, backward: arena.grads filled
    norm = fasttrain.clip_grad_norm(arena.grads, 1.0)
    opt.step(lr=schedule(it), grad_scale=fasttrain.clip_coef(norm, 1.0))

Each optimizer owns its state as flat buffers of the arena's layout (AdamW: m and v; SGD: the
momentum buffer) and updates the whole model with at most two kernel calls per step: the
arena's decayed range with weight_decay, the rest with 0. That is torch.optim.AdamW / SGD with
two parameter groups, ``[{"params": decayed, "weight_decay": wd}, {"params": rest,
"weight_decay": 0}]``. step() allocates no array.

Checkpoints: state_arrays() (named arrays) and step_count hold everything; load_state() puts
them back, and training then continues bit for bit as if never interrupted (on the same backend;
the kernels' bits do not depend on the thread count).
"""
from __future__ import annotations

import numpy as np

from fasttrain.arena import Arena
from fasttrain.kernels import _checks
from fasttrain.kernels.adamw import adamw_step, sgd_step


class _ArenaOptimizer:
    """What AdamW and SGD share: the arena's ranges, the step count, the state round trip."""

    _state_names: tuple[str, ...] = ()

    def __init__(self, arena: Arena, lr, weight_decay, backend):
        if not isinstance(arena, Arena):
            raise TypeError(f"expected a fasttrain Arena, got {type(arena).__name__}")
        if not arena.built:
            raise RuntimeError("build() the arena before making its optimizer")
        self.arena = arena
        self.lr = _checks.real_range("lr", lr, 0.0, np.inf, hi_open=True)
        self.weight_decay = _checks.real_range("weight_decay", weight_decay, 0.0, np.inf,
                                               hi_open=True)
        self.backend = backend
        self.step_count = 0  # steps taken; the next step() is step number step_count + 1

    def _views(self, *buffers: np.ndarray | None):
        """The buffers cut once, so that step() makes no views: [(views, decayed)], one entry
        per kernel call. The arena's decayed range and the rest, or the whole buffer when one
        of the two is empty. step() reads self.weight_decay for the decayed range each time."""
        P, d = self.arena.size, self.arena.decay_size
        ranges = [(slice(0, P), d > 0)] if d in (0, P) else [(slice(0, d), True),
                                                              (slice(d, P), False)]
        return [(tuple(None if b is None else b[span] for b in buffers), decayed)
                for span, decayed in ranges]

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The optimizer's state buffers by name, (P,) each, in the arena's layout. These are
        the live buffers, not copies: copy them to keep them while training goes on."""
        return {name: getattr(self, name) for name in self._state_names}

    def load_state(self, arrays: dict[str, np.ndarray], step_count: int) -> None:
        """Copy state saved by state_arrays() back in, and set the step count. The names,
        shapes and dtype must match this optimizer's exactly; nothing is written otherwise."""
        if set(arrays) != set(self._state_names):
            raise ValueError(f"state arrays must be exactly {sorted(self._state_names)}, "
                             f"got {sorted(arrays)}")
        step_count = _checks.integer("step_count", step_count)
        if step_count < 0:
            raise ValueError(f"step_count must be >= 0, got {step_count}")
        for name in self._state_names:
            a, mine = arrays[name], getattr(self, name)
            if not isinstance(a, np.ndarray):
                raise TypeError(f"state {name!r} must be a numpy.ndarray, got {type(a).__name__}")
            if a.shape != mine.shape or a.dtype != mine.dtype:
                raise ValueError(f"state {name!r} has shape {a.shape} and dtype {a.dtype}; this "
                                 f"arena needs {mine.shape} {mine.dtype}")
        for name in self._state_names:
            np.copyto(getattr(self, name), arrays[name])
        self.step_count = step_count


class AdamW(_ArenaOptimizer):
    """AdamW over a whole arena: torch.optim.AdamW(params, lr, betas, eps, weight_decay), with
    weight decay only on the arena's decayed range (see fasttrain.adamw_step for the update).

    Attributes: m, v (P,) the moment estimates; step_count; lr, betas, eps, weight_decay (the
    defaults of step(); they may be changed between steps).
    """

    _state_names = ("m", "v")

    def __init__(self, arena: Arena, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 backend=None):
        super().__init__(arena, lr, weight_decay, backend)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (_checks.real_range("beta1", betas[0], 0.0, 1.0, hi_open=True),
                      _checks.real_range("beta2", betas[1], 0.0, 1.0, hi_open=True))
        self.eps = _checks.real_range("eps", eps, 0.0, np.inf, lo_open=True, hi_open=True)
        self.m = np.zeros_like(arena.params)  # (P,)
        self.v = np.zeros_like(arena.params)  # (P,)
        self._calls = self._views(arena.params, arena.grads, self.m, self.v)

    def step(self, lr=None, grad_scale=1.0) -> None:
        """One AdamW step over the whole model from arena.grads (which it does not change).

        lr: this step's learning rate (a schedule's value); None uses self.lr.
        grad_scale: multiplies every gradient as it is read, e.g.
            fasttrain.clip_coef(norm, max_norm) for clipping, or 1 / loss scale.
        """
        lr = self.lr if lr is None else lr
        beta1, beta2 = self.betas
        for (p, g, m, v), decayed in self._calls:
            adamw_step(p, g, m, v, step=self.step_count + 1, lr=lr, beta1=beta1, beta2=beta2,
                       eps=self.eps, weight_decay=self.weight_decay if decayed else 0.0,
                       grad_scale=grad_scale, backend=self.backend)
        self.step_count += 1


class SGD(_ArenaOptimizer):
    """SGD with momentum over a whole arena: torch.optim.SGD(params, lr, momentum,
    nesterov=nesterov, weight_decay=weight_decay) (dampening 0), with weight decay only on the
    arena's decayed range (see fasttrain.sgd_step for the update).

    Attributes: momentum_buffer (P,), or None when momentum == 0; step_count; lr, weight_decay
    (the defaults of step(); they may be changed between steps); momentum and nesterov (fixed).
    """

    def __init__(self, arena: Arena, *, lr, momentum=0.0, nesterov=False, weight_decay=0.0,
                 backend=None):
        super().__init__(arena, lr, weight_decay, backend)
        self.momentum = _checks.real_range("momentum", momentum, 0.0, np.inf, hi_open=True)
        self.nesterov = _checks.boolean("nesterov", nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0, got momentum=0.0")
        self.momentum_buffer = np.zeros_like(arena.params) if self.momentum else None  # (P,)
        self._state_names = ("momentum_buffer",) if self.momentum else ()
        self._calls = self._views(arena.params, arena.grads, self.momentum_buffer)

    def step(self, lr=None, grad_scale=1.0) -> None:
        """One SGD step over the whole model from arena.grads (which it does not change).
        lr and grad_scale as in AdamW.step."""
        lr = self.lr if lr is None else lr
        for (p, g, buf), decayed in self._calls:
            sgd_step(p, g, buf, lr=lr, momentum=self.momentum, nesterov=self.nesterov,
                     weight_decay=self.weight_decay if decayed else 0.0, grad_scale=grad_scale,
                     backend=self.backend)
        self.step_count += 1

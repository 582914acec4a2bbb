"""AdamW and SGD as torch.optim.Optimizers that update a whole model in one fused pass.

    opt = fasttrain.torch.AdamW(model.parameters(), lr=3e-4)   # torch.optim.AdamW's defaults

Drop-in for torch.optim.AdamW / SGD: the same arguments and defaults, param groups (per-group lr,
weight decay, betas...), state_dict() / load_state_dict() in PyTorch's format (a run switches
between these and torch.optim's both ways, tests/test_torch_face.py), zero_grad, closures, and
torch.optim.lr_scheduler working on it.

The arena. At construction every parameter moves into one flat buffer (P,) and its gradient into
a second one; each ``param`` (its ``.data``) and ``param.grad`` becomes a view of its range, so
the modules and autograd keep writing where they did. The optimizer state (AdamW's exp_avg and
exp_avg_sq, SGD's momentum_buffer) lives in flat buffers of the same layout. The params are laid
out group by group, in order, each starting on 64 bytes (the gaps are zeros and stay zero), so a
step is one fasttrain.kernels.adamw_step (sgd_step) call per param group: one pass over the
whole model, 28 bytes per parameter for AdamW in float32, where torch's default path makes
about a dozen passes per tensor.

What differs from torch.optim, on purpose:
  - zero_grad(set_to_none=...) always fills the gradient buffer with zeros in one pass and
    keeps each param.grad a view: a None grad would make the next backward allocate every
    gradient afresh and step() copy it back. So a parameter that gets no gradient in a step is
    stepped with a zero gradient (its moments decay, weight decay applies), where torch with
    set_to_none=True skips it. A grad set to None by other code (model.zero_grad()) is skipped
    as torch does, and a grad tensor that autograd or the user put in place of the view is
    copied into the arena at the next step.
  - foreach and fused are accepted and ignored: the step is always one fused pass.
    capturable=True and differentiable=True raise NotImplementedError (CPU only; no autograd
    through a step). amsgrad=True is the kernel's v_max (one more buffer, 8 more bytes moved
    per parameter); SGD's dampening is the kernel's.
  - maximize=True costs nothing: the kernels read the gradient with grad_scale = -1.
  - All params must be CPU tensors of one dtype, float32 or float64, and must not be moved
    (.to(), .cuda()) after the optimizer is made: a param whose .data was replaced is copied
    back into the arena at the next step, losing nothing, but one copy.
"""
from __future__ import annotations

import torch

from fasttrain.kernels import adamw_step, sgd_step

_ALIGN_BYTES = 64  # each param starts on a cache line, as in fasttrain.arena


def _unsupported(name, value, default, why):
    if value != default:
        raise NotImplementedError(f"{name}={value!r} is not supported by fasttrain.torch yet "
                                  f"({why}); only {name}={default!r}")


class _ArenaOptimizer(torch.optim.Optimizer):
    """What AdamW and SGD share: the flat buffers, the views, the state round trip.

    Subclasses give _wanted_keys() (the per-param state held in flat buffers, for the groups as
    they are), _check_group(group) and _step_run(group, lo, hi, run) for one kernel call over
    the flat range [lo, hi)."""

    _state_keys: tuple[str, ...] = ()  # the flat state buffers allocated by the last _build

    def _wanted_keys(self) -> tuple[str, ...]:
        return ()

    def __init__(self, params, defaults):
        self._built = False
        super().__init__(params, defaults)  # add_param_group for each group
        self._build()

    # -- the arena -------------------------------------------------------------------------------
    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        self._check_group(self.param_groups[-1])
        if self._built:
            self._build()  # a larger arena; params, grads and state copied over

    def _build(self) -> None:
        params = [p for g in self.param_groups for p in g["params"]]
        if not params:
            raise ValueError("the optimizer got an empty parameter list")
        dtype = params[0].dtype
        for i, p in enumerate(params):
            if p.device.type != "cpu":
                raise ValueError(f"parameter {i} is on device {p.device}: fasttrain.torch's "
                                 "optimizers update CPU tensors only")
            if p.dtype not in (torch.float32, torch.float64):
                raise TypeError(f"parameter {i} has dtype {p.dtype}: fasttrain.torch's "
                                "optimizers take float32 or float64 parameters")
            if p.dtype != dtype:
                raise TypeError(f"parameter {i} has dtype {p.dtype} but parameter 0 has {dtype}:"
                                " all must share one dtype (they share one buffer)")
            if p.layout != torch.strided or (p.grad is not None and p.grad.is_sparse):
                raise ValueError(f"parameter {i} is sparse (or has a sparse gradient): "
                                 "not supported")
            if not p.is_leaf:
                raise ValueError(f"parameter {i} is not a leaf tensor: an optimizer can only "
                                 "update leaves")
        self._state_keys = self._wanted_keys()
        align = _ALIGN_BYTES // dtype.itemsize
        spans, offset = [], 0
        for p in params:
            spans.append((offset, offset + p.numel()))
            offset = -(-(offset + p.numel()) // align) * align
        P = offset
        flat_params = torch.zeros(P, dtype=dtype)   # (P,) every parameter
        flat_grads = torch.zeros(P, dtype=dtype)    # (P,) every gradient
        flat_state = {k: torch.zeros(P, dtype=dtype) for k in self._state_keys}  # (P,) each
        with torch.no_grad():
            for p, (lo, hi) in zip(params, spans):
                view = flat_params[lo:hi].view_as(p)
                view.copy_(p)
                p.data = view
                if p.grad is not None:
                    flat_grads[lo:hi].view_as(p).copy_(p.grad)
                if p.requires_grad:
                    p.grad = flat_grads[lo:hi].view_as(p)
                state = self.state.get(p)
                for k in self._state_keys:
                    if state and state.get(k) is not None:
                        flat_state[k][lo:hi].view_as(p).copy_(state[k])
                        state[k] = flat_state[k][lo:hi].view_as(p)
        self._params, self._spans = params, spans
        self._flat_params, self._flat_grads, self._flat_state = flat_params, flat_grads, flat_state
        # numpy views of the same memory, for the kernels (no copy)
        self._np = {"param": flat_params.numpy(), "grad": flat_grads.numpy(),
                    **{k: t.numpy() for k, t in flat_state.items()}}
        self._built = True

    def _sync(self) -> None:
        """Bring back into the arena any param or grad that other code replaced."""
        with torch.no_grad():
            for p, (lo, hi) in zip(self._params, self._spans):
                view = self._flat_params[lo:hi]
                if p.data_ptr() != view.data_ptr():
                    if p.numel() != hi - lo or p.dtype != view.dtype or p.device.type != "cpu":
                        raise RuntimeError("a parameter changed shape, dtype or device after the "
                                           "optimizer was made: make the optimizer again")
                    view.view_as(p).copy_(p)
                    p.data = view.view_as(p)
                g = p.grad
                gview = self._flat_grads[lo:hi]
                if g is not None and g.data_ptr() != gview.data_ptr():
                    gview.view_as(p).copy_(g)
                    p.grad = gview.view_as(p)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero every gradient in one fill of the arena's gradient buffer; param.grad stays a
        view of it whatever set_to_none says (see the module docstring)."""
        self._sync()
        self._flat_grads.zero_()
        for p, (lo, hi) in zip(self._params, self._spans):
            if p.requires_grad and p.grad is None:
                p.grad = self._flat_grads[lo:hi].view_as(p)

    # -- the step --------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure=None):
        """One step over every param that has a gradient, one kernel call per param group
        (more only where params without a gradient or with different step counts split one)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._sync()
        index = {id(p): i for i, p in enumerate(self._params)}
        if self._wanted_keys() != self._state_keys:
            self._build()  # a group turned on a state buffer (AdamW's amsgrad)
        for group in self.param_groups:
            self._check_group(group)
            run: list[int] = []  # consecutive params (indices) of one step count
            for p in group["params"]:
                i = index[id(p)]
                if p.grad is None:
                    self._flush(group, run)
                    run = []
                    continue
                state = self.state[p]
                if not state:
                    self._init_state(group, p, state, i)
                if run and (i != run[-1] + 1 or self._step_of(run[-1]) != self._step_of(i)):
                    self._flush(group, run)
                    run = []
                run.append(i)
            self._flush(group, run)
        return loss

    def _flush(self, group, run: list[int]) -> None:
        if run:
            lo, hi = self._spans[run[0]][0], self._spans[run[-1]][1]
            self._step_run(group, lo, hi, run)

    def _init_state(self, group, p, state, i, keys=None) -> None:
        lo, hi = self._spans[i]
        for k in self._state_keys if keys is None else keys:
            state[k] = self._flat_state[k][lo:hi].view_as(p)

    def _step_of(self, i) -> int:
        return 0

    # -- state_dict ------------------------------------------------------------------------------
    def load_state_dict(self, state_dict) -> None:
        """Load a state_dict saved by this optimizer or by its torch.optim twin; the state is
        copied into the arena and the params and grads stay where they are."""
        super().load_state_dict(state_dict)  # self.state[p]: new tensors cast to p's dtype
        if self._wanted_keys() != self._state_keys:
            self._build()  # the loaded groups want other state buffers (amsgrad)
        with torch.no_grad():
            for i, p in enumerate(self._params):
                lo, hi = self._spans[i]
                state = self.state.get(p)
                for k in self._state_keys:
                    view = self._flat_state[k][lo:hi].view_as(p)
                    if state and state.get(k) is not None:
                        view.copy_(state[k])
                        state[k] = view
                    else:
                        view.zero_()
                self._adopt(p, state, i)
        for group in self.param_groups:
            self._check_group(group)

    def _adopt(self, p, state, i) -> None:
        pass


class AdamW(_ArenaOptimizer):
    """torch.optim.AdamW on one flat arena: the same arguments, defaults and state_dict.

    Each step is fasttrain.kernels.adamw_step over each param group's range of the arena (the
    update of torch.optim.AdamW's single-tensor path, formula for formula; within a few ulp of
    its fused=True path). state[p] holds "step" (a 0-d float32 tensor, as torch's), "exp_avg"
    and "exp_avg_sq" (views of the arena's m and v buffers), and with amsgrad=True
    "max_exp_avg_sq" (a view of a third buffer, allocated only then). See the module docstring
    for what differs (zero_grad).
    """

    def _wanted_keys(self):
        amsgrad = any(g["amsgrad"] for g in self.param_groups)
        return ("exp_avg", "exp_avg_sq", *(("max_exp_avg_sq",) if amsgrad else ()))

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, *,
                 amsgrad=False, maximize=False, foreach=None, capturable=False,
                 differentiable=False, fused=None):
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, foreach=foreach, maximize=maximize,
                        capturable=capturable, differentiable=differentiable, fused=fused,
                        decoupled_weight_decay=True)
        self._steps: list[int] = []
        super().__init__(params, defaults)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:  # torch's keys, so that a state_dict loads both ways
            for k, v in (("amsgrad", False), ("maximize", False), ("foreach", None),
                         ("capturable", False), ("differentiable", False), ("fused", None),
                         ("decoupled_weight_decay", True)):
                group.setdefault(k, v)

    def _build(self):
        super()._build()
        self._steps = [int(self.state[p]["step"]) if self.state.get(p) else 0
                       for p in self._params]

    def _check_group(self, group):
        _unsupported("capturable", group["capturable"], False, "CPU only")
        _unsupported("differentiable", group["differentiable"], False, "no autograd through step")
        _unsupported("decoupled_weight_decay", group.get("decoupled_weight_decay", True), True,
                     "AdamW's decay is decoupled")

    def _init_state(self, group, p, state, i):
        state["step"] = torch.tensor(0.0, dtype=torch.float32)  # as torch.optim.AdamW's
        keys = ("exp_avg", "exp_avg_sq", *(("max_exp_avg_sq",) if group["amsgrad"] else ()))
        super()._init_state(group, p, state, i, keys)
        self._steps[i] = 0

    def _adopt(self, p, state, i):
        self._steps[i] = int(state["step"]) if state else 0
        if state:
            state["step"] = torch.as_tensor(state["step"], dtype=torch.float32).clone()

    def _step_of(self, i):
        return self._steps[i]

    def _step_run(self, group, lo, hi, run):
        a = self._np
        step = self._steps[run[0]] + 1
        beta1, beta2 = group["betas"]
        adamw_step(a["param"][lo:hi], a["grad"][lo:hi], a["exp_avg"][lo:hi],
                   a["exp_avg_sq"][lo:hi], step=step, lr=float(group["lr"]), beta1=float(beta1),
                   beta2=float(beta2), eps=float(group["eps"]),
                   weight_decay=float(group["weight_decay"]),
                   grad_scale=-1.0 if group["maximize"] else 1.0,
                   v_max=a["max_exp_avg_sq"][lo:hi] if group["amsgrad"] else None)
        for i in run:
            self._steps[i] = step
        torch._foreach_add_([self.state[self._params[i]]["step"] for i in run], 1.0)


class SGD(_ArenaOptimizer):
    """torch.optim.SGD on one flat arena: the same arguments, defaults and state_dict.

    Each step is fasttrain.kernels.sgd_step over each param group's range (torch's update,
    formula for formula). state[p]["momentum_buffer"] is a view of the arena's momentum buffer
    when the group's momentum is not 0. A param's first step with momentum runs with no
    dampening, as torch's (which copies that gradient into a new buffer).
    """

    def _wanted_keys(self):
        return ("momentum_buffer",) if any(g["momentum"] for g in self.param_groups) else ()

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, *, maximize=False, foreach=None, differentiable=False,
                 fused=None):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                        foreach=foreach, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            for k, v in (("nesterov", False), ("maximize", False), ("foreach", None),
                         ("differentiable", False), ("fused", None)):
                group.setdefault(k, v)

    def _check_group(self, group):
        _unsupported("differentiable", group["differentiable"], False, "no autograd through step")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _init_state(self, group, p, state, i):
        pass  # the buffer appears at the first step with momentum, as torch's

    def _step_of(self, i):
        # 0: no momentum buffer yet (this step fills it, undampened), 1: it has one
        return int(self.state[self._params[i]].get("momentum_buffer") is not None)

    def _step_run(self, group, lo, hi, run):
        a = self._np
        momentum = float(group["momentum"])
        sgd_step(a["param"][lo:hi], a["grad"][lo:hi],
                 a["momentum_buffer"][lo:hi] if momentum else None, lr=float(group["lr"]),
                 momentum=momentum, nesterov=bool(group["nesterov"]),
                 dampening=float(group["dampening"]) if self._step_of(run[0]) else 0.0,
                 weight_decay=float(group["weight_decay"]),
                 grad_scale=-1.0 if group["maximize"] else 1.0)
        if momentum:
            for i in run:
                p = self._params[i]
                lo_i, hi_i = self._spans[i]
                self.state[p]["momentum_buffer"] = \
                    self._flat_state["momentum_buffer"][lo_i:hi_i].view_as(p)

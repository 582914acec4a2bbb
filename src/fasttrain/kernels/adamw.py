"""The optimizer kernels' public front: adamw_step, sgd_step, sum_of_squares, and gradient
clipping built on the last. Each validates every argument, then dispatches; the mathematics is
in ref/adamw.py (the spec), csrc/adamw.c and numba/adamw.py.

The steps work in place on arrays of any shape (P,) or otherwise, as long as all of them share
one shape and dtype and are C-contiguous; fasttrain.arena passes whole flat buffers, so that one
call updates a whole model. Nothing is copied and nothing is allocated by the C and Numba
backends: a step reads and writes each value once (28 bytes per parameter for AdamW in float32).
"""
from __future__ import annotations

import math

import numpy as np

from fasttrain.kernels import _checks
from fasttrain.kernels._backends import implementation

# torch.nn.utils.clip_grad_norm_ adds this to the norm before dividing max_norm by it.
CLIP_EPS = 1e-6


def adamw_step(param, grad, m, v, *, step, lr, beta1=0.9, beta2=0.999, eps=1e-8,
               weight_decay=0.0, grad_scale=1.0, v_max=None, backend=None):
    """One AdamW step, in place, in one pass over param, grad, m and v.

    The same update as ``torch.optim.AdamW(params, lr, betas=(beta1, beta2), eps, weight_decay)``
    (its single-tensor path, the default for CPU tensors), in the same order of operations::

        g = grad_scale * grad
        param *= 1 - lr * weight_decay                   # decoupled weight decay
        m = lerp(m, g, 1 - beta1)                        # = beta1*m + (1 - beta1)*g
        v = beta2 * v + (1 - beta2) * g * g
        v_max = maximum(v_max, v)                        # AMSGrad only (v_max given)
        denom = sqrt(v) / sqrt(1 - beta2**step) + eps    # eps outside the square root;
                                                         # sqrt(v_max) with AMSGrad
        param -= lr / (1 - beta1**step) * m / denom

    Bias corrections are computed once per call, in double. The float32 and float64 results are
    the same bits on every backend and for any thread count; against PyTorch they agree to a few
    ulp (PyTorch's own bits vary with the CPU: it fuses multiply-adds and its float32 sqrt is not
    correctly rounded).

    Args:
        param: parameters, float32 (the fast path) or float64, any shape; updated (=).
        grad: gradient of the loss, same shape and dtype; read only (may be read-only memory).
        m, v: first and second moment estimates, same shape and dtype, zeros before step 1;
            updated (=).
        step: this step's number, counting from 1 (the bias corrections use it).
        lr: learning rate, >= 0.
        beta1, beta2: decay rates of m and v, each in [0, 1).
        eps: > 0, added to the bias-corrected sqrt(v).
        weight_decay: >= 0; decoupled: param is scaled by 1 - lr * weight_decay.
        grad_scale: multiplies the gradient as it is read (a clipping coefficient, see
            clip_grad_norm and clip_coef, or 1 / loss scale; -1 is torch's maximize=True);
            NaN or Inf propagate like data.
        v_max: AMSGrad (torch's amsgrad=True): the running maximum of v, same shape and dtype,
            zeros before step 1; updated (=), NaN propagating as torch.maximum. None: AdamW.
        backend: "c", "numba" or "numpy"; None uses fasttrain.get_backend().

    Raises:
        TypeError: an array that is not a float32/float64 ndarray, dtypes that differ, a
            hyper-parameter that is not a number (step not an integer).
        ValueError: shapes that differ; an array that is not C-contiguous (never copied: the
            caller's array must change), read-only (grad excepted), or overlapping another;
            lr < 0, beta1 or beta2 outside [0, 1), eps <= 0, weight_decay < 0, step < 1, or a
            NaN/Inf hyper-parameter. The message names the value. Nothing is written.
    """
    step = _checks.integer("step", step)
    if step < 1:
        raise ValueError(f"step must be >= 1 (steps count from 1), got {step}")
    lr = _checks.real_range("lr", lr, 0.0, np.inf, hi_open=True)
    beta1 = _checks.real_range("beta1", beta1, 0.0, 1.0, hi_open=True)
    beta2 = _checks.real_range("beta2", beta2, 0.0, 1.0, hi_open=True)
    eps = _checks.real_range("eps", eps, 0.0, np.inf, lo_open=True, hi_open=True)
    weight_decay = _checks.real_range("weight_decay", weight_decay, 0.0, np.inf, hi_open=True)
    grad_scale = _checks.real_number("grad_scale", grad_scale)
    arrays = {"param": param, "grad": grad, "m": m, "v": v}
    if v_max is not None:
        arrays["v_max"] = v_max
    _checks.inplace_arrays(arrays, read_only=("grad",))
    kernel = implementation("adamw_step", backend)
    kernel(param, grad, m, v, step=step, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
           weight_decay=weight_decay, grad_scale=grad_scale, v_max=v_max)


def sgd_step(param, grad, buf, *, lr, momentum=0.0, dampening=0.0, nesterov=False,
             weight_decay=0.0, grad_scale=1.0, backend=None):
    """One step of SGD with momentum, in place, in one pass over param, grad and buf.

    The same update as ``torch.optim.SGD(params, lr, momentum, dampening, weight_decay,
    nesterov)`` (its single-tensor path), in its order::

        g = grad_scale * grad
        g = g + weight_decay * param                     # if weight_decay != 0 (L2, coupled)
        buf = momentum * buf + (1 - dampening) * g       # if momentum != 0
        g = g + momentum * buf if nesterov else buf      # if momentum != 0
        param -= lr * g

    PyTorch creates the momentum buffer as a copy of the first gradient, undampened; here buf
    starts at zeros, which gives the same first step (0 * momentum + g = g) when that step is
    called with dampening=0 (fasttrain.torch.SGD does so for a fresh buffer).

    Args:
        param: parameters, float32 or float64, any shape; updated (=).
        grad: gradient, same shape and dtype; read only.
        buf: momentum buffer, same shape and dtype, zeros before the first step; updated (=).
            Not used when momentum == 0, and may then be None.
        lr: learning rate, >= 0.
        momentum: >= 0 (0: plain SGD).
        dampening: a finite real; the new gradient enters buf scaled by 1 - dampening.
        nesterov: Nesterov momentum (needs momentum > 0, as in PyTorch).
        weight_decay: >= 0, an L2 term added to the gradient.
        grad_scale: multiplies the gradient as it is read; NaN or Inf propagate like data.
        backend: "c", "numba" or "numpy"; None uses fasttrain.get_backend().

    Raises:
        TypeError, ValueError: as adamw_step; also nesterov=True with momentum == 0, and buf
            None with momentum != 0.
    """
    lr = _checks.real_range("lr", lr, 0.0, np.inf, hi_open=True)
    momentum = _checks.real_range("momentum", momentum, 0.0, np.inf, hi_open=True)
    dampening = _checks.real_number("dampening", dampening)
    if not np.isfinite(dampening):
        raise ValueError(f"dampening must be finite, got {dampening}")
    nesterov = _checks.boolean("nesterov", nesterov)
    if nesterov and momentum == 0:
        raise ValueError("nesterov=True needs momentum > 0, got momentum=0.0")
    if nesterov and dampening != 0:
        raise ValueError(f"nesterov=True needs dampening = 0 (as in PyTorch), got {dampening}")
    weight_decay = _checks.real_range("weight_decay", weight_decay, 0.0, np.inf, hi_open=True)
    grad_scale = _checks.real_number("grad_scale", grad_scale)
    if momentum != 0 and buf is None:
        raise ValueError(f"buf (the momentum buffer) is required with momentum={momentum}")
    arrays = {"param": param, "grad": grad}
    if momentum != 0:
        arrays["buf"] = buf
    else:
        buf = None  # not used: neither read nor written
    _checks.inplace_arrays(arrays, read_only=("grad",))
    kernel = implementation("sgd_step", backend)
    kernel(param, grad, buf, lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
           weight_decay=weight_decay, grad_scale=grad_scale)


def sum_of_squares(x, *, backend=None):
    """sum(x**2) over every element of x, accumulated in double, as a Python float.

    One pass, in parallel, and deterministic for any thread count: the array is cut into blocks
    whose size depends only on x.size, and the block sums are added in order. A NaN in x gives
    NaN, an Inf gives Inf.

    Args:
        x: float32 or float64 ndarray of any shape; copied first if not C-contiguous.
        backend: "c", "numba" or "numpy"; None uses fasttrain.get_backend().
    """
    x = _checks.float_input("x", x, getattr(x, "ndim", 0), "")  # any number of dimensions
    return float(implementation("sum_of_squares", backend)(x))


def clip_grad_norm(grads, max_norm, *, backend=None):
    """The total L2 norm of the gradients, for clipping: one fused pass, and no write.

    Unlike ``torch.nn.utils.clip_grad_norm_``, this does NOT scale the gradients in place. It
    returns the total norm; pass ``clip_coef(total_norm, max_norm)`` as the optimizer step's
    ``grad_scale``, which multiplies the gradient in the same pass that updates the parameters,
    so the gradients are read once instead of written and read again. The update is then the one
    torch gives after clip_grad_norm_. A NaN or Inf gradient gives a NaN or Inf norm.

    Args:
        grads: one float32/float64 ndarray (the arena's flat gradient buffer) or a sequence of
            them; the norm is over all their elements.
        max_norm: the norm to clip to, > 0; checked here so that a bad value fails early.
        backend: "c", "numba" or "numpy"; None uses fasttrain.get_backend().

    Returns:
        total_norm: sqrt of the sum of squares of every element, a Python float.
    """
    _checks.real_range("max_norm", max_norm, 0.0, np.inf, lo_open=True, hi_open=True)
    arrays = [grads] if isinstance(grads, np.ndarray) else list(grads)
    total = 0.0
    for i, g in enumerate(arrays):
        name = "grads" if isinstance(grads, np.ndarray) else f"grads[{i}]"
        if not isinstance(g, np.ndarray):
            raise TypeError(f"{name} must be a numpy.ndarray, got {type(g).__name__}")
        g = _checks.float_input(name, g, g.ndim, "")
        total += float(implementation("sum_of_squares", backend)(g))
    return math.sqrt(total)


def clip_coef(total_norm, max_norm):
    """The factor torch.nn.utils.clip_grad_norm_ scales gradients by:
    min(1, max_norm / (total_norm + 1e-6)); NaN if total_norm is NaN, 0 if it is Inf.

    Pass it as ``grad_scale`` to adamw_step / sgd_step or to the optimizers' step().
    """
    total_norm = _checks.real_number("total_norm", total_norm)
    max_norm = _checks.real_range("max_norm", max_norm, 0.0, np.inf, lo_open=True, hi_open=True)
    coef = max_norm / (total_norm + CLIP_EPS)
    return coef if math.isnan(coef) or coef < 1.0 else 1.0

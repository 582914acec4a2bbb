"""layernorm_forward / layernorm_backward: the public fronts. They validate, allocate the outputs
and dispatch (N, C) rows; the mathematics is in ref/layernorm.py (the spec), csrc/layernorm.c and
numba/layernorm.py.

Shapes: x and dy (..., C), any leading shape flattened to N rows; weight, bias, dweight and dbias
(C,); mean and rstd x.shape[:-1] ((N,) for a 2-D x).
"""
from __future__ import annotations

import math

import numpy as np

from fasttrain.kernels import _checks
from fasttrain.kernels._backends import implementation


def layernorm_forward(x, weight, bias, *, eps=1e-5, out=None, mean=None, rstd=None,
                      backend=None):
    """Layer normalization over the last axis, as ``torch.nn.functional.layer_norm(x, (C,),
    weight, bias, eps)``, keeping the row statistics for the backward (as llm.c does):

        mean = x.mean(-1)                                   x.shape[:-1]   =
        rstd = 1 / sqrt(x.var(-1) + eps)   (biased variance) x.shape[:-1]   =
        y    = (x - mean) * rstd * weight + bias            x.shape        =

    Args:
        x: (..., C) float32 or float64, C >= 1 (copied first if not C-contiguous).
        weight, bias: (C,) of x's dtype.
        eps: a finite real >= 0 added to the variance.
        out: buffer for y, C-contiguous, of x's shape and dtype; may be x itself (in place).
        mean, rstd: buffers of shape x.shape[:-1] and x's dtype.
        backend: "c", "numba" or "numpy"; None uses fasttrain.get_backend().

    Precision: the reference computes in float64 and rounds each result once. The C backend
    computes in x's dtype with the row totals in float64, the statistics by a shifted, corrected
    two-pass sum that stays accurate when |mean| >> std (float32 within ~1.3e-7 of the float64
    reference's largest value, also at a mean of 1e4; rows whose float32 sums would overflow are
    summed in float64).

    Returns:
        (y, mean, rstd): the buffers written (new arrays where None was given).

    Raises:
        TypeError: an argument that is not an ndarray, a dtype other than float32/float64 or one
            that differs from x's, eps not a real number.
        ValueError: x without a last axis or with C = 0, weight or bias not (C,), eps negative,
            NaN or infinite, an output of the wrong shape or layout, read-only, or overlapping
            an input or another output (out=x exactly is allowed).
    """
    x, N, C = _rows("x", x)
    weight = _vector("weight", weight, C, x.dtype)
    bias = _vector("bias", bias, C, x.dtype)
    eps = _checks.real_range("eps", eps, 0.0, math.inf, hi_open=True)
    taken = {"x": x, "weight": weight, "bias": bias}  # what an output may not overlap
    taken["out"] = out = _checks.output("out", out, x.shape, x.dtype, taken, may_be=x)
    taken["mean"] = mean = _checks.output("mean", mean, x.shape[:-1], x.dtype, taken)
    rstd = _checks.output("rstd", rstd, x.shape[:-1], x.dtype, taken)
    implementation("layernorm_forward", backend)(
        x.reshape(N, C), weight, bias, out.reshape(N, C), mean.reshape(N), rstd.reshape(N),
        eps=eps)
    return out, mean, rstd


def layernorm_backward(x, weight, mean, rstd, dy, *, dx=None, dweight=None, dbias=None,
                       accumulate=False, backend=None):
    """The gradients of layernorm_forward, as torch's autograd gives them for the upstream
    gradient dy, in one pass over each row for dx (xhat = (x - mean) * rstd, g = dy * weight):

        dx      = rstd * (g - g.mean(-1) - xhat * (g * xhat).mean(-1))   x.shape   =
        dweight = sum over rows of dy * xhat                              (C,)  = or +=
        dbias   = sum over rows of dy                                     (C,)  = or +=

    Args:
        x: (..., C) float32 or float64, the forward's input, C >= 1.
        weight: (C,) of x's dtype.
        mean, rstd: x.shape[:-1] of x's dtype, as layernorm_forward returned them.
        dy: x's shape and dtype, the gradient of the loss with respect to y.
        dx: buffer for dx, C-contiguous, of x's shape and dtype; may be dy itself (in place).
        dweight, dbias: (C,) buffers of x's dtype.
        accumulate: add into dweight and dbias (gradient accumulation over micro-batches)
            instead of overwriting them; both must then be given. dx is overwritten either way.
        backend: "c", "numba" or "numpy"; None uses fasttrain.get_backend().

    dweight and dbias are summed over fixed chunks of rows, then chunk by chunk in order: the
    same bits for any thread count. With no rows (N = 0) they are 0 (unchanged when
    accumulating).

    Returns:
        (dx, dweight, dbias): the buffers written (new arrays where None was given).

    Raises:
        TypeError: an argument that is not an ndarray, a dtype other than float32/float64 or one
            that differs from x's, accumulate not True or False.
        ValueError: x without a last axis or with C = 0, shapes that do not match,
            accumulate=True without dweight and dbias, an output of the wrong shape or layout,
            read-only, or overlapping an input or another output (dx=dy exactly is allowed).
    """
    x, N, C = _rows("x", x)
    weight = _vector("weight", weight, C, x.dtype)
    mean = _stat("mean", mean, x)
    rstd = _stat("rstd", rstd, x)
    dy = _checks.float_input("dy", dy)
    _checks.same_layout("dy", dy, "x", x)
    accumulate = _checks.boolean("accumulate", accumulate)  # bool("no") would be True
    if accumulate and (dweight is None or dbias is None):
        raise ValueError("accumulate=True adds into dweight and dbias: pass both buffers")
    taken = {"x": x, "weight": weight, "mean": mean, "rstd": rstd, "dy": dy}
    taken["dx"] = dx = _checks.output("dx", dx, x.shape, x.dtype, taken, may_be=dy)
    taken["dweight"] = dweight = _checks.output("dweight", dweight, (C,), x.dtype, taken)
    dbias = _checks.output("dbias", dbias, (C,), x.dtype, taken)
    implementation("layernorm_backward", backend)(
        x.reshape(N, C), weight, mean, rstd, dy.reshape(N, C),
        dx.reshape(N, C), dweight, dbias, accumulate=accumulate)
    return dx, dweight, dbias


def _rows(name, x):
    """x as a C-contiguous float array (..., C) with C >= 1, and (N, C) of its rows."""
    x = _checks.ndarray(name, x)
    if x.ndim == 0 or x.shape[-1] == 0:  # (before float_input, which makes 0-d arrays 1-D)
        raise ValueError(f"{name} must have a last axis of C >= 1 channels to normalize, "
                         f"got shape {x.shape}")
    x = _checks.float_input(name, x)
    C = x.shape[-1]
    return x, x.size // C, C


def _vector(name, a, C, dtype):
    a = _checks.float_input(name, a)
    if a.shape != (C,):
        raise ValueError(f"{name} must have shape (C,) = ({C},) to match x, got {a.shape}")
    if a.dtype != dtype:
        raise TypeError(f"{name} must have the dtype of x, {dtype}, got {a.dtype}")
    return a


def _stat(name, a, x):
    """mean or rstd, x.shape[:-1], as a C-contiguous (N,) array (0-d for a 1-D x: float_input
    would make that (1,), so the rows are flattened first)."""
    a = _checks.ndarray(name, a)
    if a.shape != x.shape[:-1]:
        raise ValueError(f"{name} must have shape x.shape[:-1] = {x.shape[:-1]}, "
                         f"got {a.shape}")
    a = _checks.float_input(name, a.reshape(-1))
    if a.dtype != x.dtype:
        raise TypeError(f"{name} must have the dtype of x, {x.dtype}, got {a.dtype}")
    return a

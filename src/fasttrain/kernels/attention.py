"""attention_forward and attention_backward: the public fronts of multi-head self-attention. They
validate, allocate the outputs and dispatch; the mathematics is in ref/attention.py (the spec),
csrc/attention.c (flash-style) and numba/attention.py.

Shapes, as nanoGPT's CausalSelfAttention and llm.c lay them out: qkv (B, T, 3C), the output of
one linear layer (c_attn) holding q, k and v side by side along the last axis, each split into
n_head heads of hs = C / n_head channels; out and dout (B, T, C), the heads side by side;
lse (B, n_head, T).
"""
from __future__ import annotations

import math

import numpy as np

from fasttrain.kernels import _checks
from fasttrain.kernels._backends import implementation

_QKV_DOC = "(B, T, 3C), q, k and v side by side"


def attention_forward(qkv, n_head, *, causal=True, scale=None, out=None, lse=None, backend=None):
    """Multi-head self-attention: for each batch and head, softmax(scale q k^T) v.

    Same values as ``torch.nn.functional.scaled_dot_product_attention(q, k, v,
    is_causal=causal, scale=scale)`` with q, k, v the (B, n_head, T, hs) views of qkv's thirds,
    and out its result transposed back to (B, T, C) (``y.transpose(1, 2).reshape(B, T, C)``).

    Args:
        qkv: (B, T, 3C) float32 or float64: q = qkv[..., :C], k = qkv[..., C:2C],
            v = qkv[..., 2C:], head h the columns [h*hs, (h+1)*hs) of each.
        n_head: the number of heads, a positive integer dividing C.
        causal: mask key j > query i (a decoder's attention); False attends to every key.
        scale: the factor of q k^T, a finite real; None is 1 / sqrt(hs).
        out: (B, T, C) C-contiguous buffer of qkv's dtype to write the output into (=).
        lse: (B, n_head, T) buffer for the natural log-sum-exp of each scaled softmax row (=),
            what attention_backward needs instead of the (T, T) probabilities.
        backend: "c", "numba" or "numpy"; None uses fasttrain.get_backend().

    Returns:
        (out, lse): the buffers written (new arrays where None was given).

    Raises:
        TypeError: qkv or a buffer not an ndarray or of a dtype other than float32/float64 or
            qkv's, n_head not an integer, causal not a bool, scale not a real number.
        ValueError: qkv not 3-D or with a last axis not divisible by 3, C not divisible by
            n_head (or C = 0), n_head < 1, scale NaN or infinite, a buffer of the wrong shape or
            layout, read-only, or overlapping qkv or the other buffer.
    """
    qkv, n_head, causal, scale = _common(qkv, n_head, causal, scale)
    B, T, C3 = qkv.shape
    out = _checks.output("out", out, (B, T, C3 // 3), qkv.dtype, {"qkv": qkv})
    lse = _checks.output("lse", lse, (B, n_head, T), qkv.dtype, {"qkv": qkv, "out": out})
    return implementation("attention_forward", backend)(qkv, out, lse, n_head=n_head,
                                                        causal=causal, scale=scale)


def attention_backward(qkv, out, lse, dout, n_head, *, causal=True, scale=None, dqkv=None,
                       backend=None):
    """The gradient of attention_forward with respect to qkv, from its out and lse.

    Same values as the autograd gradients of ``scaled_dot_product_attention`` w.r.t. q, k, v,
    side by side as qkv holds them, for the upstream gradient dout.

    Args:
        qkv: (B, T, 3C) float32 or float64, the forward's input.
        out: (B, T, C), lse: (B, n_head, T): what attention_forward returned for qkv (with the
            same n_head, causal and scale); the flash-style backends recompute the probabilities
            from lse instead of storing them.
        dout: (B, T, C) the gradient of the loss with respect to out.
        n_head, causal, scale: as given to attention_forward.
        dqkv: (B, T, 3C) C-contiguous buffer of qkv's dtype to write the gradient into (=);
            allocated if None. It may not overlap any input.
        backend: "c", "numba" or "numpy"; None uses fasttrain.get_backend().

    Returns:
        dqkv: the buffer written (or a new array), (B, T, 3C).

    Raises:
        TypeError, ValueError: as attention_forward, and for out, lse or dout of the wrong
            shape or dtype, or dqkv of the wrong shape or layout, read-only, or overlapping an
            input.
    """
    qkv, n_head, causal, scale = _common(qkv, n_head, causal, scale)
    B, T, C3 = qkv.shape
    C = C3 // 3
    inputs = {"qkv": qkv}
    for name, a, shape, doc in (("out", out, (B, T, C), "(B, T, C)"),
                                ("lse", lse, (B, n_head, T), "(B, n_head, T)"),
                                ("dout", dout, (B, T, C), "(B, T, C)")):
        a = _checks.float_input(name, a, 3, doc)
        if a.dtype != qkv.dtype:
            raise TypeError(f"{name} must have the dtype of qkv ({qkv.dtype}), got {a.dtype}")
        if a.shape != shape:
            raise ValueError(f"{name} must have shape {shape} to match qkv {qkv.shape} and "
                             f"n_head={n_head}, got {a.shape}")
        inputs[name] = a
    dqkv = _checks.output("dqkv", dqkv, (B, T, C3), qkv.dtype, inputs)
    return implementation("attention_backward", backend)(
        qkv, inputs["out"], inputs["lse"], inputs["dout"], dqkv, n_head=n_head, causal=causal,
        scale=scale)


def _common(qkv, n_head, causal, scale):
    """qkv (B, T, 3C) as a C-contiguous float array, and the checked options."""
    qkv = _checks.float_input("qkv", qkv, 3, _QKV_DOC)
    n_head = _checks.integer("n_head", n_head)
    if n_head < 1:
        raise ValueError(f"n_head must be a positive integer, got {n_head}")
    C3 = qkv.shape[2]
    if C3 % 3:
        raise ValueError(f"qkv's last axis must be 3C (q, k, v), got {C3}, not divisible by 3 "
                         f"(qkv shape {qkv.shape})")
    C = C3 // 3
    if C == 0 or C % n_head:
        raise ValueError(f"C = {C} (qkv {qkv.shape}) must be a positive multiple of "
                         f"n_head = {n_head}")
    causal = _checks.boolean("causal", causal)
    if scale is None:
        scale = 1.0 / math.sqrt(C // n_head)
    else:
        scale = _checks.real_number("scale", scale)
        if not math.isfinite(scale):
            raise ValueError(f"scale must be a finite real number, got {scale}")
    return qkv, n_head, causal, scale

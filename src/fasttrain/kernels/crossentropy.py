"""softmax_cross_entropy: the public front. It validates, allocates the output and dispatches;
the mathematics is in ref/crossentropy.py (the spec), csrc/crossentropy.c and numba/crossentropy.py.
"""
from __future__ import annotations

import numpy as np

from fasttrain.kernels import _checks
from fasttrain.kernels._backends import implementation

REDUCTIONS = ("mean", "sum", "none")


def softmax_cross_entropy(logits, targets, *, ignore_index=-100, reduction="mean",
                          label_smoothing=0.0, weight=None, lse_square_scale=0.0, softcap=None,
                          grad_rows=None, out=None, backend=None):
    """Softmax cross-entropy and its gradient with respect to the logits, in one pass per row.

    Same meaning as ``torch.nn.functional.cross_entropy(logits, targets, weight=...,
    ignore_index=..., reduction=..., label_smoothing=...)``, and ``dlogits`` is its autograd
    gradient; with the z-loss and the soft cap of PaLM and Gemma 2 on top (ref/crossentropy.py
    has every formula):
        z = softcap * tanh(logits / softcap)                     (z = logits when softcap=None)
        loss_i = cross_entropy(z_i, t_i) + lse_square_scale * logsumexp(z_i)^2

    Args:
        logits: (N, V) float32 or float64. Copied first if not C-contiguous.
        targets: (N,) any integer dtype; each in [0, V) or equal to ignore_index.
        ignore_index: rows with this target add nothing to the loss and get a zero gradient.
        reduction: "mean" (over the rows not ignored; NaN if all are, as in PyTorch), "sum",
            or "none" (per-row losses; the gradient is then that of their sum, or of
            sum_i grad_rows[i] * loss_i).
        label_smoothing: eps in [0, 1]; the target distribution becomes
            (1 - eps) * onehot + eps / V (with weights, torch's formula: each class's term
            weighed by its own weight).
        weight: (V,) class weights of the logits' dtype, finite and >= 0, or None (all 1).
            A row's cross-entropy is scaled by weight[t], and "mean" divides by the sum of the
            kept rows' weight[t], as in PyTorch (NaN when that sum is 0).
        lse_square_scale: the z-loss coefficient, >= 0: each kept row adds
            lse_square_scale * lse^2, lse = logsumexp of its (capped) logits. "mean" divides
            the z-loss by the number of kept rows, whatever the weights (as Liger Kernel does).
        softcap: None, or a cap > 0: the logits become softcap * tanh(logits / softcap)
            before everything else; dlogits is taken through the tanh.
        grad_rows: only with reduction="none": (N,) of the logits' dtype, the gradient of the
            caller's loss with respect to each row's loss (what ``loss.backward(grad_rows)``
            passes in PyTorch); dlogits row i is then scaled by grad_rows[i]. None: all 1.
        out: (N, V) buffer for dlogits, of the logits' dtype and C-contiguous. ``out=logits``
            overwrites the logits with the gradient, so no (N, V) array is allocated.
        backend: "c", "numba" or "numpy"; None uses fasttrain.get_backend().

    Returns:
        (loss, dlogits): loss is a Python float, or an (N,) array for reduction="none";
        dlogits is ``out`` (or a new array), = d loss / d logits.

    Raises:
        TypeError: logits not a float32/float64 ndarray, targets not an integer ndarray, out of
            the wrong dtype.
        ValueError: logits not 2-D or with V = 0, targets of the wrong shape or out of range, an
            unknown reduction, label_smoothing outside [0, 1], out of the wrong shape or layout,
            read-only, or overlapping an input other than exactly the logits; weight not (V,)
            or holding a negative, NaN or infinite value; lse_square_scale negative or not
            finite; softcap <= 0 or not finite; grad_rows not (N,) or given with a reduction
            other than "none". TypeError for a weight or grad_rows of another dtype.
    """
    logits = _checks.float_input("logits", logits, 2, "(N, V); reshape (B, T, V) to (B*T, V)")
    N, V = logits.shape
    if V == 0:
        raise ValueError("logits must have at least one class (V >= 1), got shape "
                         f"{logits.shape}")
    targets, options = check_targets_and_options(
        targets, N, V, logits.dtype, "logits", ignore_index=ignore_index, reduction=reduction,
        label_smoothing=label_smoothing, weight=weight, lse_square_scale=lse_square_scale,
        softcap=softcap, grad_rows=grad_rows)
    inputs = {"logits": logits, "targets": targets}
    for name in ("weight", "grad_rows"):  # outputs may not overlap them either
        if options[name] is not None:
            inputs[name] = options[name]
    out = _checks.output("out", out, (N, V), logits.dtype, inputs, may_be=logits)
    kernel = implementation("softmax_cross_entropy", backend)
    return kernel(logits, targets, out, **options)


def check_targets_and_options(targets, N, V, dtype, dtype_of, *, ignore_index, reduction, label_smoothing,
                              weight, lse_square_scale, softcap, grad_rows):
    """The cross-entropy's targets (N,) as int64, each in [0, V) or ignore_index, and its
    options checked, returned as the kernels' keyword arguments: weight (V,) and grad_rows (N,)
    C-contiguous of `dtype` (the dtype of the input named `dtype_of`) or None, softcap None or > 0. Shared by softmax_cross_entropy and
    linear_cross_entropy."""
    targets = _checks.index_input("targets", targets, N)  # (N,) int64
    ignore_index = _checks.integer("ignore_index", ignore_index)
    reduction = _checks.choice("reduction", reduction, REDUCTIONS)
    label_smoothing = _checks.real_in("label_smoothing", label_smoothing, 0.0, 1.0)
    lse_square_scale = _checks.real_in("lse_square_scale", lse_square_scale, 0.0, np.inf)
    if lse_square_scale == np.inf:
        raise ValueError("lse_square_scale must be finite, got inf")
    if softcap is not None:
        softcap = _checks.real_in("softcap", softcap, 0.0, np.inf)
        if not 0 < softcap < np.inf:
            raise ValueError(f"softcap must be None or a finite number > 0, got {softcap}")
    if weight is not None:
        weight = _options_array("weight", weight, V, "(V,)", dtype, dtype_of)
        bad = ~(np.isfinite(weight) & (weight >= 0))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"weight[{i}] = {weight[i]}: class weights must be finite and "
                             ">= 0")
    if grad_rows is not None:
        if reduction != "none":
            raise ValueError(f"grad_rows is the per-row gradient of reduction='none'; with "
                             f"reduction={reduction!r} leave it out (scale the result instead)")
        grad_rows = _options_array("grad_rows", grad_rows, N, "(N,)", dtype, dtype_of)
    bad = ((targets < 0) | (targets >= V)) & (targets != ignore_index)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"targets[{i}] = {targets[i]} is outside [0, {V}) and is not "
                         f"ignore_index ({ignore_index})")
    return targets, dict(ignore_index=ignore_index, reduction=reduction,
                         label_smoothing=label_smoothing, weight=weight,
                         lse_square_scale=lse_square_scale, softcap=softcap,
                         grad_rows=grad_rows)


def _options_array(name, a, n, shape_doc, dtype, dtype_of):
    """weight or grad_rows: a 1-D array of n values of `dtype`, C-contiguous (copied if not)."""
    a = _checks.float_array(name, a, 1, shape_doc, dtype, dtype_of)
    if a.shape != (n,):
        raise ValueError(f"{name} must have shape {shape_doc} = ({n},), got {a.shape}")
    return np.ascontiguousarray(a, dtype=dtype)

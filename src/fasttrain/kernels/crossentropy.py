"""softmax_cross_entropy: the public front. It validates, allocates the output and dispatches;
the mathematics is in ref/crossentropy.py (the spec), csrc/crossentropy.c and numba/crossentropy.py.
"""
from __future__ import annotations

import numpy as np

from fasttrain.kernels import _checks
from fasttrain.kernels._backends import implementation

REDUCTIONS = ("mean", "sum", "none")


def softmax_cross_entropy(logits, targets, *, ignore_index=-100, reduction="mean",
                          label_smoothing=0.0, out=None, backend=None):
    """Softmax cross-entropy and its gradient with respect to the logits, in one pass per row.

    Same meaning as ``torch.nn.functional.cross_entropy(logits, targets, ignore_index=...,
    reduction=..., label_smoothing=...)``, and ``dlogits`` is its autograd gradient.

    Args:
        logits: (N, V) float32 or float64. Copied first if not C-contiguous.
        targets: (N,) any integer dtype; each in [0, V) or equal to ignore_index.
        ignore_index: rows with this target add nothing to the loss and get a zero gradient.
        reduction: "mean" (over the rows not ignored; NaN if all are, as in PyTorch), "sum",
            or "none" (per-row losses; the gradient is then that of their sum).
        label_smoothing: eps in [0, 1]; the target distribution becomes
            (1 - eps) * onehot + eps / V.
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
            read-only, or overlapping an input other than exactly the logits.
    """
    logits = _checks.float_input("logits", logits, 2, "(N, V); reshape (B, T, V) to (B*T, V)")
    N, V = logits.shape
    if V == 0:
        raise ValueError("logits must have at least one class (V >= 1), got shape "
                         f"{logits.shape}")
    targets, ignore_index, reduction, label_smoothing = check_targets_and_options(
        targets, N, V, ignore_index, reduction, label_smoothing)
    out = _checks.output("out", out, (N, V), logits.dtype,
                         {"logits": logits, "targets": targets}, may_be=logits)
    kernel = implementation("softmax_cross_entropy", backend)
    return kernel(logits, targets, out, ignore_index=ignore_index, reduction=reduction,
                  label_smoothing=label_smoothing)


def check_targets_and_options(targets, N, V, ignore_index, reduction, label_smoothing):
    """The cross-entropy's targets (N,) as int64, each in [0, V) or ignore_index, and its
    options, checked; shared by softmax_cross_entropy and linear_cross_entropy."""
    targets = _checks.index_input("targets", targets, N)  # (N,) int64
    ignore_index = _checks.integer("ignore_index", ignore_index)
    reduction = _checks.choice("reduction", reduction, REDUCTIONS)
    label_smoothing = _checks.real_in("label_smoothing", label_smoothing, 0.0, 1.0)
    bad = ((targets < 0) | (targets >= V)) & (targets != ignore_index)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"targets[{i}] = {targets[i]} is outside [0, {V}) and is not "
                         f"ignore_index ({ignore_index})")
    return targets, ignore_index, reduction, label_smoothing

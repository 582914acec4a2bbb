"""Softmax cross-entropy in Numba: the twin of csrc/crossentropy.c, row for row and sweep for
sweep (see that file for the formulas). Matches fasttrain.kernels.ref.crossentropy."""
import math

import numpy as np
from numba import njit, prange

from fasttrain.kernels.numba._slow import slower_than_numpy
from fasttrain.kernels.numba._threads import use_library_threads

_REDUCTIONS = {"none": 0, "mean": 1, "sum": 2}


@njit(cache=True, nogil=True)
def _ce_row(d, x, t, eps, scale):
    # one row: d (V,) = scale * (p - target distribution); returns the row's loss. d may be x.
    V = x.shape[0]
    # sweep 1: max (and the sum, for the smoothing term)
    m = -np.inf
    sum_x = 0.0
    for j in range(V):
        m = x[j] if x[j] > m else m
        sum_x += x[j]
    x_t = x[t]
    # sweep 2: d_j = exp(x_j - m), s = sum d_j
    s = 0.0
    for j in range(V):
        e = math.exp(x[j] - m)
        d[j] = e
        s += e
    # sweep 3: d_j = scale * (p_j - eps / V), then the target's -scale * (1 - eps)
    a = scale / s
    b = scale * eps / V
    for j in range(V):
        d[j] = d[j] * a - b
    d[t] -= scale * (1 - eps)
    lse = m + math.log(s)
    loss = (1 - eps) * (lse - x_t)
    if eps > 0:
        loss += eps * (lse - sum_x / V)
    return loss


@njit(cache=True, nogil=True)
def _ce_row_opts(d, x, t, eps, w, w_sum, zc, cap, scale):
    # one row with the options: w (V,) class weights (all 1 for none), w_sum their sum, zc the
    # z-loss coefficient, cap > 0 the soft cap (0: none). d (V,) = scale * dlogits; returns the
    # row's loss. d may be x. csrc/crossentropy.c's ce_row_opts, sweep for sweep.
    V = x.shape[0]
    # sweep 1: z (into d, when capped), max, and sum_j w_j z_j for the smoothing term
    m = -np.inf
    sum_wz = 0.0
    for j in range(V):
        zj = cap * math.tanh(x[j] / cap) if cap > 0 else x[j]
        if cap > 0:
            d[j] = zj
        m = zj if zj > m else m
        sum_wz += w[j] * zj
    z_t = d[t] if cap > 0 else x[t]
    # sweep 2: s = sum exp(z_j - m); without a cap d_j = exp(z_j - m) too
    s = 0.0
    for j in range(V):
        if cap > 0:
            s += math.exp(d[j] - m)
        else:
            e = math.exp(x[j] - m)
            d[j] = e
            s += e
    lse = m + math.log(s)
    w_t = w[t]
    loss = (1 - eps) * w_t * (lse - z_t) + zc * lse * lse
    if eps > 0:
        loss += eps * (w_sum * lse - sum_wz) / V
    # sweep 3: d_j = a * exp(z_j - m) - b * w_j (times 1 - (z_j / cap)^2), then the target's -bt
    a = scale * ((1 - eps) * w_t + eps * w_sum / V + 2 * zc * lse) / s
    b = scale * eps / V
    bt = scale * (1 - eps) * w_t
    if cap > 0:
        for j in range(V):
            zj = d[j]
            u = zj / cap
            d[j] = (math.exp(zj - m) * a - b * w[j]) * (1 - u * u)
        u_t = z_t / cap
        d[t] -= bt * (1 - u_t * u_t)
    else:
        for j in range(V):
            d[j] = d[j] * a - b * w[j]
        d[t] -= bt
    return loss


@njit(cache=True, nogil=True)
def _row(d, x, t, ignore_index, eps, w, w_sum, zc, cap, plain, f):
    # one row, ignored or not: the fast _ce_row when no option is on (`plain`)
    if t == ignore_index:
        d[:] = 0
        return 0.0
    if plain:
        return _ce_row(d, x, t, eps, f)
    return _ce_row_opts(d, x, t, eps, w, w_sum, zc, cap, f)


@njit(cache=True, nogil=True, parallel=True)
def _crossentropy(dlogits, losses, logits, targets, grad_rows, ignore_index, eps, w, w_sum, zc,
                  cap, plain, scale):
    # dlogits (N, V) =, losses (N,) =, logits (N, V), targets (N,), grad_rows (N,) or (0,) for
    # none; dlogits may be logits
    N = logits.shape[0]
    per_row = grad_rows.shape[0] > 0
    for i in prange(N):
        f = grad_rows[i] if per_row else scale
        losses[i] = _row(dlogits[i], logits[i], targets[i], ignore_index, eps, w, w_sum, zc, cap,
                         plain, f)


# (0,) arrays that stand for "none" (grad_rows, or the weights of the plain row), one per dtype
_NONE = {np.dtype(d): np.zeros(0, dtype=d) for d in (np.float32, np.float64)}


def setup(targets, V, dtype, *, ignore_index, reduction, label_smoothing, weight,
          lse_square_scale, softcap, grad_rows):
    """The per-call constants, as csrc/crossentropy.c's ft_internal_ce_setup: the positional
    arguments of _row after x and t, the per-row factors grad_rows ((0,) for none), the mean's
    denominator and the gradient's factor `scale`, in `dtype` as the C kernel's `real`."""
    real = dtype.type
    valid = targets != ignore_index
    n_valid = int(np.count_nonzero(valid))
    plain = weight is None and lse_square_scale == 0 and softcap is None
    if weight is None:  # the plain row reads no weights: no (V,) array of ones made for it
        w = _NONE[dtype] if plain else np.ones(V, dtype=dtype)
        denom, w_sum = float(n_valid), float(V)
    else:
        w, w_sum = weight, float(weight.sum(dtype=np.float64))
        denom = float(weight[targets[valid]].sum(dtype=np.float64))
    mean = _REDUCTIONS[reduction] == 1
    zc = lse_square_scale
    if mean and weight is not None and n_valid:
        zc = lse_square_scale * denom / n_valid
    scale = 1.0
    if mean:  # no kept row: zero gradients; kept rows of weight 0: NaN ones, as in PyTorch
        scale = 1.0 / denom if denom > 0 else float("nan") if n_valid else 0.0
    row_args = (real(label_smoothing), w, real(w_sum), real(zc),
                real(0.0 if softcap is None else softcap), plain)
    g = _NONE[dtype] if grad_rows is None else grad_rows
    return row_args, g, denom, real(scale)


def total(losses, reduction, denom):
    """The reduced loss from the row losses (N,), as ft_internal_ce_total."""
    if reduction == "none":
        return losses
    t = float(losses.sum(dtype=np.float64))
    if reduction == "sum":
        return t
    return t / denom if denom > 0 else float("nan")


@slower_than_numpy(
    "at small vocabularies (4096x256): without Intel's SVML (`numba -s`: SVML State False) "
    "Numba cannot vectorise exp, so each logit costs a scalar libm expf call, and its max and "
    "sum sweeps keep their float sums in order (no fastmath), unvectorised, while numpy's exp "
    "over the whole array is vectorised; the C backend (inline vector exp) is the fast one.")
def softmax_cross_entropy(logits, targets, out, *, ignore_index, reduction, label_smoothing,
                          weight, lse_square_scale, softcap, grad_rows):
    """0.66x numpy at 4096x256 float32 (8.19 ms against 5.37, `fasttrain bench --kernels
    crossentropy --quick`, 2026-11-30); 1.2-2.8x numpy at the larger shapes of the README's
    run, where numpy's temporaries of the whole (N, V) array cost it more. The C twin
    (csrc/crossentropy.c) is 5-21x numpy. Use the C backend for speed."""
    # logits (N, V), targets (N,) int64, out (N, V); out may be logits; weight (V,) or None,
    # grad_rows (N,) or None
    N, V = logits.shape
    row_args, grad_rows, denom, scale = setup(
        targets, V, logits.dtype, ignore_index=ignore_index, reduction=reduction,
        label_smoothing=label_smoothing, weight=weight, lse_square_scale=lse_square_scale,
        softcap=softcap, grad_rows=grad_rows)
    losses = np.empty(N, dtype=logits.dtype)  # (N,)
    use_library_threads()
    _crossentropy(out, losses, logits, targets, grad_rows, ignore_index, *row_args, scale)
    return total(losses, reduction, denom), out

"""Softmax cross-entropy in Numba: the twin of csrc/crossentropy.c, row for row and sweep for
sweep (see that file for the formulas). Matches fasttrain.kernels.ref.crossentropy."""
import math

import numpy as np
from numba import njit, prange

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


@njit(cache=True, nogil=True, parallel=True)
def _crossentropy(dlogits, losses, logits, targets, ignore_index, eps, scale):
    # dlogits (N, V) =, losses (N,) =, logits (N, V), targets (N,); dlogits may be logits
    N = logits.shape[0]
    for i in prange(N):
        t = targets[i]
        if t == ignore_index:
            dlogits[i, :] = 0
            losses[i] = 0
        else:
            losses[i] = _ce_row(dlogits[i], logits[i], t, eps, scale)


def softmax_cross_entropy(logits, targets, out, *, ignore_index, reduction, label_smoothing):
    """Slower than the numpy reference at small vocabularies, and meant to stay so: 0.66x numpy
    at 4096x256 float32 (8.19 ms against 5.37, `fasttrain bench --kernels crossentropy
    --quick`, 2026-11-30; 1.2-2.8x numpy at the larger shapes of the README's run). Without
    Intel's SVML (`numba -s`: SVML State False) Numba cannot vectorise exp, so each logit costs
    a scalar libm expf call, and it keeps the sweeps' float sums in order (no fastmath), so the
    max and sum loops are not vectorised either; numpy's exp over the whole array is. The C
    twin (csrc/crossentropy.c, inline vector exp) is 5-21x numpy. Use the C backend for speed."""
    # logits (N, V), targets (N,) int64, out (N, V); out may be logits
    N = logits.shape[0]
    n_valid = int(np.count_nonzero(targets != ignore_index))
    mean = _REDUCTIONS[reduction] == 1
    scale = (1.0 / n_valid if n_valid else 0.0) if mean else 1.0
    losses = np.empty(N, dtype=logits.dtype)  # (N,)
    use_library_threads()
    _crossentropy(out, losses, logits, targets, ignore_index, label_smoothing, scale)
    if reduction == "none":
        return losses, out
    total = float(losses.sum(dtype=np.float64))
    if reduction == "sum":
        return total, out
    return (total / n_valid if n_valid else float("nan")), out

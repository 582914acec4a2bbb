"""Softmax cross-entropy, the reference. Matches torch.nn.functional.cross_entropy.

For a row x (V,) with target t and eps = label_smoothing:
    log p = x - max(x) - log(sum(exp(x - max(x))))
    loss  = -(1 - eps) * log p_t - eps * mean(log p)
    dloss/dx = p - (1 - eps) * onehot(t) - eps / V
Ignored rows (t == ignore_index) have loss 0 and gradient 0. "mean" divides by the number of
rows not ignored (NaN loss if there are none); "none" returns per-row losses and the gradient
of their sum.
"""
import numpy as np


@np.errstate(invalid="ignore", divide="ignore", over="ignore")  # NaN/inf propagate, silently
def softmax_cross_entropy(logits, targets, out, *, ignore_index, reduction, label_smoothing):
    # logits (N, V), targets (N,) int64, out (N, V); out may be logits, so it is written last
    N, V = logits.shape
    eps = label_smoothing
    valid = targets != ignore_index                      # (N,)
    t = np.where(valid, targets, 0)                      # (N,) ignored rows look at class 0, masked
    rows = np.arange(N)

    m = logits.max(axis=1, keepdims=True)                # (N, 1)
    e = np.exp(logits - m)                               # (N, V)
    s = e.sum(axis=1, keepdims=True)                     # (N, 1)
    logp = logits - m - np.log(s)                        # (N, V) log-probabilities

    row_loss = -(1 - eps) * logp[rows, t]                # (N,)
    if eps > 0:  # guarded: 0 * mean(log p) would be NaN for a row holding -inf
        row_loss = row_loss - eps * logp.mean(axis=1)
    row_loss = np.where(valid, row_loss, 0).astype(logits.dtype)

    n_valid = int(valid.sum())
    if reduction == "mean":
        scale = 1.0 / n_valid if n_valid else 0.0
        loss = float(row_loss.sum(dtype=np.float64) / n_valid) if n_valid else float("nan")
    elif reduction == "sum":
        scale, loss = 1.0, float(row_loss.sum(dtype=np.float64))
    else:
        scale, loss = 1.0, row_loss

    grad = e / s                                         # (N, V) probabilities p
    grad[rows, t] -= 1 - eps
    grad -= eps / V
    grad *= scale
    grad[~valid] = 0
    out[...] = grad
    return loss, out

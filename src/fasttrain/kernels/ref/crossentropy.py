"""Softmax cross-entropy, the reference. Matches torch.nn.functional.cross_entropy (with weight,
ignore_index, reduction, label_smoothing), plus the z-loss and logit soft-capping written out.

For a row x (V,) with target t, eps = label_smoothing, w (V,) the class weights (all 1 when
none are given), zs = lse_square_scale and cap = softcap:
    z     = cap * tanh(x / cap)          (z = x without a cap)
    lse   = max(z) + log(sum(exp(z - max(z)))),   log p = z - lse,   p = exp(log p)
    ce    = -(1 - eps) * w_t * log p_t - (eps / V) * sum_j w_j * log p_j   (torch's formula)
    loss  = ce + zs * lse^2                                                (the row's loss)
    dloss/dz = (c * p - (1 - eps) * w_t * onehot(t) - (eps / V) * w) + 2 * zs * lse * p,
        with c = (1 - eps) * w_t + (eps / V) * sum(w)
    dloss/dx = dloss/dz * (1 - (z / cap)^2)
Ignored rows (t == ignore_index) have loss 0 and gradient 0 and count nowhere. Reductions:
  "mean": sum(ce) / sum(w_t) + zs * sum(lse^2) / n, over the n kept rows (torch divides the
          weighted cross-entropy by the kept rows' weights; the z-loss, as Liger Kernel's, is
          a plain mean over the kept rows). NaN if no row is kept (the gradient is then 0), or
          if their weights sum to 0 (their gradients are then NaN, as in torch).
  "sum":  sum of the row losses.
  "none": the row losses (N,); the gradient is that of sum_i grad_rows[i] * loss_i
          (grad_rows all 1 when None: the gradient of their sum).
"""
import numpy as np


@np.errstate(invalid="ignore", divide="ignore", over="ignore")  # NaN/inf propagate, silently
def softmax_cross_entropy(logits, targets, out, *, ignore_index, reduction, label_smoothing,
                          weight, lse_square_scale, softcap, grad_rows):
    # logits (N, V), targets (N,) int64, out (N, V); out may be logits, so it is written last;
    # weight (V,) or None, grad_rows (N,) or None (reduction "none" only)
    N, V = logits.shape
    eps, zs = label_smoothing, lse_square_scale
    valid = targets != ignore_index                      # (N,)
    t = np.where(valid, targets, 0)                      # (N,) ignored rows look at class 0, masked
    rows = np.arange(N)

    z = logits if softcap is None else softcap * np.tanh(logits / softcap)  # (N, V)
    m = z.max(axis=1, keepdims=True)                     # (N, 1)
    e = np.exp(z - m)                                    # (N, V)
    s = e.sum(axis=1, keepdims=True)                     # (N, 1)
    lse = (m + np.log(s))[:, 0]                          # (N,)
    logp = z - lse[:, None]                              # (N, V) log-probabilities
    w_t = np.where(valid, 1.0 if weight is None else weight[t], 0)  # (N,) weight[t], 0 if ignored

    ce = -(1 - eps) * w_t * logp[rows, t]                # (N,)
    if eps > 0:  # guarded: 0 * sum(log p) would be NaN for a row holding -inf
        ce = ce - eps / V * (logp.sum(axis=1) if weight is None else logp @ weight)
    ce = np.where(valid, ce, 0)
    zl = np.where(valid, zs * lse * lse, 0) if zs else np.zeros(N)  # (N,) the z-loss
    row_loss = (ce + zl).astype(logits.dtype)

    # f_ce, f_z (N,): the factors of each row's cross-entropy and z-loss in the reduced loss
    n_valid, w_sum = int(valid.sum()), float(w_t.sum(dtype=np.float64))
    if reduction == "mean":
        # no kept row: zero gradients; kept rows whose weights sum to 0: 0/0, NaN, as in torch
        f_ce = np.full(N, 1.0 / w_sum if w_sum > 0 else np.nan if n_valid else 0.0)
        f_z = np.full(N, 1.0 / n_valid if n_valid else 0.0)
        loss = (float(ce.sum(dtype=np.float64) / w_sum + zl.sum(dtype=np.float64) / n_valid)
                if n_valid and w_sum > 0 else float("nan"))
    elif reduction == "sum":
        f_ce = f_z = np.ones(N)
        loss = float(row_loss.sum(dtype=np.float64))
    else:
        f_ce = f_z = np.ones(N) if grad_rows is None else grad_rows.astype(np.float64)
        loss = row_loss

    # d loss / d z = f_ce * (c * p - (1 - eps) * w_t * onehot(t) - eps / V * w)
    #              + f_z * 2 * zs * lse * p,          c = (1 - eps) * w_t + eps / V * sum(w)
    # built in place in p, in the logits' dtype
    c = (1 - eps) * w_t + eps / V * (V if weight is None else weight.sum(dtype=np.float64))
    grad = e / s                                         # (N, V) p
    grad *= (f_ce * c + f_z * 2 * zs * lse).astype(grad.dtype)[:, None]
    grad[rows, t] -= f_ce * (1 - eps) * w_t
    if eps > 0:
        grad -= (f_ce * eps / V).astype(grad.dtype)[:, None] * (1 if weight is None else weight)
    if softcap is not None:
        grad *= 1 - (z / softcap) ** 2                   # through the cap: tanh' = 1 - tanh^2
    grad[~valid] = 0
    out[...] = grad
    return loss, out

"""Layer normalization over the last axis, the reference. Matches
torch.nn.functional.layer_norm(x, (C,), weight, bias, eps) and its autograd gradients; mean and
rstd are what torch.native_layer_norm (and llm.c) save for the backward.

For each row x (C,) of x (N, C):
    mean   = sum(x) / C
    rstd   = 1 / sqrt(sum((x - mean)**2) / C + eps)       biased variance, as torch
    xhat   = (x - mean) * rstd
    y      = xhat * weight + bias
    g      = dy * weight
    dx     = rstd * (g - mean(g) - xhat * mean(g * xhat))
    dweight = sum over rows of dy * xhat        (C,); += with accumulate
    dbias   = sum over rows of dy               (C,); += with accumulate
Everything is computed in float64 and rounded to x's dtype once, as the C kernel does; the
backward starts from mean and rstd as stored (in x's dtype).
"""
import numpy as np


@np.errstate(all="ignore")  # NaN/inf in the data propagate, silently; eps = 0 may divide by 0
def layernorm_forward(x, weight, bias, out, mean, rstd, *, eps):
    # x (N, C), weight (C,), bias (C,); out (N, C) = (may be x), mean (N,) =, rstd (N,) =
    x64 = x.astype(np.float64)                             # (N, C)
    m = x64.mean(axis=1)                                   # (N,)
    d = x64 - m[:, None]                                   # (N, C)
    r = 1 / np.sqrt((d * d).mean(axis=1) + eps)            # (N,)
    out[...] = d * r[:, None] * weight + bias              # x is no longer read: out may be x
    mean[...] = m
    rstd[...] = r
    return out, mean, rstd


@np.errstate(all="ignore")
def layernorm_backward(x, weight, mean, rstd, dy, dx, dweight, dbias, *, accumulate):
    # x (N, C), weight (C,), mean (N,), rstd (N,), dy (N, C); dx (N, C) = (may be dy),
    # dweight (C,) = or +=, dbias (C,) = or +=
    r = rstd.astype(np.float64)[:, None]                   # (N, 1)
    xhat = (x.astype(np.float64) - mean.astype(np.float64)[:, None]) * r  # (N, C)
    dy64 = dy.astype(np.float64)                           # (N, C)
    g = dy64 * weight                                      # (N, C)
    dw = (dy64 * xhat).sum(axis=0)                         # (C,)
    db = dy64.sum(axis=0)                                  # (C,)
    dx[...] = r * (g - g.mean(axis=1, keepdims=True)
                   - xhat * (g * xhat).mean(axis=1, keepdims=True))  # dy is no longer read
    if accumulate:  # in float64, then rounded once, as the C kernel
        dweight[...] = dweight + dw
        dbias[...] = dbias + db
    else:
        dweight[...] = dw
        dbias[...] = db
    return dx, dweight, dbias

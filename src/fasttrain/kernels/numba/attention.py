"""Multi-head self-attention in Numba: the plain algorithm, not the blocked one of
csrc/attention.c. Each (batch, head) is one prange task that builds its whole (T, T) probability
matrix (T x T extra memory per thread, where the C kernel keeps only blocks), with the same
formulas as fasttrain.kernels.ref.attention, which it matches:
    S = scale q k^T (masked entries j > i skipped when causal), lse = log sum exp S,
    P = exp(S - lse), out = P v;  backward from P recomputed, D = rowsum(dout * out):
    dv = P^T dout, dS = P (dout v^T - D), dq = scale dS k, dk = scale dS^T q.
Masked entries take part in no sum (a NaN in a masked key reaches nothing), as in the reference.
"""
import math

import numpy as np
from numba import njit, prange

from fasttrain.kernels.numba._threads import use_library_threads


@njit(cache=True, nogil=True)
def _probabilities(P, lse, x, hq, hk, hs, causal, scale):
    # P (T, T) =, lse (T,) =, from the head's q columns [hq, hq+hs) and k columns of x (T, 3C)
    T = x.shape[0]
    for i in range(T):
        kend = i + 1 if causal else T
        m = -np.inf
        for j in range(kend):
            s = 0.0
            for d in range(hs):
                s += x[i, hq + d] * x[j, hk + d]
            s *= scale
            P[i, j] = s
            if s > m or s != s:  # NaN wins, as numpy's max
                m = s if m == m else m
        total = 0.0
        for j in range(kend):
            e = math.exp(P[i, j] - m)
            P[i, j] = e
            total += e
        for j in range(kend):
            P[i, j] /= total
        for j in range(kend, T):
            P[i, j] = 0.0
        lse[i] = m + math.log(total)


@njit(cache=True, nogil=True, parallel=True)
def _forward(out, lse, qkv, n_head, causal, scale):
    # qkv (B, T, 3C); out (B, T, C) =, lse (B, n_head, T) =
    B, T, C3 = qkv.shape
    C = C3 // 3
    hs = C // n_head
    for bh in prange(B * n_head):
        b, h = bh // n_head, bh % n_head
        P = np.empty((T, T), dtype=qkv.dtype)
        _probabilities(P, lse[b, h], qkv[b], h * hs, C + h * hs, hs, causal, scale)
        hv = 2 * C + h * hs
        for i in range(T):
            for d in range(hs):
                out[b, i, h * hs + d] = 0.0
            for j in range(i + 1 if causal else T):
                p = P[i, j]
                for d in range(hs):
                    out[b, i, h * hs + d] += p * qkv[b, j, hv + d]


@njit(cache=True, nogil=True, parallel=True)
def _backward(dqkv, qkv, out, dout, n_head, causal, scale):
    # qkv (B, T, 3C), out (B, T, C), dout (B, T, C); dqkv (B, T, 3C) =
    B, T, C3 = qkv.shape
    C = C3 // 3
    hs = C // n_head
    for bh in prange(B * n_head):
        b, h = bh // n_head, bh % n_head
        hq, hk, hv, ho = h * hs, C + h * hs, 2 * C + h * hs, h * hs
        P = np.empty((T, T), dtype=qkv.dtype)
        lse = np.empty(T, dtype=qkv.dtype)
        _probabilities(P, lse, qkv[b], hq, hk, hs, causal, scale)
        x, dx = qkv[b], dqkv[b]
        for i in range(T):
            for d in range(hs):
                dx[i, hq + d] = 0.0
                dx[i, hk + d] = 0.0
                dx[i, hv + d] = 0.0
        for i in range(T):
            Di = 0.0
            for d in range(hs):
                Di += dout[b, i, ho + d] * out[b, i, ho + d]
            for j in range(i + 1 if causal else T):
                p = P[i, j]
                dp = 0.0
                for d in range(hs):
                    g = dout[b, i, ho + d]
                    dx[j, hv + d] += p * g
                    dp += g * x[j, hv + d]
                ds = scale * p * (dp - Di)
                for d in range(hs):
                    dx[i, hq + d] += ds * x[j, hk + d]
                    dx[j, hk + d] += ds * x[i, hq + d]


def attention_forward(qkv, out, lse, *, n_head, causal, scale):
    # qkv (B, T, 3C); out (B, T, C) =, lse (B, n_head, T) =
    use_library_threads()
    _forward(out, lse, qkv, n_head, causal, scale)
    return out, lse


def attention_backward(qkv, out, lse, dout, dqkv, *, n_head, causal, scale):
    # qkv (B, T, 3C), out (B, T, C), lse (B, n_head, T) (recomputed here, not read),
    # dout (B, T, C); dqkv (B, T, 3C) =
    use_library_threads()
    _backward(dqkv, qkv, out, dout, n_head, causal, scale)
    return dqkv

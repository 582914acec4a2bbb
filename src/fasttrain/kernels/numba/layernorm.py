"""Layer normalization in Numba: the twin of csrc/layernorm.c (formulas there), with the same
fixed chunks of rows for dweight and dbias, so that the result is the same bits for any thread
count. Matches fasttrain.kernels.ref.layernorm. Every sweep runs in double, the statistics in the
plain two sweeps (mean, then the squares about it) of the reference; the C kernel sums float32
data in float32 lanes (shifted, then a corrected second sweep) for speed: Numba's loops with a
running sum do not vectorise without fastmath, which we do not use, so float would buy nothing.

error_model="numpy": with eps = 0 a constant row divides by zero, which must give inf (then NaN),
as in C and torch, not raise ZeroDivisionError.
"""
import math

import numpy as np
from numba import njit, prange

from fasttrain.kernels.numba._threads import use_library_threads

CHUNK_ROWS = 64  # rows per partial sum of dweight and dbias, as csrc/layernorm.c


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def _forward(y, mean, rstd, x, w, b, eps):
    # y (N, C) = (may be x), mean (N,) =, rstd (N,) =; x (N, C), w (C,), b (C,)
    N, C = x.shape
    for i in prange(N):
        s = 0.0
        for j in range(C):
            s += np.float64(x[i, j])
        m = s / C
        v = 0.0  # second sweep: no cancellation
        for j in range(C):
            d = np.float64(x[i, j]) - m
            v += d * d
        r = 1.0 / math.sqrt(v / C + eps)
        for j in range(C):  # reads x[i, j] before it writes y[i, j]: y may be x
            y[i, j] = (np.float64(x[i, j]) - m) * r * np.float64(w[j]) + np.float64(b[j])
        mean[i] = m
        rstd[i] = r


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def _backward_rows(dx, part, x, w, mean, rstd, dy):
    # dx (N, C) = (may be dy); part (nchunks, 2, C) = chunk k's sums of dy * xhat and of dy
    N, C = x.shape
    for k in prange(part.shape[0]):
        dwp, dbp = part[k, 0], part[k, 1]
        dwp[:] = 0.0
        dbp[:] = 0.0
        for i in range(k * CHUNK_ROWS, min(N, (k + 1) * CHUNK_ROWS)):
            m, r = np.float64(mean[i]), np.float64(rstd[i])
            sg = 0.0
            sgx = 0.0
            for j in range(C):
                xh = (np.float64(x[i, j]) - m) * r
                d = np.float64(dy[i, j])
                g = d * np.float64(w[j])
                sg += g
                sgx += g * xh
                dwp[j] += d * xh
                dbp[j] += d
            a, c = sg / C, sgx / C
            for j in range(C):  # reads dy[i, j] before it writes dx[i, j]: dx may be dy
                xh = (np.float64(x[i, j]) - m) * r
                g = np.float64(dy[i, j]) * np.float64(w[j])
                dx[i, j] = r * (g - a - xh * c)


@njit(cache=True, nogil=True, parallel=True)
def _reduce(dweight, dbias, part, accumulate):
    # dweight, dbias (C,) = or += the chunk partials, added in chunk order for every column
    for j in prange(dweight.shape[0]):
        sw = np.float64(dweight[j]) if accumulate else 0.0
        sb = np.float64(dbias[j]) if accumulate else 0.0
        for k in range(part.shape[0]):
            sw += part[k, 0, j]
            sb += part[k, 1, j]
        dweight[j] = sw
        dbias[j] = sb


def layernorm_forward(x, weight, bias, out, mean, rstd, *, eps):
    # x (N, C), weight (C,), bias (C,); out (N, C) = (may be x), mean (N,) =, rstd (N,) =
    use_library_threads()
    _forward(out, mean, rstd, x, weight, bias, eps)
    return out, mean, rstd


def layernorm_backward(x, weight, mean, rstd, dy, dx, dweight, dbias, *, accumulate):
    # x (N, C), weight (C,), mean (N,), rstd (N,), dy (N, C); dx (N, C) = (may be dy),
    # dweight (C,) = or +=, dbias (C,) = or +=
    N, C = x.shape
    part = np.empty(((N + CHUNK_ROWS - 1) // CHUNK_ROWS, 2, C))  # scratch, as layernorm.c's
    use_library_threads()
    _backward_rows(dx, part, x, weight, mean, rstd, dy)
    _reduce(dweight, dbias, part, accumulate)
    return dx, dweight, dbias

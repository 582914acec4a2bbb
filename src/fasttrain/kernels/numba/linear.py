"""Linear layer forward and backward in Numba: the twin of csrc/linear.c, call for call (see that
file for the reasoning). Matches fasttrain.kernels.ref.linear.

The GEMMs are the same BLAS calls as the C backend's: scipy.linalg.cython_blas's sgemm/dgemm,
called from compiled code through a ctypes function pointer (np.dot inside @njit reaches the same
BLAS, but cannot take beta = 1, which the fused bias and accumulate need). The pointer is an
argument, not a global, so that the compiled functions can be cached (cache=True).
"""
import ctypes

import numba
import numpy as np
from numba import njit, prange
from numba.extending import get_cython_function_address

from fasttrain.kernels.numba._threads import use_library_threads
from fasttrain.threads import blas_loaded

_GEMM_TYPE = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * 13)  # Fortran BLAS: all by pointer
_GEMM = {np.dtype(np.float32): _GEMM_TYPE(get_cython_function_address("scipy.linalg.cython_blas",
                                                                      "sgemm")),
         np.dtype(np.float64): _GEMM_TYPE(get_cython_function_address("scipy.linalg.cython_blas",
                                                                      "dgemm"))}
blas_loaded()  # scipy's OpenBLAS is loaded now: give it the library's thread count

_LINE = 16  # columns per 64-byte line in float32; float64 blocks just span two lines


@njit(cache=True, nogil=True)
def _matmul(gemm, out, A, a_f, B, b_f, p, k, q, beta):
    # out (p, q) = A (p, k) B (k, q) + beta out; A, B C-ordered (flag 0) or Fortran-ordered,
    # the latter given as their C-ordered transposes. See matmul in csrc/linear.c.
    ints = np.empty(6, np.int32)  # m, n, k, lda, ldb, ldc
    ints[0], ints[1], ints[2] = q, p, k
    ints[3] = k if b_f else q
    ints[4] = p if a_f else k
    ints[5] = q
    flags = np.empty(2, np.uint8)  # transa, transb
    flags[0] = ord("T") if b_f else ord("N")
    flags[1] = ord("T") if a_f else ord("N")
    scalars = np.empty(2, out.dtype)  # alpha, beta
    scalars[0], scalars[1] = 1, beta
    gemm(flags[0:].ctypes, flags[1:].ctypes, ints[0:].ctypes, ints[1:].ctypes, ints[2:].ctypes,
         scalars[0:].ctypes, B.ctypes, ints[3:].ctypes, A.ctypes, ints[4:].ctypes,
         scalars[1:].ctypes, out.ctypes, ints[5:].ctypes)


@njit(cache=True, nogil=True, parallel=True)
def _bias_backward(db, dy, dy_f, accumulate, nblocks):
    # db (OC,) = or += sum over rows of dy (N, OC), given as dy.T (OC, N) when dy_f. Each block
    # of columns belongs to one thread and sums each column in row order.
    OC = db.shape[0]
    N = dy.shape[1] if dy_f else dy.shape[0]
    lines = (OC + _LINE - 1) // _LINE
    for t in prange(nblocks):
        lo = min(lines * t // nblocks * _LINE, OC)
        hi = min(lines * (t + 1) // nblocks * _LINE, OC)
        if not accumulate:
            db[lo:hi] = 0
        if dy_f:
            for j in range(lo, hi):
                db[j] += dy[j].sum()
        else:
            for i in range(N):
                for j in range(lo, hi):
                    db[j] += dy[i, j]


@njit(cache=True, nogil=True)
def _fill_rows(y, b):
    for i in range(y.shape[0]):
        y[i] = b


def linear_forward(x, W, b, out):
    # x (N, C), W (OC, C): each C- or Fortran-ordered; b (OC,) or None; out (N, OC) =
    N, C = x.shape
    OC = W.shape[0]
    if N == 0 or OC == 0:
        return out
    if b is not None:
        _fill_rows(out, b)
    elif C == 0:
        out[...] = 0
    if C > 0:
        # y = x W^T (+ the prefilled bias, beta = 1); W^T of a C-ordered W is Fortran-ordered
        x_f, w_f = not x.flags.c_contiguous, not W.flags.c_contiguous
        _matmul(_GEMM[out.dtype], out, x.T if x_f else x, x_f, W.T if w_f else W, not w_f,
                N, C, OC, 1.0 if b is not None else 0.0)
    return out


def linear_backward(x, W, dy, dx, dW, db, *, accumulate):
    # x (N, C), W (OC, C), dy (N, OC): each C- or Fortran-ordered; dx (N, C) = or None;
    # dW (OC, C) = or +=; db (OC,) = or += or None
    N, C = x.shape
    OC = W.shape[0]
    gemm = _GEMM[dW.dtype]
    x_f, w_f, dy_f = (not a.flags.c_contiguous for a in (x, W, dy))
    xs, Ws, dys = (a.T if f else a for a, f in ((x, x_f), (W, w_f), (dy, dy_f)))
    if db is not None and OC > 0:
        if N > 0:
            use_library_threads()
            threads = numba.get_num_threads() if N * OC >= 1 << 17 else 1
            _bias_backward(db, dys, dy_f, accumulate, threads)
        elif not accumulate:
            db[...] = 0
    if dx is not None and N > 0 and C > 0:
        if OC > 0:  # dx (N, C) = dy (N, OC) W (OC, C)
            _matmul(gemm, dx, dys, dy_f, Ws, w_f, N, OC, C, 0.0)
        else:
            dx[...] = 0
    if OC > 0 and C > 0:
        if N > 0:  # dW (OC, C) = or += dy^T (OC, N) x (N, C)
            _matmul(gemm, dW, dys, not dy_f, xs, x_f, OC, N, C, 1.0 if accumulate else 0.0)
        elif not accumulate:
            dW[...] = 0
    return dx, dW, db

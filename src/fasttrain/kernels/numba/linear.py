"""Linear layer forward and backward in Numba: the twin of csrc/linear.c, call for call (see that
file for the reasoning). Matches fasttrain.kernels.ref.linear.

The GEMMs are the same BLAS calls as the C backend's: scipy.linalg.cython_blas's sgemm/dgemm,
called from compiled code through a ctypes function pointer (np.dot inside @njit reaches the same
BLAS, but cannot take beta = 1, which the fused bias and accumulate need). The pointer is an
argument, not a global, so that the compiled functions can be cached (cache=True).
"""
import ctypes

import numpy as np
from numba import njit
from numba.extending import get_cython_function_address

from fasttrain.threads import blas_loaded

_GEMM_TYPE = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * 13)  # Fortran BLAS: all by pointer
_GEMM = {np.dtype(np.float32): _GEMM_TYPE(get_cython_function_address("scipy.linalg.cython_blas",
                                                                      "sgemm")),
         np.dtype(np.float64): _GEMM_TYPE(get_cython_function_address("scipy.linalg.cython_blas",
                                                                      "dgemm"))}
blas_loaded()  # scipy's OpenBLAS is loaded now: give it the library's thread count


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


@njit(cache=True, nogil=True)
def _bias_backward(db, dy, dy_f, accumulate):
    # db (OC,) = or += sum over rows of dy (N, OC), given as dy.T (OC, N) when dy_f; each column
    # in row order, on the calling thread (csrc/linear.c says why there is no parallel region)
    OC = db.shape[0]
    if dy_f:
        for j in range(OC):
            s = dy[j].sum()
            db[j] = db[j] + s if accumulate else s
        return
    if not accumulate:
        db[:] = 0
    for i in range(dy.shape[0]):
        for j in range(OC):
            db[j] += dy[i, j]


@njit(cache=True, nogil=True)
def _fill_rows(y, b):
    for i in range(y.shape[0]):
        y[i] = b


@njit(cache=True, nogil=True)
def _forward(gemm, y, x, x_f, W, w_f, b):
    # y (N, OC) = x W^T + b: the twin of ft_linear_forward; x, W as in _matmul, b None or (OC,)
    N, OC = y.shape
    C = x.shape[0] if x_f else x.shape[1]
    if N == 0 or OC == 0:
        return
    if b is not None:
        _fill_rows(y, b)
    elif C == 0:
        y[:] = 0
    if C > 0:  # W^T of a C-ordered W is Fortran-ordered, and vice versa
        _matmul(gemm, y, x, x_f, W, not w_f, N, C, OC, 0.0 if b is None else 1.0)


@njit(cache=True, nogil=True)
def _backward(gemm, dx, dW, db, x, x_f, W, w_f, dy, dy_f, accumulate):
    # the twin of ft_linear_backward: dx (N, C) = dy W or None; dW (OC, C) = or += dy^T x;
    # db (OC,) = or += column sums of dy, or None. x, W, dy as in _matmul.
    OC, C = dW.shape
    N = x.shape[1] if x_f else x.shape[0]
    if db is not None and OC > 0:  # db first, while dy may still be in cache
        if N > 0:
            _bias_backward(db, dy, dy_f, accumulate)
        elif not accumulate:
            db[:] = 0
    if dx is not None and N > 0 and C > 0:
        if OC > 0:  # dx (N, C) = dy (N, OC) W (OC, C)
            _matmul(gemm, dx, dy, dy_f, W, w_f, N, OC, C, 0.0)
        else:
            dx[:] = 0
    if OC > 0 and C > 0:
        if N > 0:  # dW (OC, C) = or += dy^T (OC, N) x (N, C); dy^T of a C-ordered dy is Fortran
            _matmul(gemm, dW, dy, not dy_f, x, x_f, OC, N, C, 1.0 if accumulate else 0.0)
        elif not accumulate:
            dW[:] = 0


def _c_ordered(a):
    """(a as C-ordered, whether a is Fortran-ordered): Fortran-ordered arrays travel as their
    C-ordered transposes, so each kernel compiles for one layout."""
    return (a, False) if a.flags.c_contiguous else (a.T, True)


def linear_forward(x, W, b, out):
    # x (N, C), W (OC, C): each C- or Fortran-ordered; b (OC,) or None; out (N, OC) =
    _forward(_GEMM[out.dtype], out, *_c_ordered(x), *_c_ordered(W), b)
    return out


def linear_backward(x, W, dy, dx, dW, db, *, accumulate):
    # x (N, C), W (OC, C), dy (N, OC): each C- or Fortran-ordered; dx (N, C) = or None;
    # dW (OC, C) = or +=; db (OC,) = or += or None
    _backward(_GEMM[dW.dtype], dx, dW, db, *_c_ordered(x), *_c_ordered(W), *_c_ordered(dy),
              accumulate)
    return dx, dW, db

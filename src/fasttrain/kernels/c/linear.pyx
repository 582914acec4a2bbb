# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""C backend of linear_forward and linear_backward: pointers into csrc/linear.c, the GIL
released, and the BLAS GEMM found at run time.

The GEMM is scipy.linalg.cython_blas's sgemm/dgemm: scipy exports them as PyCapsules holding
C function pointers, so importing this module loads scipy's OpenBLAS without linking any BLAS
at build time (scipy is a run-time dependency only). The pointers go to the C kernel, which
calls them with the GIL released.

The spec is fasttrain.kernels.ref.linear; fasttrain.kernels.linear validates the arguments
before they get here. Inputs arrive C- or Fortran-ordered; a Fortran-ordered one is passed on as
its transpose, which is C-ordered, with its bit set in `layout`. The typed memoryviews below
still refuse a wrong dtype or layout and the shapes are checked again, so that no call of this
module can touch memory out of bounds.
"""
from libc.stdint cimport int64_t

import numpy as np

from fasttrain.threads import blas_loaded, gemm_team, gemm_team_done

from blas cimport blas_function
from csrc cimport (FT_DY_FORTRAN, FT_ERR_BLAS_INT, FT_W_FORTRAN, FT_X_FORTRAN, ft_gemm_f32,
                   ft_gemm_f64, ft_linear_backward_f32, ft_linear_backward_f64,
                   ft_linear_forward_f32, ft_linear_forward_f64)


cdef ft_gemm_f32 _sgemm = <ft_gemm_f32>blas_function("sgemm")
cdef ft_gemm_f64 _dgemm = <ft_gemm_f64>blas_function("dgemm")
blas_loaded()  # scipy's OpenBLAS is loaded now: give it the library's thread count

ctypedef fused real:
    float
    double


cdef inline int _fortran(a, int bit):
    # 1-row and 1-column arrays are both C- and Fortran-contiguous: those count as C-ordered.
    return 0 if a.flags.c_contiguous else bit


cdef inline bint _is(const real[:, ::1] a, Py_ssize_t rows, Py_ssize_t cols, int fortran) noexcept:
    # a, an input as passed to C (a Fortran-ordered one as its C-ordered transpose), is (rows, cols)
    return (a.shape[0] == rows and a.shape[1] == cols if not fortran
            else a.shape[0] == cols and a.shape[1] == rows)


cdef inline const real *_in(const real[:, ::1] a) noexcept nogil:
    if a.shape[0] == 0 or a.shape[1] == 0:
        return NULL
    return &a[0, 0]


cdef inline real *_out(real[:, ::1] a) noexcept nogil:
    if a.shape[0] == 0 or a.shape[1] == 0:
        return NULL
    return &a[0, 0]


def linear_forward(x, W, b, out):
    # x (N, C), W (OC, C): each C- or Fortran-ordered; b (OC,) or None; out (N, OC) C-ordered =
    cdef int layout = _fortran(x, FT_X_FORTRAN) | _fortran(W, FT_W_FORTRAN)
    xs = x.T if layout & FT_X_FORTRAN else x  # C-ordered either way
    Ws = W.T if layout & FT_W_FORTRAN else W
    if out.dtype == np.float32:
        _forward[float](out, xs, Ws, b, layout)
    else:
        _forward[double](out, xs, Ws, b, layout)
    return out


cdef int _forward(real[:, ::1] y, const real[:, ::1] x, const real[:, ::1] W, const real[::1] b,
                  int layout) except -1:
    cdef Py_ssize_t N = y.shape[0], OC = y.shape[1]
    cdef Py_ssize_t C = x.shape[0] if layout & FT_X_FORTRAN else x.shape[1]
    if (not _is(x, N, C, layout & FT_X_FORTRAN) or not _is(W, OC, C, layout & FT_W_FORTRAN)
            or (b is not None and b.shape[0] != OC)):
        raise ValueError("linear_forward (C backend): shapes do not match")
    cdef const real *bias = NULL
    if b is not None and OC > 0:
        bias = &b[0]
    cdef int err, nthreads = gemm_team(N * C * OC)  # threads.py: the GEMMs on our team
    try:
        with nogil:
            if real is float:
                err = ft_linear_forward_f32(_sgemm, _out(y), _in(x), _in(W), bias, N, C, OC,
                                            layout, nthreads)
            else:
                err = ft_linear_forward_f64(_dgemm, _out(y), _in(x), _in(W), bias, N, C, OC,
                                            layout, nthreads)
    finally:
        if nthreads > 1:
            gemm_team_done()
    if err == FT_ERR_BLAS_INT:
        raise ValueError(f"linear_forward: (N, C, OC) = {(N, C, OC)} exceeds BLAS's 32-bit int")
    return 0


def linear_backward(x, W, dy, dx, dW, db, *, accumulate):
    # x (N, C), W (OC, C), dy (N, OC): each C- or Fortran-ordered; C-ordered outputs:
    # dx (N, C) = or None; dW (OC, C) = or +=; db (OC,) = or += or None
    cdef int layout = (_fortran(x, FT_X_FORTRAN) | _fortran(W, FT_W_FORTRAN)
                       | _fortran(dy, FT_DY_FORTRAN))
    xs = x.T if layout & FT_X_FORTRAN else x  # C-ordered either way
    Ws = W.T if layout & FT_W_FORTRAN else W
    dys = dy.T if layout & FT_DY_FORTRAN else dy
    if dW.dtype == np.float32:
        _backward[float](dx, dW, db, xs, Ws, dys, layout, accumulate)
    else:
        _backward[double](dx, dW, db, xs, Ws, dys, layout, accumulate)
    return dx, dW, db


cdef int _backward(real[:, ::1] dx, real[:, ::1] dW, real[::1] db, const real[:, ::1] x,
                   const real[:, ::1] W, const real[:, ::1] dy, int layout,
                   bint accumulate) except -1:
    cdef Py_ssize_t OC = dW.shape[0], C = dW.shape[1]
    cdef Py_ssize_t N = x.shape[1] if layout & FT_X_FORTRAN else x.shape[0]
    if (not _is(x, N, C, layout & FT_X_FORTRAN) or not _is(W, OC, C, layout & FT_W_FORTRAN)
            or not _is(dy, N, OC, layout & FT_DY_FORTRAN)
            or (dx is not None and (dx.shape[0] != N or dx.shape[1] != C))
            or (db is not None and db.shape[0] != OC)):
        raise ValueError("linear_backward (C backend): shapes do not match")
    cdef real *dx_p = NULL if dx is None else _out(dx)
    cdef real *db_p = NULL if db is None or OC == 0 else &db[0]
    cdef int err, nthreads = gemm_team(N * C * OC)  # threads.py: the GEMMs on our team
    try:
        with nogil:
            if real is float:
                err = ft_linear_backward_f32(_sgemm, dx_p, _out(dW), db_p, _in(x), _in(W),
                                             _in(dy), N, C, OC, layout, accumulate, nthreads)
            else:
                err = ft_linear_backward_f64(_dgemm, dx_p, _out(dW), db_p, _in(x), _in(W),
                                             _in(dy), N, C, OC, layout, accumulate, nthreads)
    finally:
        if nthreads > 1:
            gemm_team_done()
    if err == FT_ERR_BLAS_INT:
        raise ValueError(f"linear_backward: (N, C, OC) = {(N, C, OC)} exceeds BLAS's 32-bit int")
    return 0

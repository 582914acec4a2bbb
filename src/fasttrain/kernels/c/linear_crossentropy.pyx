# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""C backend of linear_cross_entropy: pointers into csrc/linear_crossentropy.c, the GIL released,
scipy's BLAS GEMM passed in as for linear_forward (see linear.pyx).

The spec is fasttrain.kernels.ref.linear_crossentropy; fasttrain.kernels.linear_crossentropy
validates the arguments (all arrays C-contiguous here) and chooses chunk_rows before they get
here. This module allocates the (chunk_rows, V) scratch buffer and the (N,) row losses as numpy
arrays, so that tracemalloc sees them. The typed memoryviews below still refuse a wrong dtype or
layout and the shapes are checked again, so that no call of this module can touch memory out of
bounds.
"""
from libc.stdint cimport int64_t

import numpy as np

from fasttrain.threads import blas_loaded, gemm_team, gemm_team_done, get_num_threads

from blas cimport blas_function
from csrc cimport (FT_ERR_BLAS_INT, FT_REDUCTION_MEAN, FT_REDUCTION_NONE, FT_REDUCTION_SUM,
                   ft_gemm_f32, ft_gemm_f64, ft_linear_crossentropy_f32,
                   ft_linear_crossentropy_f64)

_REDUCTIONS = {"none": FT_REDUCTION_NONE, "mean": FT_REDUCTION_MEAN, "sum": FT_REDUCTION_SUM}


cdef ft_gemm_f32 _sgemm = <ft_gemm_f32>blas_function("sgemm")
cdef ft_gemm_f64 _dgemm = <ft_gemm_f64>blas_function("dgemm")
blas_loaded()  # scipy's OpenBLAS is loaded now: give it the library's thread count

ctypedef fused real:
    float
    double


def linear_cross_entropy(x, W, b, targets, dx, dW, db, *, ignore_index, reduction,
                         label_smoothing, weight, lse_square_scale, softcap, grad_rows,
                         chunk_rows, accumulate):
    # x (N, C), W (V, C), b (V,) or None, targets (N,) int64: C-ordered inputs; weight (V,) or
    # None, grad_rows (N,) or None; dx (N, C) = or None; dW (V, C) = or +=; db (V,) = or += or None
    N, C = x.shape
    V = W.shape[0]
    cdef int64_t rows = max(1, min(chunk_rows, N))
    work = np.empty((rows if N else 0, V), dtype=x.dtype)  # (chunk_rows, V) scratch
    losses = np.empty(N, dtype=x.dtype)                     # (N,)
    cdef double loss
    cdef int red = _REDUCTIONS[reduction]
    # the team of the rows between the GEMMs (csrc/ says how), and of the GEMMs (threads.py)
    cdef int team = gemm_team(rows * C * V), nthreads = get_num_threads()
    cdef double cap = 0.0 if softcap is None else softcap
    try:
        if x.dtype == np.float32:
            loss = _lce[float](losses, dx, dW, db, work, x, W, b, targets, weight, grad_rows, rows,
                               ignore_index, red, label_smoothing, lse_square_scale, cap,
                               accumulate, nthreads, team)
        else:
            loss = _lce[double](losses, dx, dW, db, work, x, W, b, targets, weight, grad_rows,
                                rows, ignore_index, red, label_smoothing, lse_square_scale, cap,
                                accumulate, nthreads, team)
    finally:
        if team > 1:
            gemm_team_done()
    return (losses if red == FT_REDUCTION_NONE else loss), dx, dW, db


cdef inline real *_ptr2(real[:, ::1] a) noexcept nogil:
    if a.shape[0] == 0 or a.shape[1] == 0:
        return NULL
    return &a[0, 0]


cdef inline real *_ptr1(real[::1] a) noexcept nogil:
    if a.shape[0] == 0:
        return NULL
    return &a[0]


cdef inline const real *_in2(const real[:, ::1] a) noexcept nogil:
    if a.shape[0] == 0 or a.shape[1] == 0:
        return NULL
    return &a[0, 0]


cdef inline const real *_in1(const real[::1] a) noexcept nogil:
    if a.shape[0] == 0:
        return NULL
    return &a[0]


cdef double _lce(real[::1] losses, real[:, ::1] dx, real[:, ::1] dW, real[::1] db,
                 real[:, ::1] work, const real[:, ::1] x, const real[:, ::1] W, const real[::1] b,
                 const int64_t[::1] targets, const real[::1] weight, const real[::1] grad_rows,
                 int64_t rows, int64_t ignore_index, int red, double eps, double zs, double cap,
                 bint accumulate, int nthreads, int gemm_nthreads) except? -1:
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], V = W.shape[0]
    if (W.shape[1] != C or dW.shape[0] != V or dW.shape[1] != C or targets.shape[0] != N
            or losses.shape[0] != N or (b is not None and b.shape[0] != V)
            or (db is not None and db.shape[0] != V)
            or (dx is not None and (dx.shape[0] != N or dx.shape[1] != C))
            or (weight is not None and weight.shape[0] != V)
            or (grad_rows is not None and grad_rows.shape[0] != N)
            or work.shape[1] != V or (N > 0 and work.shape[0] < rows)):
        raise ValueError("linear_cross_entropy (C backend): shapes do not match")
    cdef real *dx_p = NULL if dx is None else _ptr2(dx)
    cdef real *db_p = NULL if db is None else _ptr1(db)
    cdef const real *b_p = NULL if b is None else _in1(b)
    cdef const real *w_p = NULL if weight is None else _in1(weight)
    cdef const real *g_p = NULL if grad_rows is None else _in1(grad_rows)
    cdef const int64_t *t_p = NULL if N == 0 else &targets[0]
    cdef double loss = 0
    cdef int err
    with nogil:
        if real is float:
            err = ft_linear_crossentropy_f32(_sgemm, &loss, _ptr1(losses), dx_p, _ptr2(dW), db_p,
                                             _ptr2(work), _in2(x), _in2(W), b_p, t_p, N, C, V,
                                             rows, ignore_index, red, eps, w_p, zs, cap, g_p,
                                             accumulate, nthreads, gemm_nthreads)
        else:
            err = ft_linear_crossentropy_f64(_dgemm, &loss, _ptr1(losses), dx_p, _ptr2(dW), db_p,
                                             _ptr2(work), _in2(x), _in2(W), b_p, t_p, N, C, V,
                                             rows, ignore_index, red, eps, w_p, zs, cap, g_p,
                                             accumulate, nthreads, gemm_nthreads)
    if err == FT_ERR_BLAS_INT:
        raise ValueError(f"linear_cross_entropy: (N, C, V) = {(N, C, V)} exceeds BLAS's "
                         "32-bit int")
    return loss

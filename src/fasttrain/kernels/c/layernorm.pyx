# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""C backend of layernorm_forward / layernorm_backward: pointers into csrc/layernorm.c, the GIL
released.

The spec is fasttrain.kernels.ref.layernorm; fasttrain.kernels.layernorm validates the arguments
and hands over (N, C) rows. The typed memoryviews below still refuse a wrong dtype or layout, and
the shapes are checked again, so that no call of this module can touch memory out of bounds.
"""
from libc.stdint cimport int64_t

import numpy as np

from fasttrain.threads import get_num_threads

from csrc cimport (FT_ERR_NOMEM, ft_layernorm_backward_f32, ft_layernorm_backward_f64,
                   ft_layernorm_forward_f32, ft_layernorm_forward_f64)

ctypedef fused real:
    float
    double


def layernorm_forward(x, weight, bias, out, mean, rstd, *, eps):
    # x (N, C), weight (C,), bias (C,); out (N, C) = (may be x), mean (N,) =, rstd (N,) =
    if x.dtype == np.float32:
        _forward[float](out, mean, rstd, x, weight, bias, eps)
    else:
        _forward[double](out, mean, rstd, x, weight, bias, eps)
    return out, mean, rstd


cdef int _forward(real[:, ::1] y, real[::1] mean, real[::1] rstd, const real[:, ::1] x,
                  const real[::1] w, const real[::1] b, double eps) except -1:
    cdef int64_t N = x.shape[0], C = x.shape[1]
    cdef int nthreads = get_num_threads()
    if (C < 1 or y.shape[0] != N or y.shape[1] != C or mean.shape[0] != N
            or rstd.shape[0] != N or w.shape[0] != C or b.shape[0] != C):
        raise ValueError("layernorm_forward (C backend): shapes do not match")
    if N == 0:
        return 0
    with nogil:
        if real is float:
            ft_layernorm_forward_f32(&y[0, 0], &mean[0], &rstd[0], &x[0, 0], &w[0], &b[0], N, C,
                                     eps, nthreads)
        else:
            ft_layernorm_forward_f64(&y[0, 0], &mean[0], &rstd[0], &x[0, 0], &w[0], &b[0], N, C,
                                     eps, nthreads)
    return 0


def layernorm_backward(x, weight, mean, rstd, dy, dx, dweight, dbias, *, accumulate):
    # x (N, C), weight (C,), mean (N,), rstd (N,), dy (N, C); dx (N, C) = (may be dy),
    # dweight (C,) = or +=, dbias (C,) = or +=
    if x.dtype == np.float32:
        _backward[float](dx, dweight, dbias, x, weight, mean, rstd, dy, accumulate)
    else:
        _backward[double](dx, dweight, dbias, x, weight, mean, rstd, dy, accumulate)
    return dx, dweight, dbias


cdef int _backward(real[:, ::1] dx, real[::1] dw, real[::1] db, const real[:, ::1] x,
                   const real[::1] w, const real[::1] mean, const real[::1] rstd,
                   const real[:, ::1] dy, bint accumulate) except -1:
    cdef int64_t N = x.shape[0], C = x.shape[1]
    cdef int nthreads = get_num_threads()
    if (C < 1 or dx.shape[0] != N or dx.shape[1] != C or dy.shape[0] != N
            or dy.shape[1] != C or mean.shape[0] != N or rstd.shape[0] != N
            or w.shape[0] != C or dw.shape[0] != C or db.shape[0] != C):
        raise ValueError("layernorm_backward (C backend): shapes do not match")
    # N = 0: no rows to point at; the kernel then only zeroes (or keeps) dweight and dbias
    cdef real *dx_p = &dx[0, 0] if N > 0 else NULL
    cdef const real *x_p = &x[0, 0] if N > 0 else NULL
    cdef const real *dy_p = &dy[0, 0] if N > 0 else NULL
    cdef const real *m_p = &mean[0] if N > 0 else NULL
    cdef const real *r_p = &rstd[0] if N > 0 else NULL
    cdef int err
    with nogil:
        if real is float:
            err = ft_layernorm_backward_f32(dx_p, &dw[0], &db[0], x_p, &w[0], m_p, r_p, dy_p,
                                            N, C, accumulate, nthreads)
        else:
            err = ft_layernorm_backward_f64(dx_p, &dw[0], &db[0], x_p, &w[0], m_p, r_p, dy_p,
                                            N, C, accumulate, nthreads)
    if err == FT_ERR_NOMEM:
        raise MemoryError(f"layernorm_backward: no memory for the dweight/dbias partial sums "
                          f"({(N + 63) // 64 * 2 * C * sizeof(real)} bytes)")
    return 0

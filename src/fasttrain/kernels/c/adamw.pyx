# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""C backend of adamw_step, sgd_step and sum_of_squares: pointers into csrc/adamw.c, the GIL
released.

The spec is fasttrain.kernels.ref.adamw; fasttrain.kernels.adamw validates the arguments before
they get here (one dtype, one shape, C-contiguous, no overlap). The arrays are flattened to 1-D
views (no copy for C-contiguous arrays) and the typed memoryviews below refuse a wrong dtype or
layout; the sizes are checked again, so that no call of this module can touch memory out of
bounds.
"""
import numpy as np
from libc.stdint cimport int64_t

from fasttrain.threads import get_num_threads

from csrc cimport (ft_adamw_f32, ft_adamw_f64, ft_sgd_f32, ft_sgd_f64, ft_sum_of_squares_f32,
                   ft_sum_of_squares_f64)


# Stand-ins for sgd_step's buffer when momentum == 0: the kernel neither reads nor writes it.
_NO_BUF = {np.dtype(np.float32): np.zeros(1, np.float32), np.dtype(np.float64): np.zeros(1)}


def _flat(name, a, n):
    flat = a.reshape(-1)  # a view: the arrays are C-contiguous
    if flat.shape[0] != n:
        raise ValueError(f"{name} (C backend): size {flat.shape[0]} != {n}")
    return flat


def adamw_step(param, grad, m, v, *, step, lr, beta1, beta2, eps, weight_decay, grad_scale,
               v_max=None):
    # param, grad, m, v (and v_max) (P,) after flattening; param, m, v, v_max updated in place
    n = param.size
    p, g, m1, v1 = (_flat("param", param, n), _flat("grad", grad, n), _flat("m", m, n),
                    _flat("v", v, n))
    amsgrad = v_max is not None
    # a stand-in when not AMSGrad: the kernel gets NULL and neither reads nor writes it
    vm = _flat("v_max", v_max, n) if amsgrad else _NO_BUF[param.dtype]
    if n == 0:
        return
    if param.dtype == np.float32:
        _adamw_f32(p, m1, v1, vm, amsgrad, g, step, lr, beta1, beta2, eps, weight_decay,
                   grad_scale)
    else:
        _adamw_f64(p, m1, v1, vm, amsgrad, g, step, lr, beta1, beta2, eps, weight_decay,
                   grad_scale)


cdef void _adamw_f32(float[::1] param, float[::1] m, float[::1] v, float[::1] v_max,
                     bint amsgrad, const float[::1] grad, int64_t step, double lr, double beta1,
                     double beta2, double eps, double weight_decay, double grad_scale):
    cdef int nthreads = get_num_threads()
    cdef float *vm = &v_max[0] if amsgrad else NULL
    with nogil:
        ft_adamw_f32(&param[0], &m[0], &v[0], vm, &grad[0], param.shape[0], step, lr, beta1,
                     beta2, eps, weight_decay, grad_scale, nthreads)


cdef void _adamw_f64(double[::1] param, double[::1] m, double[::1] v, double[::1] v_max,
                     bint amsgrad, const double[::1] grad, int64_t step, double lr,
                     double beta1, double beta2, double eps, double weight_decay,
                     double grad_scale):
    cdef int nthreads = get_num_threads()
    cdef double *vm = &v_max[0] if amsgrad else NULL
    with nogil:
        ft_adamw_f64(&param[0], &m[0], &v[0], vm, &grad[0], param.shape[0], step, lr, beta1,
                     beta2, eps, weight_decay, grad_scale, nthreads)


def sgd_step(param, grad, buf, *, lr, momentum, dampening, nesterov, weight_decay, grad_scale):
    # param, grad, buf (P,) after flattening; param and buf updated; buf None if momentum == 0
    n = param.size
    p, g = _flat("param", param, n), _flat("grad", grad, n)
    if momentum != 0:
        b = _flat("buf", buf, n)
    else:
        b = _NO_BUF[param.dtype]
    if n == 0:
        return
    if param.dtype == np.float32:
        _sgd_f32(p, b, g, momentum != 0, lr, momentum, dampening, nesterov, weight_decay,
                 grad_scale)
    else:
        _sgd_f64(p, b, g, momentum != 0, lr, momentum, dampening, nesterov, weight_decay,
                 grad_scale)


cdef void _sgd_f32(float[::1] param, float[::1] buf, const float[::1] grad, bint has_buf,
                   double lr, double momentum, double dampening, bint nesterov,
                   double weight_decay, double grad_scale):
    cdef int nthreads = get_num_threads()
    cdef float *b = &buf[0] if has_buf else NULL
    with nogil:
        ft_sgd_f32(&param[0], b, &grad[0], param.shape[0], lr, momentum, dampening, nesterov,
                   weight_decay, grad_scale, nthreads)


cdef void _sgd_f64(double[::1] param, double[::1] buf, const double[::1] grad, bint has_buf,
                   double lr, double momentum, double dampening, bint nesterov,
                   double weight_decay, double grad_scale):
    cdef int nthreads = get_num_threads()
    cdef double *b = &buf[0] if has_buf else NULL
    with nogil:
        ft_sgd_f64(&param[0], b, &grad[0], param.shape[0], lr, momentum, dampening, nesterov,
                   weight_decay, grad_scale, nthreads)


def sum_of_squares(x):
    # x any shape, C-contiguous; returns a Python float
    flat = _flat("x", x, x.size)
    if x.size == 0:
        return 0.0
    if x.dtype == np.float32:
        return _sum_of_squares_f32(flat)
    return _sum_of_squares_f64(flat)


cdef double _sum_of_squares_f32(const float[::1] x):
    cdef int nthreads = get_num_threads()
    with nogil:
        return ft_sum_of_squares_f32(&x[0], x.shape[0], nthreads)


cdef double _sum_of_squares_f64(const double[::1] x):
    cdef int nthreads = get_num_threads()
    with nogil:
        return ft_sum_of_squares_f64(&x[0], x.shape[0], nthreads)

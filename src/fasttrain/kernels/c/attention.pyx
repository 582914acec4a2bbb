# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""C backend of attention_forward and attention_backward (csrc/attention.c), the GIL released.

The spec is fasttrain.kernels.ref.attention; fasttrain.kernels.attention validates the arguments
(all C-contiguous here, n_head dividing C, a finite scale) before they get here. This module
allocates the per-thread scratch blocks as one numpy array, so that tracemalloc sees them. The
typed memoryviews below still refuse a wrong dtype or layout and the shapes are checked again,
so that no call of this module can touch memory out of bounds.
"""
from libc.stdint cimport int64_t

import numpy as np

from fasttrain.threads import get_num_threads

from csrc cimport (ft_attention_backward_f32, ft_attention_backward_f64,
                   ft_attention_forward_f32, ft_attention_forward_f64, ft_attention_work_f32,
                   ft_attention_work_f64)

ctypedef fused real:
    float
    double


def attention_forward(qkv, out, lse, *, n_head, causal, scale):
    # qkv (B, T, 3C), out (B, T, C) =, lse (B, n_head, T) =
    B, T, C3 = qkv.shape
    _check(qkv, n_head, out=out, lse=lse)
    cdef int nthreads = get_num_threads()
    work = _work(qkv.dtype, T, C3 // 3 // n_head, 0, nthreads)  # (nthreads, per-thread reals)
    _forward(out, lse, work, qkv, n_head, causal, scale, nthreads)  # fused: dispatch on dtype
    return out, lse


def attention_backward(qkv, out, lse, dout, dqkv, *, n_head, causal, scale):
    # qkv (B, T, 3C), out (B, T, C), lse (B, n_head, T), dout (B, T, C); dqkv (B, T, 3C) =
    B, T, C3 = qkv.shape
    _check(qkv, n_head, out=out, lse=lse, dout=dout, dqkv=dqkv)
    cdef int nthreads = get_num_threads()
    work = _work(qkv.dtype, T, C3 // 3 // n_head, 1, nthreads)
    _backward(dqkv, work, qkv, out, lse, dout, n_head, causal, scale, nthreads)
    return dqkv


def _check(qkv, n_head, **arrays):
    B, T, C3 = qkv.shape
    if n_head < 1 or C3 % 3 or (C3 // 3) % n_head or C3 == 0:
        raise ValueError("attention (C backend): n_head does not divide C")
    shapes = {"out": (B, T, C3 // 3), "lse": (B, n_head, T), "dout": (B, T, C3 // 3),
              "dqkv": (B, T, C3)}
    for name, a in arrays.items():
        if a.shape != shapes[name] or a.dtype != qkv.dtype:
            raise ValueError(f"attention (C backend): {name} does not match qkv")


def _work(dtype, int64_t T, int64_t hs, int backward, int nthreads):
    cdef int64_t n = (ft_attention_work_f32(T, hs, backward) if dtype == np.float32
                      else ft_attention_work_f64(T, hs, backward))
    return np.empty((nthreads, max(n, 1)), dtype=dtype)


def _forward(real[:, :, ::1] out, real[:, :, ::1] lse, real[:, ::1] work,
             const real[:, :, ::1] qkv, int64_t n_head, bint causal, double scale, int nthreads):
    cdef int64_t B = qkv.shape[0], T = qkv.shape[1], C = qkv.shape[2] // 3
    if B == 0 or T == 0:
        return
    with nogil:
        if real is float:
            ft_attention_forward_f32(&out[0, 0, 0], &lse[0, 0, 0], &work[0, 0], &qkv[0, 0, 0],
                                     B, T, C, n_head, causal, scale, nthreads)
        else:
            ft_attention_forward_f64(&out[0, 0, 0], &lse[0, 0, 0], &work[0, 0], &qkv[0, 0, 0],
                                     B, T, C, n_head, causal, scale, nthreads)


def _backward(real[:, :, ::1] dqkv, real[:, ::1] work, const real[:, :, ::1] qkv,
              const real[:, :, ::1] out, const real[:, :, ::1] lse, const real[:, :, ::1] dout,
              int64_t n_head, bint causal, double scale, int nthreads):
    cdef int64_t B = qkv.shape[0], T = qkv.shape[1], C = qkv.shape[2] // 3
    if B == 0 or T == 0:
        return
    with nogil:
        if real is float:
            ft_attention_backward_f32(&dqkv[0, 0, 0], &work[0, 0], &qkv[0, 0, 0], &out[0, 0, 0],
                                      &lse[0, 0, 0], &dout[0, 0, 0], B, T, C, n_head, causal,
                                      scale, nthreads)
        else:
            ft_attention_backward_f64(&dqkv[0, 0, 0], &work[0, 0], &qkv[0, 0, 0], &out[0, 0, 0],
                                      &lse[0, 0, 0], &dout[0, 0, 0], B, T, C, n_head, causal,
                                      scale, nthreads)

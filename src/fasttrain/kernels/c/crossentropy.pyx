# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""C backend of softmax_cross_entropy: pointers into csrc/crossentropy.c, the GIL released.

The spec is fasttrain.kernels.ref.crossentropy; fasttrain.kernels.crossentropy validates the
arguments before they get here. The typed memoryviews below still refuse a wrong dtype or layout,
and the shapes are checked again, so that no call of this module can touch memory out of bounds.
"""
import numpy as np
from libc.stdint cimport int64_t

from fasttrain.threads import get_num_threads

from csrc cimport (FT_REDUCTION_MEAN, FT_REDUCTION_NONE, FT_REDUCTION_SUM,
                   ft_crossentropy_f32, ft_crossentropy_f64)

ctypedef fused real:
    float
    double

_REDUCTIONS = {"none": FT_REDUCTION_NONE, "mean": FT_REDUCTION_MEAN, "sum": FT_REDUCTION_SUM}


def softmax_cross_entropy(logits, targets, out, *, ignore_index, reduction, label_smoothing,
                          weight, lse_square_scale, softcap, grad_rows):
    # logits (N, V), targets (N,) int64, out (N, V): all C-contiguous; out may be logits;
    # weight (V,) or None, grad_rows (N,) or None, of the logits' dtype
    N, V = logits.shape
    if (targets.shape != (N,) or out.shape != (N, V) or out.dtype != logits.dtype
            or (weight is not None and (weight.shape != (V,) or weight.dtype != logits.dtype))
            or (grad_rows is not None
                and (grad_rows.shape != (N,) or grad_rows.dtype != logits.dtype))):
        raise ValueError("softmax_cross_entropy (C backend): shapes or dtypes do not match")
    losses = np.empty(N, dtype=logits.dtype)  # (N,)
    cdef int red = _REDUCTIONS[reduction]
    cdef double cap = 0.0 if softcap is None else softcap
    cdef double loss
    if logits.dtype == np.float32:
        loss = _ce[float](out, losses, logits, targets, weight, grad_rows, ignore_index, red,
                          label_smoothing, lse_square_scale, cap)
    else:
        loss = _ce[double](out, losses, logits, targets, weight, grad_rows, ignore_index, red,
                           label_smoothing, lse_square_scale, cap)
    return (losses if red == FT_REDUCTION_NONE else loss), out


cdef double _ce(real[:, ::1] dlogits, real[::1] losses, const real[:, ::1] logits,
                const int64_t[::1] targets, const real[::1] weight, const real[::1] grad_rows,
                int64_t ignore_index, int red, double eps, double zs, double cap):
    cdef int nthreads = get_num_threads()
    cdef Py_ssize_t N = logits.shape[0], V = logits.shape[1]
    cdef const real *w = NULL if weight is None else &weight[0]  # V >= 1
    cdef const real *g = NULL if grad_rows is None or N == 0 else &grad_rows[0]
    cdef real *d = NULL
    cdef real *l = NULL
    cdef const real *x = NULL
    cdef const int64_t *t = NULL
    if N > 0:
        d = &dlogits[0, 0]
        l = &losses[0]
        x = &logits[0, 0]
        t = &targets[0]
    with nogil:
        if real is float:
            return ft_crossentropy_f32(d, l, x, t, N, V, ignore_index, red, eps, w, zs, cap, g,
                                       nthreads)
        else:
            return ft_crossentropy_f64(d, l, x, t, N, V, ignore_index, red, eps, w, zs, cap, g,
                                       nthreads)

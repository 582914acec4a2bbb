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

_REDUCTIONS = {"none": FT_REDUCTION_NONE, "mean": FT_REDUCTION_MEAN, "sum": FT_REDUCTION_SUM}


def softmax_cross_entropy(logits, targets, out, *, ignore_index, reduction, label_smoothing):
    # logits (N, V), targets (N,) int64, out (N, V): all C-contiguous; out may be logits
    N, V = logits.shape
    if targets.shape != (N,) or out.shape != (N, V) or out.dtype != logits.dtype:
        raise ValueError("softmax_cross_entropy (C backend): shapes or dtypes do not match")
    losses = np.empty(N, dtype=logits.dtype)  # (N,)
    cdef int red = _REDUCTIONS[reduction]
    cdef double loss
    if logits.dtype == np.float32:
        loss = _ce_f32(out, losses, logits, targets, ignore_index, red, label_smoothing)
    else:
        loss = _ce_f64(out, losses, logits, targets, ignore_index, red, label_smoothing)
    return (losses if red == FT_REDUCTION_NONE else loss), out


cdef double _ce_f32(float[:, ::1] dlogits, float[::1] losses, const float[:, ::1] logits,
                    const int64_t[::1] targets, int64_t ignore_index, int red, double eps):
    cdef int nthreads = get_num_threads()
    if logits.shape[0] == 0:
        return ft_crossentropy_f32(NULL, NULL, NULL, NULL, 0, logits.shape[1],
                                   ignore_index, red, eps, nthreads)
    with nogil:
        return ft_crossentropy_f32(&dlogits[0, 0], &losses[0], &logits[0, 0], &targets[0],
                                   logits.shape[0], logits.shape[1], ignore_index, red, eps,
                                   nthreads)


cdef double _ce_f64(double[:, ::1] dlogits, double[::1] losses, const double[:, ::1] logits,
                    const int64_t[::1] targets, int64_t ignore_index, int red, double eps):
    cdef int nthreads = get_num_threads()
    if logits.shape[0] == 0:
        return ft_crossentropy_f64(NULL, NULL, NULL, NULL, 0, logits.shape[1],
                                   ignore_index, red, eps, nthreads)
    with nogil:
        return ft_crossentropy_f64(&dlogits[0, 0], &losses[0], &logits[0, 0], &targets[0],
                                   logits.shape[0], logits.shape[1], ignore_index, red, eps,
                                   nthreads)

# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""C backend of the embedding kernels (csrc/embedding.c), the GIL released: plain lookups are
bags of one row. Arguments arrive validated by fasttrain.kernels.embedding (indices in range,
shapes, dtypes); the sizes are checked again here so that no call can touch memory out of bounds.
"""
from libc.stdint cimport int64_t

from fasttrain.threads import get_num_threads

from csrc cimport (ft_embedding_backward_f32, ft_embedding_backward_f64,
                   ft_embedding_forward_f32, ft_embedding_forward_f64)

ctypedef fused real:
    float
    double


def embedding_forward(idx, W, out):
    # idx (...) int64, W (V, E), out (..., E)
    _forward(out.reshape(idx.size, W.shape[1]), W, idx.reshape(-1, 1))  # not -1: E may be 0
    return out


def embedding_backward(idx, dout, dW, *, accumulate):
    # idx (...) int64, dout (..., E), dW (V, E)
    _backward(dW, dout.reshape(idx.size, dW.shape[1]), idx.reshape(-1, 1), accumulate)
    return dW


def embedding_bag_forward(idx, W, out):
    # idx (N, K) int64, W (V, E), out (N, E)
    _forward(out, W, idx)
    return out


def embedding_bag_backward(idx, dout, dW, *, accumulate):
    # idx (N, K) int64, dout (N, E), dW (V, E)
    _backward(dW, dout, idx, accumulate)
    return dW


def _forward(real[:, ::1] out, const real[:, ::1] W, const int64_t[:, ::1] idx):
    cdef int64_t N = idx.shape[0], K = idx.shape[1], E = W.shape[1]
    cdef int nthreads = get_num_threads()
    if out.shape[0] != N or out.shape[1] != E:
        raise ValueError("embedding forward (C backend): shapes do not match")
    if N == 0 or E == 0:
        return
    if K == 0:  # a sum of no rows
        out[:, :] = 0
        return
    with nogil:
        if real is float:
            ft_embedding_forward_f32(&out[0, 0], &W[0, 0], &idx[0, 0], N, K, E, nthreads)
        else:
            ft_embedding_forward_f64(&out[0, 0], &W[0, 0], &idx[0, 0], N, K, E, nthreads)


def _backward(real[:, ::1] dW, const real[:, ::1] dout, const int64_t[:, ::1] idx, bint accumulate):
    cdef int64_t N = idx.shape[0], K = idx.shape[1], V = dW.shape[0], E = dW.shape[1]
    cdef int nthreads = get_num_threads()
    if dout.shape[0] != N or dout.shape[1] != E:
        raise ValueError("embedding backward (C backend): shapes do not match")
    if V == 0 or E == 0:
        return
    if N == 0 or K == 0:
        if not accumulate:
            dW[:, :] = 0
        return
    with nogil:
        if real is float:
            ft_embedding_backward_f32(&dW[0, 0], &dout[0, 0], &idx[0, 0], N, K, V, E, accumulate,
                                      nthreads)
        else:
            ft_embedding_backward_f64(&dW[0, 0], &dout[0, 0], &idx[0, 0], N, K, V, E, accumulate,
                                      nthreads)

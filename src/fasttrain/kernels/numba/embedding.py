"""Embedding lookup in Numba: the twin of csrc/embedding.c (formulas there, and why the backward
is split by columns); plain lookups are bags of one. Matches fasttrain.kernels.ref.embedding."""
import numba
from numba import njit, prange

from fasttrain.kernels.numba._threads import use_library_threads


@njit(cache=True, nogil=True, parallel=True)
def _forward(out, W, idx):
    # out (N, E) =, W (V, E), idx (N, K) with K >= 1. Loops, not row slices: `out[i, :] +=
    # W[v, :]` made a temporary per row, 3.5x slower (529 against 151 us at V256 E64 N8192).
    E = W.shape[1]
    for i in prange(idx.shape[0]):
        v = idx[i, 0]
        for j in range(E):
            out[i, j] = W[v, j]
        for k in range(1, idx.shape[1]):
            v = idx[i, k]
            for j in range(E):
                out[i, j] += W[v, j]


@njit(cache=True, nogil=True, parallel=True)
def _backward(dW, dout, idx, accumulate, nblocks):
    # dW (V, E) = or +=, dout (N, E), idx (N, K); block b of the columns belongs to one thread
    E = dW.shape[1]
    if not accumulate:
        dW[:, :] = 0
    for b in prange(nblocks):
        lo, hi = E * b // nblocks, E * (b + 1) // nblocks
        for i in range(idx.shape[0]):
            for k in range(idx.shape[1]):
                v = idx[i, k]
                for j in range(lo, hi):
                    dW[v, j] += dout[i, j]


def _run_backward(idx, dout, dW, accumulate):
    use_library_threads()
    _backward(dW, dout, idx, accumulate, max(1, min(numba.get_num_threads(), dW.shape[1])))
    return dW


def embedding_forward(idx, W, out):
    # idx (...) int64, W (V, E), out (..., E)
    use_library_threads()
    _forward(out.reshape(idx.size, W.shape[1]), W, idx.reshape(-1, 1))  # not -1: E may be 0
    return out


def embedding_backward(idx, dout, dW, *, accumulate):
    # idx (...) int64, dout (..., E), dW (V, E)
    return _run_backward(idx.reshape(-1, 1), dout.reshape(idx.size, dW.shape[1]), dW, accumulate)


def embedding_bag_forward(idx, W, out):
    # idx (N, K) int64, W (V, E), out (N, E)
    if idx.shape[1] == 0:  # a sum of no rows (_forward reads idx[i, 0])
        out[...] = 0
        return out
    use_library_threads()
    _forward(out, W, idx)
    return out


def embedding_bag_backward(idx, dout, dW, *, accumulate):
    # idx (N, K) int64, dout (N, E), dW (V, E)
    return _run_backward(idx, dout, dW, accumulate)

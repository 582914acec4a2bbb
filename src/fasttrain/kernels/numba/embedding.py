"""Embedding lookup in Numba: the twin of csrc/embedding.c (see there for the formulas and why
the backward is split by columns). Matches fasttrain.kernels.ref.embedding."""
import numba
from numba import njit, prange

from fasttrain.kernels.numba._threads import use_library_threads


@njit(cache=True, nogil=True, parallel=True)
def _forward(out, W, idx):
    # out (N, E) =, W (V, E), idx (N,)
    for i in prange(idx.shape[0]):
        out[i, :] = W[idx[i], :]


@njit(cache=True, nogil=True, parallel=True)
def _backward(dW, dout, idx, accumulate, nblocks):
    # dW (V, E) = or +=, dout (N, E), idx (N,); block b of the columns belongs to one thread
    E = dW.shape[1]
    if not accumulate:
        dW[:, :] = 0
    for b in prange(nblocks):
        lo, hi = E * b // nblocks, E * (b + 1) // nblocks
        for i in range(idx.shape[0]):
            v = idx[i]
            for j in range(lo, hi):
                dW[v, j] += dout[i, j]


def embedding_forward(idx, W, out):
    # idx (...) int64, W (V, E), out (..., E)
    use_library_threads()
    _forward(out.reshape(-1, W.shape[1]), W, idx.reshape(-1))
    return out


def embedding_backward(idx, dout, dW, *, accumulate):
    # idx (...) int64, dout (..., E), dW (V, E)
    use_library_threads()
    _backward(dW, dout.reshape(-1, dW.shape[1]), idx.reshape(-1), accumulate,
              max(1, min(numba.get_num_threads(), dW.shape[1])))
    return dW

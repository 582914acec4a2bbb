"""Embedding lookup, the reference. Matches torch.nn.functional.embedding and
embedding_bag(mode="sum"), with their gradients:
    forward:      out[..., :] = W[idx[...], :]
    bag forward:  out[i, :] = sum over k of W[idx[i, k], :]
    backward:     dW[v, :] (= or +=) the sum of dout's rows at every index equal to v"""
import numpy as np


def embedding_forward(idx, W, out):
    # idx (...) int64, W (V, E), out (..., E)
    np.take(W, idx, axis=0, out=out)
    return out


def embedding_backward(idx, dout, dW, *, accumulate):
    # idx (...) int64, dout (..., E), dW (V, E)
    if not accumulate:
        dW[...] = 0
    np.add.at(dW, idx.reshape(-1), dout.reshape(idx.size, dW.shape[1]))  # not -1: E may be 0
    return dW


def embedding_bag_forward(idx, W, out):
    # idx (N, K) int64, W (V, E), out (N, E)
    out[...] = W[idx].sum(axis=1)
    return out


def embedding_bag_backward(idx, dout, dW, *, accumulate):
    # idx (N, K) int64, dout (N, E), dW (V, E): each of a bag's K indices gets the bag's dout
    K = idx.shape[1]
    return embedding_backward(idx, np.repeat(dout[:, None, :], K, axis=1), dW,
                              accumulate=accumulate)

"""The embedding kernels' public fronts (validation, then dispatch): plain lookups, and bags of K
rows summed. The mathematics is in ref/embedding.py (the spec), csrc/embedding.c and
numba/embedding.py."""
from __future__ import annotations

from fasttrain.kernels import _checks
from fasttrain.kernels._backends import implementation


def embedding_forward(idx, W, *, out=None, backend=None):
    """Rows of W picked by idx: ``out[..., :] = W[idx[...], :]``, as ``F.embedding(idx, W)``.

    Args:
        idx: integer array of any shape (...), every value in [0, V).
        W: (V, E) float32 or float64 (copied first if not C-contiguous).
        out: (..., E) buffer of W's dtype, C-contiguous, not overlapping W.
    Returns:
        out (or a new array), (..., E).
    """
    W, idx = _table_and_indices(W, idx, bag=False)
    out = _checks.output("out", out, idx.shape + W.shape[1:], W.dtype, {"W": W, "idx": idx})
    return implementation("embedding_forward", backend)(idx, W, out)


def embedding_backward(idx, dout, dW, *, accumulate=False, backend=None):
    """The gradient of an embedding: ``dW[v, :] = sum of dout[i, :] over every i with
    idx[i] == v`` (the autograd gradient of F.embedding), written into dW (=), or added to it
    with accumulate=True (+=, gradient accumulation).

    Args:
        idx: integer array of any shape (...), every value in [0, V).
        dout: (..., E) the gradient of the forward's output, float32 or float64.
        dW: (V, E) buffer of dout's dtype, C-contiguous, not overlapping dout.
    Returns:
        dW. Summation order is fixed (i ascending for every element): the same bits for any
        thread count.
    """
    accumulate = _checks.boolean("accumulate", accumulate)  # bool("no") would be True
    idx, dout, dW = _gradient_args(idx, dout, dW, bag=False)
    return implementation("embedding_backward", backend)(idx, dout, dW, accumulate=accumulate)


def embedding_bag_forward(idx, W, *, out=None, backend=None):
    """Sums of K rows of W: ``out[i, :] = sum over k of W[idx[i, k], :]``, as
    ``F.embedding_bag(idx, W, mode="sum")`` with idx (N, K).

    Args:
        idx: (N, K) integer array, every value in [0, V).
        W: (V, E) float32 or float64 (copied first if not C-contiguous).
        out: (N, E) buffer of W's dtype, C-contiguous, not overlapping W.
    Returns:
        out (or a new array), (N, E).
    """
    W, idx = _table_and_indices(W, idx, bag=True)
    out = _checks.output("out", out, (idx.shape[0], W.shape[1]), W.dtype, {"W": W, "idx": idx})
    return implementation("embedding_bag_forward", backend)(idx, W, out)


def embedding_bag_backward(idx, dout, dW, *, accumulate=False, backend=None):
    """The gradient of embedding_bag_forward: ``dW[v, :] = sum of dout[i, :] over every (i, k)
    with idx[i, k] == v``, written into dW (=), or added to it with accumulate=True (+=).

    Args:
        idx: (N, K) integer array, every value in [0, V).
        dout: (N, E) the gradient of the forward's output, float32 or float64.
        dW: (V, E) buffer of dout's dtype, C-contiguous, not overlapping dout.
    Returns:
        dW, summed in a fixed order (the same bits for any thread count).
    """
    accumulate = _checks.boolean("accumulate", accumulate)  # bool("no") would be True
    idx, dout, dW = _gradient_args(idx, dout, dW, bag=True)
    return implementation("embedding_bag_backward", backend)(idx, dout, dW, accumulate=accumulate)


def _indices(idx, V: int, bag: bool):
    idx = _checks.index_input("idx", idx)
    if bag and idx.ndim != 2:
        raise ValueError(f"idx must be 2-D (N, K) for a bag, got shape {idx.shape}")
    _checks.index_range("idx", idx, V)
    return idx


def _table_and_indices(W, idx, bag: bool):
    W = _checks.float_input("W", W, 2, "(V, E)")
    return W, _indices(idx, W.shape[0], bag)


def _gradient_args(idx, dout, dW, bag: bool):
    dW = _checks.ndarray("dW", dW)
    if dW.ndim != 2:
        raise ValueError(f"dW must be 2-D (V, E), got shape {dW.shape}")
    V, E = dW.shape
    idx = _indices(idx, V, bag)
    dout = _checks.float_input("dout", dout, None)
    want = (idx.shape[0], E) if bag else idx.shape + (E,)
    if dout.shape != want:
        raise ValueError(f"dout must have shape {want} "
                         f"({'(N, E)' if bag else 'idx.shape + (E,)'}), got {dout.shape}")
    _checks.output("dW", dW, (V, E), dout.dtype, {"dout": dout, "idx": idx})
    return idx, dout, dW

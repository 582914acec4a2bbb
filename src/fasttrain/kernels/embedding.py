"""embedding_forward / embedding_backward: the public front (validation, then dispatch).
The mathematics is in ref/embedding.py (the spec), csrc/embedding.c and numba/embedding.py."""
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
    W = _checks.float_input("W", W, 2, "(V, E)")
    V, E = W.shape
    idx = _checks.index_input("idx", idx)
    _checks.index_range("idx", idx, V)
    out = _checks.output("out", out, idx.shape + (E,), W.dtype, {"W": W, "idx": idx})
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
    dW = _checks.ndarray("dW", dW)
    if dW.ndim != 2:
        raise ValueError(f"dW must be 2-D (V, E), got shape {dW.shape}")
    V, E = dW.shape
    idx = _checks.index_input("idx", idx)
    _checks.index_range("idx", idx, V)
    dout = _checks.float_input("dout", dout, None)
    if dout.shape != idx.shape + (E,):
        raise ValueError(f"dout must have shape {idx.shape + (E,)} (idx.shape + (E,)), "
                         f"got {dout.shape}")
    _checks.output("dW", dW, (V, E), dout.dtype, {"dout": dout, "idx": idx})
    return implementation("embedding_backward", backend)(idx, dout, dW,
                                                         accumulate=bool(accumulate))

"""Linear layer + softmax cross-entropy, fused by chunks of rows, in Numba: the twin of
csrc/linear_crossentropy.c, call for call (see that file for the plan and the reasons). The
GEMMs are linear.py's calls of scipy's BLAS; the rows are crossentropy.py's _ce_row, run on the
calling thread between the GEMMs, as the C backend runs them. Matches
fasttrain.kernels.ref.linear_crossentropy.
"""
import numpy as np
from numba import njit

from fasttrain.kernels.numba import crossentropy as ce
from fasttrain.kernels.numba.crossentropy import _row
from fasttrain.kernels.numba.linear import _GEMM, _matmul


@njit(cache=True, nogil=True)
def _lce(gemm, losses, dx, dW, db, work, x, W, b, targets, grad_rows, ignore_index, eps, w,
         w_sum, zc, cap, plain, scale, accumulate):
    # losses (N,) =, dx (N, C) = or None, dW (V, C) = or +=, db (V,) = or += or None,
    # work (chunk_rows, V) scratch; x (N, C), W (V, C), b (V,) or None, targets (N,),
    # grad_rows (N,) or (0,) for none; eps ... plain: the row options (crossentropy.setup)
    N, C = x.shape
    V = W.shape[0]
    rows = work.shape[0]
    per_row = grad_rows.shape[0] > 0
    if not accumulate:
        if db is not None:
            db[:] = 0
        if N == 0 or C == 0:
            dW[:] = 0
    for i0 in range(0, N, rows):
        n = min(rows, N - i0)
        xc = x[i0:i0 + n]           # (n, C)
        wc = work[:n]               # (n, V): the chunk's logits, then their gradient
        if b is not None:
            for i in range(n):
                wc[i] = b
        elif C == 0:
            wc[:] = 0
        if C > 0:  # wc = xc W^T (+ wc); W^T of a C-ordered W is Fortran-ordered
            _matmul(gemm, wc, xc, False, W, True, n, C, V, 0.0 if b is None else 1.0)
        for i in range(n):
            f = grad_rows[i0 + i] if per_row else scale
            losses[i0 + i] = _row(wc[i], wc[i], targets[i0 + i], ignore_index, eps, w, w_sum,
                                  zc, cap, plain, f)
        if db is not None:  # rows added in order
            for i in range(n):
                for j in range(V):
                    db[j] += wc[i, j]
        if C == 0:
            continue
        if dx is not None:  # dx_c (n, C) = wc (n, V) W (V, C)
            _matmul(gemm, dx[i0:i0 + n], wc, False, W, False, n, V, C, 0.0)
        # dW (V, C) (+)= wc^T (V, n) xc (n, C); wc^T of a C-ordered wc is Fortran-ordered
        _matmul(gemm, dW, wc, True, xc, False, V, n, C,
                1.0 if accumulate or i0 > 0 else 0.0)


def linear_cross_entropy(x, W, b, targets, dx, dW, db, *, ignore_index, reduction,
                         label_smoothing, weight, lse_square_scale, softcap, grad_rows,
                         chunk_rows, accumulate):
    # x (N, C), W (V, C), b (V,) or None, targets (N,) int64: C-ordered inputs; weight (V,) or
    # None, grad_rows (N,) or None; dx (N, C) = or None; dW (V, C) = or +=; db (V,) = or += or None
    N = x.shape[0]
    V = W.shape[0]
    # scale and eps in x's dtype, as the C kernel's `real`: for V = 1 the gradient is then
    # scale - scale = 0 exactly, not a float64 remainder that dW multiplies by x (found by
    # tests/test_properties.py with |x| ~ 1e30)
    row_args, grad_rows, denom, scale = ce.setup(
        targets, V, x.dtype, ignore_index=ignore_index, reduction=reduction,
        label_smoothing=label_smoothing, weight=weight, lse_square_scale=lse_square_scale,
        softcap=softcap, grad_rows=grad_rows)
    work = np.empty((max(1, min(chunk_rows, N)), V), dtype=x.dtype)  # (chunk_rows, V)
    losses = np.empty(N, dtype=x.dtype)                                # (N,)
    _lce(_GEMM[x.dtype], losses, dx, dW, db, work, x, W, b, targets, grad_rows, ignore_index,
         *row_args, scale, accumulate)
    return ce.total(losses, reduction, denom), dx, dW, db

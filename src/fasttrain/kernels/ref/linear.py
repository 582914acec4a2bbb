"""Linear layer forward and backward, the reference. Matches torch.nn.functional.linear and its
autograd gradients.

    y  = x @ W.T + b          x (N, C), W (OC, C), b (OC,), y (N, OC)
    dx = dy @ W               dy (N, OC), dx (N, C)
    dW = dy.T @ x             (OC, C); += with accumulate
    db = dy.sum(axis=0)       (OC,);   += with accumulate
x, W and dy may be C- or Fortran-ordered; numpy's matmul reads either.
"""
import numpy as np

from fasttrain.threads import blas_loaded

blas_loaded()  # numpy's BLAS runs these GEMMs: give it the library's thread count


def linear_forward(x, W, b, out):
    # x (N, C), W (OC, C), b (OC,) or None, out (N, OC) =
    np.matmul(x, W.T, out=out)
    if b is not None:
        out += b
    return out


def linear_backward(x, W, dy, dx, dW, db, *, accumulate):
    # x (N, C), W (OC, C), dy (N, OC); dx (N, C) = or None; dW (OC, C), db (OC,) or None: = or +=
    if dx is not None:
        np.matmul(dy, W, out=dx)
    if accumulate:
        dW += dy.T @ x
        if db is not None:
            db += dy.sum(axis=0)
    else:
        np.matmul(dy.T, x, out=dW)
        if db is not None:
            np.sum(dy, axis=0, out=db)
    return dx, dW, db

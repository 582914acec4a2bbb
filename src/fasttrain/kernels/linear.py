"""linear_forward and linear_backward: the public fronts. They validate, allocate the outputs and
dispatch; the mathematics is in ref/linear.py (the spec), csrc/linear.c and numba/linear.py.

Shapes, as in torch.nn.Linear: x (N, C), W (OC, C), b (OC,), y and dy (N, OC).
"""
from __future__ import annotations

import numpy as np

from fasttrain.kernels import _checks
from fasttrain.kernels._backends import implementation

_X_DOC = "(N, C); reshape (B, T, C) to (B*T, C)"
_W_DOC = "(OC, C), as torch.nn.Linear stores it"


def linear_forward(x, W, b=None, *, out=None, backend=None):
    """y = x @ W.T + b, the forward of a linear layer: one GEMM, the bias added for free.

    Same meaning as ``torch.nn.functional.linear(x, W, b)``.

    Args:
        x: (N, C) float32 or float64.
        W: (OC, C) of x's dtype.
        b: (OC,) of x's dtype, or None for no bias.
        out: (N, OC) C-contiguous buffer of x's dtype to write y into (=); allocated if None.
        backend: "c", "numba" or "numpy"; None uses fasttrain.get_backend().

    x and W may be C-ordered or Fortran-ordered (a transposed view such as ``A.T``): the GEMM
    reads both as they are. Other layouts (strided views, big-endian, unaligned) are copied.

    Returns:
        y: ``out`` (or a new array), (N, OC).

    Raises:
        TypeError: an argument that is not an ndarray, a dtype other than float32/float64, or
            one that differs from x's.
        ValueError: wrong number of dimensions, shapes that do not match, a dimension beyond
            BLAS's 32-bit integer, out of the wrong shape or layout, read-only, or overlapping
            an input.
    """
    x = _checks.float_array("x", x, 2, _X_DOC)
    dtype = x.dtype if x.dtype.isnative else x.dtype.newbyteorder("=")
    W = _checks.float_array("W", W, 2, _W_DOC, dtype, "x")
    N, C = x.shape
    OC = W.shape[0]
    if W.shape[1] != C:
        raise ValueError(f"W must have shape (OC, C) = (OC, {C}) to match x {x.shape}, "
                         f"got {W.shape}")
    inputs = {"x": x, "W": W}
    if b is not None:
        b = _checks.float_array("b", b, 1, "(OC,)", dtype, "x")
        if b.shape != (OC,):
            raise ValueError(f"b must have shape (OC,) = ({OC},) to match W {W.shape}, "
                             f"got {b.shape}")
        inputs["b"] = b
    _checks.blas_sizes("linear_forward", N=N, C=C, OC=OC)
    out = _checks.output("out", out, (N, OC), dtype, inputs)
    x, W = _checks.gemm_operand(x), _checks.gemm_operand(W)
    if b is not None:
        b = _checks.gemm_operand(b)  # 1-D: contiguous, aligned, native, or copied
    return implementation("linear_forward", backend)(x, W, b, out)


def linear_backward(x, W, dy, *, dx=None, dW=None, db=None, accumulate=False, backend=None):
    """The gradients of y = x @ W.T + b, both GEMMs and the bias reduction in one call.

    Same values as the autograd gradients of ``torch.nn.functional.linear(x, W, b)`` for the
    upstream gradient dy:
        dx = dy @ W            (N, C)    always overwritten (=)
        dW = dy.T @ x          (OC, C)   = , or += with accumulate=True
        db = dy.sum(axis=0)    (OC,)     = , or += with accumulate=True

    Args:
        x: (N, C) float32 or float64, the layer's input saved by the forward.
        W: (OC, C) of x's dtype.
        dy: (N, OC) of x's dtype, the gradient of the loss with respect to y.
        dx, dW, db: C-contiguous buffers of x's dtype and the shapes above to write into;
            allocated when None. ``dx=False`` skips dx (a first layer, whose input needs no
            gradient); ``db=False`` skips db (a layer without bias). Skipped ones return None.
        accumulate: add dW and db into the given buffers (gradient accumulation over
            micro-batches) instead of overwriting them; both must then be given (or db=False).
            dx is overwritten either way.
        backend: "c", "numba" or "numpy"; None uses fasttrain.get_backend().

    x, W and dy may be C-ordered or Fortran-ordered (transposed views): the GEMMs read them as
    they are. Other layouts (strided views, big-endian, unaligned) are copied.

    Returns:
        (dx, dW, db): the buffers written (new arrays where None was given; None where skipped).

    Raises:
        TypeError: an argument that is not an ndarray (or False where allowed), a dtype other
            than float32/float64 or one that differs from x's, accumulate not a bool.
        ValueError: wrong number of dimensions, shapes that do not match, a dimension beyond
            BLAS's 32-bit integer, accumulate=True without dW or db to add into, an output of
            the wrong shape or layout, read-only, or overlapping an input or another output.
    """
    x = _checks.float_array("x", x, 2, _X_DOC)
    dtype = x.dtype if x.dtype.isnative else x.dtype.newbyteorder("=")
    W = _checks.float_array("W", W, 2, _W_DOC, dtype, "x")
    dy = _checks.float_array("dy", dy, 2, "(N, OC), the gradient of y", dtype, "x")
    N, C = x.shape
    OC = W.shape[0]
    if W.shape[1] != C:
        raise ValueError(f"W must have shape (OC, C) = (OC, {C}) to match x {x.shape}, "
                         f"got {W.shape}")
    if dy.shape != (N, OC):
        raise ValueError(f"dy must have shape (N, OC) = ({N}, {OC}) to match x {x.shape} and "
                         f"W {W.shape}, got {dy.shape}")
    if not isinstance(accumulate, (bool, np.bool_)):
        raise TypeError(f"accumulate must be a bool, got {type(accumulate).__name__}")
    accumulate = bool(accumulate)
    if accumulate and (dW is None or db is None):
        raise ValueError("accumulate=True adds into dW and db: pass both buffers "
                         "(or db=False for a layer without bias)")
    _checks.blas_sizes("linear_backward", N=N, C=C, OC=OC)
    taken = {"x": x, "W": W, "dy": dy}  # what an output may not overlap: inputs, other outputs
    if dx is not False:
        taken["dx"] = dx = _checks.output("dx", dx, (N, C), dtype, taken)
    taken["dW"] = dW = _checks.output("dW", dW, (OC, C), dtype, taken)
    if db is not False:
        db = _checks.output("db", db, (OC,), dtype, taken)
    x, W, dy = _checks.gemm_operand(x), _checks.gemm_operand(W), _checks.gemm_operand(dy)
    return implementation("linear_backward", backend)(
        x, W, dy, None if dx is False else dx, dW, None if db is False else db,
        accumulate=accumulate)

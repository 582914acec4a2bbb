"""linear_cross_entropy: the public front. It validates, allocates the outputs, sizes the chunks
and dispatches; the mathematics is in ref/linear_crossentropy.py (the spec),
csrc/linear_crossentropy.c and numba/linear_crossentropy.py.

Shapes: x (N, C), W (V, C) as torch.nn.Linear stores it, b (V,), targets (N,).
"""
from __future__ import annotations

import numpy as np

from fasttrain.kernels import _checks
from fasttrain.kernels._backends import implementation
from fasttrain.kernels.crossentropy import check_targets_and_options

# The default chunk: as many rows as fit CHUNK_BYTES of logits, but at least MIN_CHUNK_ROWS.
# Not L2-sized: each chunk's three GEMMs read all of W (V, C) and read and write dW, so a chunk
# of n rows does 2nCV flops per GEMM against ~4CV bytes of W and dW, and every chunk is three
# more BLAS calls, each a fork and join of its thread pool. A chunk that fits L2 (1 MiB: 5 rows
# at V = 50257) would be bound by memory and by those joins. Measured at (N, C, V) =
# (2048, 512, 8192), float32, 2 threads, shared machine, medians of 3 interleaved runs: chunks
# of 128 rows 9.7 s, 512 rows 5.6 s, one chunk of 2048 rows 2.7 s; at (2048, 768, 50257), 2
# runs: chunks of 667 rows 12.3 s, one chunk 6.75 s, unfused 7.45 s. So: chunks as tall as
# issue 9's memory bound allows (at most 1/8 of the logits at (N, V) = (8192, 50257): 192 MiB
# holds 1001 rows there), and of equal height, so that no short last chunk reads all of W for
# a few rows (N = 8192 then runs 9 chunks of 911 rows).
CHUNK_BYTES = 192 << 20
MIN_CHUNK_ROWS = 256


def default_chunk_rows(V: int, itemsize: int, N: int | None = None) -> int:
    """Rows per chunk for a vocabulary of V and `itemsize`-byte floats: at most
    max(MIN_CHUNK_ROWS, CHUNK_BYTES / row), and, given N, the N rows split into chunks of equal
    height (the last one at most one row shorter). It does not depend on the thread count."""
    rows = max(MIN_CHUNK_ROWS, CHUNK_BYTES // max(1, V * itemsize))
    if N:
        chunks = -(-N // rows)
        rows = -(-N // chunks)
    return rows


def linear_cross_entropy(x, W, targets, b=None, *, ignore_index=-100, reduction="mean",
                         label_smoothing=0.0, weight=None, lse_square_scale=0.0, softcap=None,
                         grad_rows=None, chunk_rows=None, dx=None, dW=None, db=None,
                         accumulate=False, backend=None):
    """A linear layer and the softmax cross-entropy after it, forward and backward in one call,
    chunk by chunk of rows: the (N, V) logits are never stored whole.

    Same values as ``linear_forward`` + ``softmax_cross_entropy`` + ``linear_backward``, and as
    ``torch.nn.functional.cross_entropy(F.linear(x, W, b), targets, weight=...,
    ignore_index=..., reduction=..., label_smoothing=...)`` with its autograd gradients (for
    reduction="none": the gradients of the sum of the row losses, or of
    sum_i grad_rows[i] * loss_i), plus the z-loss and the soft cap of softmax_cross_entropy
    (the cap applies to the logits x @ W.T + b):
        dx = dlogits @ W            (N, C)   always overwritten (=)
        dW = dlogits.T @ x          (V, C)   = , or += with accumulate=True
        db = dlogits.sum(axis=0)    (V,)     = , or += with accumulate=True

    Args:
        x: (N, C) float32 or float64, the head's input. Copied first if not C-contiguous.
        W: (V, C) of x's dtype. Copied first if not C-contiguous.
        targets: (N,) any integer dtype; each in [0, V) or equal to ignore_index.
        b: (V,) of x's dtype, or None for no bias (then db is None).
        ignore_index, reduction, label_smoothing: as in softmax_cross_entropy.
        weight, lse_square_scale, softcap, grad_rows: as in softmax_cross_entropy, of x's dtype:
            weight (V,) the class weights (not the layer's W), grad_rows (N,) only with
            reduction="none". The gradients are computed here, in the forward, so a caller
            whose upstream gradient differs per row (``loss.backward(g)`` in PyTorch) passes
            it as grad_rows; dx, dW and db are then those of sum_i grad_rows[i] * loss_i.
        chunk_rows: rows of logits computed at once (an int >= 1); None picks
            default_chunk_rows(V, itemsize, N). The extra memory is chunk_rows x V floats plus
            N row losses.
        dx, dW, db: C-contiguous buffers of x's dtype and the shapes above to write into;
            allocated when None. ``dx=False`` skips dx, ``db=False`` skips db; skipped ones
            return None.
        accumulate: add dW and db into the given buffers instead of overwriting them; both must
            then be given (db may be False, or None without a bias).
        backend: "c", "numba" or "numpy"; None uses fasttrain.get_backend(). The numpy
            reference stores the whole logits (it is the unfused definition).

    Returns:
        (loss, dx, dW, db): loss a Python float, or (N,) row losses for reduction="none"; the
        buffers written (new arrays where None was given; None where skipped).

    Raises:
        TypeError: an argument that is not an ndarray (or False where allowed), a dtype other
            than float32/float64 or one that differs from x's, targets not integer, accumulate
            not a bool, chunk_rows not an integer.
        ValueError: wrong number of dimensions, shapes that do not match, V = 0, a target out
            of range, an unknown reduction, the options refused as in softmax_cross_entropy
            (weight, lse_square_scale, softcap, grad_rows), label_smoothing outside [0, 1],
            chunk_rows < 1, a dimension beyond BLAS's 32-bit integer, accumulate=True without
            dW or db, db given without a bias, an output of the wrong shape or layout,
            read-only, or overlapping an input or another output.
    """
    # checked first, copied (if needed) last: a wrong size is refused before any copy is made
    x = _checks.float_array("x", x, 2, "(N, C); reshape (B, T, C) to (B*T, C)")
    dtype = x.dtype if x.dtype.isnative else x.dtype.newbyteorder("=")
    W = _checks.float_array("W", W, 2, "(V, C), as torch.nn.Linear stores it", dtype, "x")
    N, C = x.shape
    V = W.shape[0]
    if W.shape[1] != C:
        raise ValueError(f"W must have shape (V, C) = (V, {C}) to match x {x.shape}, "
                         f"got {W.shape}")
    if V == 0:
        raise ValueError(f"W must have at least one class (V >= 1), got shape {W.shape}")
    if b is not None:
        b = _checks.float_array("b", b, 1, "(V,)", dtype, "x")
        if b.shape != (V,):
            raise ValueError(f"b must have shape (V,) = ({V},) to match W {W.shape}, "
                             f"got {b.shape}")
    _checks.blas_sizes("linear_cross_entropy", N=N, C=C, V=V)
    targets, options = check_targets_and_options(
        targets, N, V, dtype, "x", ignore_index=ignore_index, reduction=reduction,
        label_smoothing=label_smoothing, weight=weight, lse_square_scale=lse_square_scale,
        softcap=softcap, grad_rows=grad_rows)
    if chunk_rows is None:
        chunk_rows = default_chunk_rows(V, dtype.itemsize, N)
    chunk_rows = _checks.integer("chunk_rows", chunk_rows)
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    accumulate = _checks.boolean("accumulate", accumulate)
    if b is None and db is not None and db is not False:
        raise ValueError("db was given but b is None: a layer without bias has no bias "
                         "gradient (leave db out)")
    if accumulate and (dW is None or (b is not None and db is None)):
        raise ValueError("accumulate=True adds into dW and db: pass both buffers "
                         "(or db=False to skip the bias gradient)")
    # the kernels read C-ordered, native inputs (the chunks are row blocks of x)
    x, W = (np.ascontiguousarray(a, dtype=dtype) for a in (x, W))
    inputs = {"x": x, "W": W, "targets": targets}
    for name in ("weight", "grad_rows"):  # outputs may not overlap them either
        if options[name] is not None:
            inputs[name] = options[name]
    if b is not None:
        inputs["b"] = b = np.ascontiguousarray(b, dtype=dtype)
    taken = dict(inputs)  # what an output may not overlap: inputs, other outputs
    if dx is not False:
        taken["dx"] = dx = _checks.output("dx", dx, (N, C), dtype, taken)
    taken["dW"] = dW = _checks.output("dW", dW, (V, C), dtype, taken)
    if b is not None and db is not False:
        db = _checks.output("db", db, (V,), dtype, taken)
    else:
        db = None
    return implementation("linear_cross_entropy", backend)(
        x, W, b, targets, None if dx is False else dx, dW, db, chunk_rows=chunk_rows,
        accumulate=accumulate, **options)

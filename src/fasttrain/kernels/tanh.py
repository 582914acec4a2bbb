"""tanh_forward / tanh_backward: the public fronts. The mathematics is in ref/tanh.py (the spec),
csrc/tanh.c and numba/tanh.py; validation and dispatch in _elementwise.py."""
from fasttrain.kernels import _elementwise


def tanh_forward(x, *, out=None, backend=None):
    """y = tanh(x) elementwise, as ``torch.tanh(x)``.

    x: any shape, float32 or float64 (copied first if not C-contiguous). out: a buffer of x's
    shape and dtype, or x itself (in place). Returns out (or a new array).
    """
    return _elementwise.forward("tanh_forward", x, out, backend)


def tanh_backward(y, dy, *, out=None, backend=None):
    """dx = dy * (1 - y**2): the gradient through tanh from its output y, as torch's autograd.

    y: the forward's output; dy: the gradient of that output, same shape and dtype. out: a
    buffer like them, or dy itself (in place). Returns out (or a new array).
    """
    return _elementwise.backward("tanh_backward", "y", y, dy, out, backend)

"""gelu_forward / gelu_backward: the public fronts. The mathematics is in ref/gelu.py (the spec),
csrc/gelu.c and numba/gelu.py; validation and dispatch in _elementwise.py."""
from fasttrain.kernels import _elementwise


def gelu_forward(x, *, out=None, backend=None):
    """y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x**3))) elementwise: GELU in the tanh form
    GPT-2 uses, as ``torch.nn.functional.gelu(x, approximate="tanh")``.

    x: any shape, float32 or float64 (copied first if not C-contiguous). out: a buffer of x's
    shape and dtype, or x itself (in place). Returns out (or a new array).
    """
    return _elementwise.forward("gelu_forward", x, out, backend)


def gelu_backward(x, dy, *, out=None, backend=None):
    """dx = dy * gelu'(x): the gradient through GELU (tanh form) from its input x, as torch's
    autograd.

    x: the forward's input; dy: the gradient of its output, same shape and dtype. out: a
    buffer like them, or dy itself (in place). Returns out (or a new array).
    """
    return _elementwise.backward("gelu_backward", "x", x, dy, out, backend)

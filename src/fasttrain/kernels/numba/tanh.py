"""tanh in Numba: the twin of csrc/tanh.c. Matches fasttrain.kernels.ref.tanh."""
import math

from numba import njit, prange

from fasttrain.kernels.numba._slow import slower_than_numpy
from fasttrain.kernels.numba._threads import use_library_threads


@njit(cache=True, nogil=True, parallel=True)
def _forward(y, x):
    for i in prange(x.shape[0]):
        y[i] = math.tanh(x[i])


@njit(cache=True, nogil=True, parallel=True)
def _backward(dx, y, dy):
    for i in prange(y.shape[0]):
        dx[i] = dy[i] * (1 - y[i] * y[i])


@slower_than_numpy(
    "Numba vectorises math.tanh only through Intel's SVML, which this install lacks (`numba -s`: "
    "SVML State False), so every element is a scalar libm tanhf call, while numpy's tanh is "
    "vectorised; the C backend (csrc/vmath.h's inline tanh) is the fast one.")
def tanh_forward(x, out):
    """0.15x numpy at 1024x512 float32 (14.7 ms against 2.43, `fasttrain bench --kernels
    elementwise --quick`, 2026-11-30). The C twin computes tanh with its own inline polynomial
    (csrc/vmath.h) and is 2.7x numpy; a Numba copy of that polynomial and of its exp would be a
    second implementation of vmath.h to keep. Use the C backend for speed; this twin checks the
    C one."""
    use_library_threads()
    _forward(out.reshape(-1), x.reshape(-1))
    return out


def tanh_backward(y, dy, out):
    use_library_threads()
    _backward(out.reshape(-1), y.reshape(-1), dy.reshape(-1))
    return out

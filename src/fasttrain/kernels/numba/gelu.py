"""GELU (tanh form) in Numba: the twin of csrc/gelu.c, in its sigmoid form (formulas and why
there). Matches fasttrain.kernels.ref.gelu."""
import math

from numba import njit, prange

from fasttrain.kernels.numba._threads import use_library_threads

SCALE = math.sqrt(2.0 / math.pi)
CUBE = 0.044715


@njit(cache=True, nogil=True, parallel=True)
def _forward(y, x):
    for i in prange(x.shape[0]):
        xi = x[i]
        s = 1 / (1 + math.exp(-2 * SCALE * (xi + CUBE * xi * xi * xi)))
        y[i] = xi * s


@njit(cache=True, nogil=True, parallel=True)
def _backward(dx, x, dy):
    for i in prange(x.shape[0]):
        xi = x[i]
        s = 1 / (1 + math.exp(-2 * SCALE * (xi + CUBE * xi * xi * xi)))
        du = SCALE * (1 + 3 * CUBE * xi * xi)
        dx[i] = dy[i] * (s + 2 * xi * s * (1 - s) * du)


def gelu_forward(x, out):
    use_library_threads()
    _forward(out.reshape(-1), x.reshape(-1))
    return out


def gelu_backward(x, dy, out):
    use_library_threads()
    _backward(out.reshape(-1), x.reshape(-1), dy.reshape(-1))
    return out

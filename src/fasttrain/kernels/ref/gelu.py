"""GELU in its tanh form, the reference. Matches torch.nn.functional.gelu(x, approximate="tanh")
and its autograd gradient:
    u = sqrt(2/pi) (x + 0.044715 x^3)
    forward:  y = 0.5 x (1 + tanh(u)) = x s,          s = 1 / (1 + exp(-2u))
    backward: dx = dy * (s + 2 x s (1 - s) du/dx),    du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
Written with s, the same function, because 1 + tanh(u) cancels as tanh(u) -> -1: in float32 it
leaves no correct digits once x < -4."""
import math

import numpy as np

SCALE = math.sqrt(2.0 / math.pi)
CUBE = 0.044715


def _s(x):
    return 1 / (1 + np.exp(-2 * SCALE * (x + CUBE * x ** 3)))


# exp(+large) = inf gives s = 0, the right limit; -inf * 0 = NaN as in torch: no warnings
@np.errstate(over="ignore", invalid="ignore")
def gelu_forward(x, out):
    out[...] = x * _s(x)
    return out


@np.errstate(over="ignore", invalid="ignore")
def gelu_backward(x, dy, out):
    s = _s(x)
    du = SCALE * (1 + 3 * CUBE * x * x)
    out[...] = dy * (s + 2 * x * s * (1 - s) * du)
    return out

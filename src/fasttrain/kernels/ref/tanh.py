"""tanh, the reference. Matches torch.tanh and its autograd gradient:
    forward:  y = tanh(x)
    backward: dx = dy * (1 - y^2), from the forward's output y"""
import numpy as np


def tanh_forward(x, out):
    return np.tanh(x, out=out)


def tanh_backward(y, dy, out):
    out[...] = dy * (1 - y * y)  # dy may be out: computed before it is written
    return out

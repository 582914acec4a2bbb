# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""C backend of gelu_forward / gelu_backward (csrc/gelu.c). Arrays arrive validated by
fasttrain.kernels.gelu; elementwise.pxd does the rest."""
from fasttrain.threads import get_num_threads

from csrc cimport (ft_gelu_backward_f32, ft_gelu_backward_f64, ft_gelu_forward_f32,
                   ft_gelu_forward_f64)
from elementwise cimport binary, unary


def gelu_forward(x, out):
    # x (...), out (...) may be x
    return unary("gelu_forward", ft_gelu_forward_f32, ft_gelu_forward_f64, out, x,
                 get_num_threads())


def gelu_backward(x, dy, out):
    # x (...) the forward's input, dy (...), out (...) may be dy
    return binary("gelu_backward", ft_gelu_backward_f32, ft_gelu_backward_f64, out, x, dy,
                  get_num_threads())

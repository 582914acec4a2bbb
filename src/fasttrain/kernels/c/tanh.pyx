# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""C backend of tanh_forward / tanh_backward (csrc/tanh.c). Arrays arrive validated by
fasttrain.kernels.tanh; elementwise.pxd does the rest."""
from fasttrain.threads import get_num_threads

from csrc cimport (ft_tanh_backward_f32, ft_tanh_backward_f64, ft_tanh_forward_f32,
                   ft_tanh_forward_f64)
from elementwise cimport binary, unary


def tanh_forward(x, out):
    # x (...), out (...) may be x
    return unary("tanh_forward", ft_tanh_forward_f32, ft_tanh_forward_f64, out, x,
                 get_num_threads())


def tanh_backward(y, dy, out):
    # y (...) the forward's output, dy (...), out (...) may be dy
    return binary("tanh_backward", ft_tanh_backward_f32, ft_tanh_backward_f64, out, y, dy,
                  get_num_threads())

"""The numpy reference backend ("numpy"): the living spec of every kernel.

Obvious code over whole arrays, float64-capable; the other backends are tested against it and
it is tested against finite differences. Functions take validated arguments (see
fasttrain.kernels) and write their results into the given output buffers.
"""
from fasttrain.kernels.ref.crossentropy import softmax_cross_entropy
from fasttrain.kernels.ref.linear import linear_backward, linear_forward

__all__ = ["softmax_cross_entropy"]
__all__ += ["linear_forward", "linear_backward"]

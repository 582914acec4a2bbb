"""The numpy reference backend ("numpy"): the living spec of every kernel.

Obvious code over whole arrays, float64-capable; the other backends are tested against it and
it is tested against finite differences. Functions take validated arguments (see
fasttrain.kernels) and write their results into the given output buffers.
"""
from fasttrain.kernels.ref.crossentropy import softmax_cross_entropy
from fasttrain.kernels.ref.adamw import adamw_step, sgd_step, sum_of_squares

__all__ = ["softmax_cross_entropy", "adamw_step", "sgd_step", "sum_of_squares"]

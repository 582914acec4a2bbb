"""The C backend ("c", the default): csrc/ kernels wrapped by Cython, the GIL released.

Each function takes validated arguments (see fasttrain.kernels), checks again only what memory
safety needs, and calls the C kernel with fasttrain's thread count.
"""
from fasttrain.kernels.c.crossentropy import softmax_cross_entropy
from fasttrain.kernels.c.adamw import adamw_step, sgd_step, sum_of_squares

__all__ = ["softmax_cross_entropy", "adamw_step", "sgd_step", "sum_of_squares"]

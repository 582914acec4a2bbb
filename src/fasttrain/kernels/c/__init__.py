"""The C backend ("c", the default): csrc/ kernels wrapped by Cython, the GIL released.

Each function takes validated arguments (see fasttrain.kernels), checks again only what memory
safety needs, and calls the C kernel with fasttrain's thread count.
"""
from fasttrain.threads import loading_native_libraries, shorten_libgomp_spin

with loading_native_libraries():  # libgomp and scipy's OpenBLAS load here (threads.py: why)
    from fasttrain.kernels.c.adamw import adamw_step, sgd_step, sum_of_squares
    from fasttrain.kernels.c.attention import attention_backward, attention_forward
    from fasttrain.kernels.c.crossentropy import softmax_cross_entropy
    from fasttrain.kernels.c.embedding import (
        embedding_backward,
        embedding_bag_backward,
        embedding_bag_forward,
        embedding_forward,
    )
    from fasttrain.kernels.c.gelu import gelu_backward, gelu_forward
    from fasttrain.kernels.c.layernorm import layernorm_backward, layernorm_forward
    from fasttrain.kernels.c.linear import linear_backward, linear_forward
    from fasttrain.kernels.c.linear_crossentropy import linear_cross_entropy
    from fasttrain.kernels.c.tanh import tanh_backward, tanh_forward
    from fasttrain.kernels.c.runtime import park_team
shorten_libgomp_spin(park_team)  # a libgomp loaded before us (torch's): threads.py

__all__ = [
    "adamw_step",
    "attention_backward",
    "attention_forward",
    "embedding_backward",
    "embedding_bag_backward",
    "embedding_bag_forward",
    "embedding_forward",
    "gelu_backward",
    "gelu_forward",
    "layernorm_backward",
    "layernorm_forward",
    "linear_backward",
    "linear_forward",
    "linear_cross_entropy",
    "sgd_step",
    "softmax_cross_entropy",
    "sum_of_squares",
    "tanh_backward",
    "tanh_forward",
]

"""The Numba backend ("numba"): twins of the C kernels, compiled on first use and cached.

Needs the optional dependency: pip install 'fasttrain[numba]'.
"""
try:
    import numba  # noqa: F401
except ModuleNotFoundError as e:
    raise ImportError("numba is not installed (pip install 'fasttrain[numba]')") from e

from fasttrain.threads import loading_native_libraries

with loading_native_libraries():  # scipy's OpenBLAS may load here (threads.py: why)
    from fasttrain.kernels.numba.adamw import adamw_step, sgd_step, sum_of_squares
    from fasttrain.kernels.numba.attention import attention_backward, attention_forward
    from fasttrain.kernels.numba.crossentropy import softmax_cross_entropy
    from fasttrain.kernels.numba.embedding import (
        embedding_backward,
        embedding_bag_backward,
        embedding_bag_forward,
        embedding_forward,
    )
    from fasttrain.kernels.numba.gelu import gelu_backward, gelu_forward
    from fasttrain.kernels.numba.layernorm import layernorm_backward, layernorm_forward
    from fasttrain.kernels.numba.linear import linear_backward, linear_forward
    from fasttrain.kernels.numba.linear_crossentropy import linear_cross_entropy
    from fasttrain.kernels.numba.tanh import tanh_backward, tanh_forward

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

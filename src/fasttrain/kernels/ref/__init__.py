"""The numpy reference backend ("numpy"): the living spec of every kernel.

Obvious code over whole arrays, float64-capable; the other backends are tested against it and
it is tested against finite differences. Functions take validated arguments (see
fasttrain.kernels) and write their results into the given output buffers.
"""
from fasttrain.kernels.ref.adamw import adamw_step, sgd_step, sum_of_squares
from fasttrain.kernels.ref.attention import attention_backward, attention_forward
from fasttrain.kernels.ref.crossentropy import softmax_cross_entropy
from fasttrain.kernels.ref.embedding import (
    embedding_backward,
    embedding_bag_backward,
    embedding_bag_forward,
    embedding_forward,
)
from fasttrain.kernels.ref.gelu import gelu_backward, gelu_forward
from fasttrain.kernels.ref.layernorm import layernorm_backward, layernorm_forward
from fasttrain.kernels.ref.linear import linear_backward, linear_forward
from fasttrain.kernels.ref.linear_crossentropy import linear_cross_entropy
from fasttrain.kernels.ref.tanh import tanh_backward, tanh_forward

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

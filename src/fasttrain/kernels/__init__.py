"""fasttrain's kernels: fused, callable on numpy arrays, each in three interchangeable backends.

Each public kernel here validates its arguments (see _checks.py for the rules), then runs on the
backend chosen in _backends.py, the one place where that choice is made.

Shape letters: N rows (N = B*T tokens), V vocabulary, C input channels, OC output channels;
attention: B sequences of T tokens, n_head heads of hs = C / n_head channels.
"""
from fasttrain.kernels._backends import (
    BACKENDS,
    BackendUnavailableError,
    available_backends,
    backend_status,
    get_backend,
    set_backend,
)
from fasttrain.kernels.adamw import (
    adamw_step,
    clip_coef,
    clip_grad_norm,
    sgd_step,
    sum_of_squares,
)
from fasttrain.kernels.attention import attention_backward, attention_forward
from fasttrain.kernels.crossentropy import softmax_cross_entropy
from fasttrain.kernels.embedding import (
    embedding_backward,
    embedding_bag_backward,
    embedding_bag_forward,
    embedding_forward,
)
from fasttrain.kernels.gelu import gelu_backward, gelu_forward
from fasttrain.kernels.layernorm import layernorm_backward, layernorm_forward
from fasttrain.kernels.linear import linear_backward, linear_forward
from fasttrain.kernels.linear_crossentropy import linear_cross_entropy
from fasttrain.kernels.tanh import tanh_backward, tanh_forward

# The kernels every backend module exports, under these names (tests/test_backends.py checks).
KERNELS = (
    "softmax_cross_entropy",
    "linear_forward",
    "linear_backward",
    "linear_cross_entropy",
    "embedding_forward",
    "embedding_backward",
    "embedding_bag_forward",
    "embedding_bag_backward",
    "tanh_forward",
    "tanh_backward",
    "gelu_forward",
    "gelu_backward",
    "layernorm_forward",
    "layernorm_backward",
    "attention_forward",
    "attention_backward",
    "adamw_step",
    "sgd_step",
    "sum_of_squares",
)

__all__ = [
    "BACKENDS",
    "KERNELS",
    "BackendUnavailableError",
    "available_backends",
    "backend_status",
    "get_backend",
    "set_backend",
    *KERNELS,
    "clip_coef",       # helpers over sum_of_squares (adamw.py)
    "clip_grad_norm",
]

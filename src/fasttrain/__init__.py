"""fasttrain: train language models from random weights on a CPU, with fused native kernels.

    import fasttrain
    loss, dlogits = fasttrain.softmax_cross_entropy(logits, targets)   # logits (N, V) float32
    y = fasttrain.linear_forward(x, W, b)                  # x (N, C), W (OC, C): x @ W.T + b
    dx, dW, db = fasttrain.linear_backward(x, W, dy)       # dy (N, OC)

Kernels and backend choice live in fasttrain.kernels; the thread count in fasttrain.threads;
the parameter arena in fasttrain.arena and its optimizers (AdamW, SGD) in fasttrain.optim.
"""
from importlib.metadata import PackageNotFoundError, version

from fasttrain import kernels
from fasttrain.kernels import (
    available_backends,
    get_backend,
    linear_backward,
    linear_cross_entropy,
    linear_forward,
    set_backend,
    softmax_cross_entropy,
)
from fasttrain.kernels import adamw_step, clip_coef, clip_grad_norm, sgd_step, sum_of_squares
from fasttrain.arena import Arena
from fasttrain.optim import SGD, AdamW
from fasttrain.threads import get_num_threads, set_num_threads

try:
    __version__ = version("fasttrain")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "AdamW",
    "Arena",
    "SGD",
    "available_backends",
    "get_backend",
    "get_num_threads",
    "kernels",
    "linear_backward",
    "linear_forward",
    "linear_cross_entropy",
    "set_backend",
    "set_num_threads",
    "softmax_cross_entropy",
    "adamw_step",
    "clip_coef",
    "clip_grad_norm",
    "sgd_step",
    "sum_of_squares",
]

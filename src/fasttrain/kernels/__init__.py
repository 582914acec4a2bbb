"""fasttrain's kernels: fused, callable on numpy arrays, each in three interchangeable backends.

Each public kernel here validates its arguments (see _checks.py for the rules), then runs on the
backend chosen in _backends.py, the one place where that choice is made.

Shape letters: N rows (N = B*T tokens), V vocabulary, C input channels, OC output channels.
"""
from fasttrain.kernels._backends import (
    BACKENDS,
    BackendUnavailableError,
    available_backends,
    backend_status,
    get_backend,
    set_backend,
)
from fasttrain.kernels.crossentropy import softmax_cross_entropy
from fasttrain.kernels.adamw import (
    adamw_step,
    clip_coef,
    clip_grad_norm,
    sgd_step,
    sum_of_squares,
)

# The kernels every backend module exports, under these names (tests/test_backends.py checks).
KERNELS = ("softmax_cross_entropy", "adamw_step", "sgd_step", "sum_of_squares")

__all__ = [
    "BACKENDS",
    "KERNELS",
    "BackendUnavailableError",
    "available_backends",
    "backend_status",
    "get_backend",
    "set_backend",
    "softmax_cross_entropy",
    "adamw_step",
    "clip_coef",
    "clip_grad_norm",
    "sgd_step",
    "sum_of_squares",
]

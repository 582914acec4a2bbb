"""The Numba backend ("numba"): twins of the C kernels, compiled on first use and cached.

Needs the optional dependency: pip install 'fasttrain[numba]'.
"""
try:
    import numba  # noqa: F401
except ModuleNotFoundError as e:
    raise ImportError("numba is not installed (pip install 'fasttrain[numba]')") from e

from fasttrain.kernels.numba.crossentropy import softmax_cross_entropy
from fasttrain.kernels.numba.adamw import adamw_step, sgd_step, sum_of_squares

__all__ = ["softmax_cross_entropy", "adamw_step", "sgd_step", "sum_of_squares"]

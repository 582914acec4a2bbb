"""The Numba backend ("numba"): twins of the C kernels, compiled on first use and cached.

Needs the optional dependency: pip install 'fasttrain[numba]'.
"""
try:
    import numba  # noqa: F401
except ModuleNotFoundError as e:
    raise ImportError("numba is not installed (pip install 'fasttrain[numba]')") from e

from fasttrain.kernels.numba.crossentropy import softmax_cross_entropy
from fasttrain.kernels.numba.linear import linear_backward, linear_forward

__all__ = ["softmax_cross_entropy"]
__all__ += ["linear_forward", "linear_backward"]

"""Module forms of fasttrain.torch's functions, where PyTorch users expect them."""
from __future__ import annotations

import torch

from fasttrain.torch import functional as F


class LayerNorm(torch.nn.LayerNorm):
    """torch.nn.LayerNorm (same arguments, parameters and state_dict) whose forward runs
    fasttrain's kernel. normalized_shape must be the last axis only, (C,)."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device=None, dtype=None):
        super().__init__(normalized_shape, eps, elementwise_affine, bias, device, dtype)
        if len(self.normalized_shape) != 1:
            raise NotImplementedError(f"normalized_shape={self.normalized_shape} is not "
                                      "supported by fasttrain.torch yet: only the last axis, (C,)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


class GELU(torch.nn.GELU):
    """torch.nn.GELU(approximate="tanh") on fasttrain's kernel (the default here is "tanh",
    the only form supported; "none" raises NotImplementedError)."""

    def __init__(self, approximate: str = "tanh"):
        if approximate != "tanh":
            raise NotImplementedError(f"approximate={approximate!r} is not supported by "
                                      "fasttrain.torch yet: only the tanh form")
        super().__init__(approximate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x, self.approximate)


class LinearCrossEntropyLoss(torch.nn.Module):
    """The head and the loss in one: forward(x, weight, target, bias=None) is
    fasttrain.torch.linear_cross_entropy(x, weight, target, bias, ...) with this module's
    ignore_index, reduction ("mean" or "sum") and label_smoothing. x (..., C), weight (V, C)."""

    def __init__(self, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0):
        super().__init__()
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.label_smoothing = label_smoothing

    def forward(self, x, weight, target, bias=None):
        return F.linear_cross_entropy(x, weight, target, bias, ignore_index=self.ignore_index,
                                      reduction=self.reduction,
                                      label_smoothing=self.label_smoothing)

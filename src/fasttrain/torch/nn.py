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


class CrossEntropyLoss(torch.nn.CrossEntropyLoss):
    """torch.nn.CrossEntropyLoss (same arguments, class weight buffer and state_dict) on
    fasttrain's fused kernel, plus lse_square_scale (the z-loss) and softcap, as in
    fasttrain.torch.cross_entropy. Logits (N, V) and targets (N,) only."""

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean", label_smoothing: float = 0.0, *,
                 lse_square_scale: float = 0.0, softcap: float | None = None):
        super().__init__(weight, size_average, ignore_index, reduce, reduction, label_smoothing)
        self.lse_square_scale = lse_square_scale
        self.softcap = softcap

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing,
                               lse_square_scale=self.lse_square_scale, softcap=self.softcap)


class LinearCrossEntropyLoss(torch.nn.Module):
    """The head and the loss in one: forward(x, weight, target, bias=None) is
    fasttrain.torch.linear_cross_entropy(x, weight, target, bias, ...) with this module's
    options (ignore_index, reduction "mean" / "sum" / "none", label_smoothing, ce_weight the
    (V,) class weights, lse_square_scale, softcap). x (..., C), weight (V, C)."""

    def __init__(self, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0, ce_weight: torch.Tensor | None = None,
                 lse_square_scale: float = 0.0, softcap: float | None = None):
        super().__init__()
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.label_smoothing = label_smoothing
        self.register_buffer("ce_weight", ce_weight)
        self.lse_square_scale = lse_square_scale
        self.softcap = softcap

    def forward(self, x, weight, target, bias=None):
        return F.linear_cross_entropy(x, weight, target, bias, ignore_index=self.ignore_index,
                                      reduction=self.reduction,
                                      label_smoothing=self.label_smoothing,
                                      ce_weight=self.ce_weight,
                                      lse_square_scale=self.lse_square_scale,
                                      softcap=self.softcap)

"""patch(model): fasttrain's kernels swapped into a nanoGPT-style PyTorch model, in place.

What it swaps, each only where the model has it:
  - every torch.nn.LayerNorm over one axis -> fasttrain.torch.nn.LayerNorm (the same module
    object and Parameters, its class changed: an optimizer made before still holds them);
  - every torch.nn.GELU(approximate="tanh") -> fasttrain.torch.nn.GELU, likewise;
  - blocks laid out as nanoGPT's and fasttrain.models.torch_gpt's (ln_1, attn.c_attn,
    attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj, n_head): their forward becomes the same pre-LN
    block on attention(qkv, n_head) (no split, transpose or copy of q, k, v) and the tanh GELU;
  - a model laid out as TorchGPT (wte, wpe, h, ln_f; forward(x, y) -> mean loss, head tied to
    wte): its forward computes the loss with linear_cross_entropy, never the (N, V) logits.

The recipe for another model is the last point by hand: take the final hidden state h
(B, T, C) instead of the logits, and return
fasttrain.torch.linear_cross_entropy(h, lm_head.weight, targets).
"""
from __future__ import annotations

import types

import torch

from fasttrain.torch import functional as F
from fasttrain.torch import nn


def patch(model: torch.nn.Module, *, layers: bool = True, loss: bool = True) -> torch.nn.Module:
    """Swap fasttrain's kernels into `model` in place (see the module docstring); returns it.
    layers=False keeps PyTorch's LayerNorm, GELU and blocks; loss=False keeps the forward."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"patch expects a torch.nn.Module, got {type(model).__name__}")
    for module in model.modules() if layers else ():
        if type(module) is torch.nn.LayerNorm and len(module.normalized_shape) == 1:
            module.__class__ = nn.LayerNorm
        elif type(module) is torch.nn.GELU and module.approximate == "tanh":
            module.__class__ = nn.GELU
        elif _is_block(module):
            module.forward = types.MethodType(_block_forward, module)
    if loss and all(hasattr(model, a) for a in ("wte", "wpe", "h", "ln_f")):
        model.forward = types.MethodType(_gpt_forward, model)
    return model


def _is_block(m) -> bool:
    attn, mlp = getattr(m, "attn", None), getattr(m, "mlp", None)
    return (isinstance(getattr(m, "n_head", None), int) and hasattr(m, "ln_1")
            and hasattr(m, "ln_2") and hasattr(attn, "c_attn") and hasattr(attn, "c_proj")
            and hasattr(mlp, "c_fc") and hasattr(mlp, "c_proj"))


def _block_forward(self, x: torch.Tensor) -> torch.Tensor:
    # x (B, T, C); the attention reads c_attn's (B, T, 3C) output as it is
    y = F.attention(self.attn.c_attn(self.ln_1(x)), self.n_head, is_causal=True)  # (B, T, C)
    x = x + self.attn.c_proj(y)
    return x + self.mlp.c_proj(F.gelu(self.mlp.c_fc(self.ln_2(x))))


def _gpt_forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # x, y (B, T) tokens and their next tokens -> the mean cross-entropy
    h = self.wte(x) + self.wpe(torch.arange(x.shape[1]))  # (B, T, C)
    for block in self.h:
        h = block(h)
    return F.linear_cross_entropy(self.ln_f(h), self.wte.weight, y)

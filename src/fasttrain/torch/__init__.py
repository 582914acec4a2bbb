"""fasttrain from PyTorch: the fused kernels as autograd operators, their modules, and AdamW and
SGD that update a whole model in one fused pass. Needs torch (fasttrain itself never imports it).

    import fasttrain.torch as ft                    # before torch where you can: see below
    loss = ft.linear_cross_entropy(h, model.wte.weight, y)   # h (N, C): no (N, V) logits
    opt = ft.AdamW(model.parameters(), lr=3e-4)     # torch.optim.AdamW's defaults and state_dict

Functions (fasttrain/torch/functional.py): cross_entropy, linear_cross_entropy, layer_norm, gelu,
scaled_dot_product_attention, attention (qkv packed). Modules (fasttrain.torch.nn): LayerNorm,
GELU, CrossEntropyLoss, LinearCrossEntropyLoss. Optimizers (fasttrain/torch/optim.py): AdamW,
SGD. patch(model) swaps them into a nanoGPT-style model (fasttrain/torch/patch.py).

Import order: importing this module loads fasttrain's C backend (its OpenMP runtime and BLAS)
before it imports torch. torch puts its own libgomp in the process's global symbols, and a C
backend loaded after it would bind to that runtime, without the thread-pool settings of
fasttrain/threads.py (a third of a training step lost to spinning threads). If torch is already
imported, everything still works, only slower on some machines.
"""
import importlib.util

if importlib.util.find_spec("torch") is None:
    raise ImportError("fasttrain.torch needs PyTorch, which is not installed: pip install torch")

from fasttrain.kernels._backends import BackendUnavailableError, load  # noqa: E402

try:
    load("c")  # before torch (see above)
except BackendUnavailableError:
    pass  # the kernels use another backend; `fasttrain info` says why

from fasttrain.torch import nn  # noqa: E402
from fasttrain.torch.functional import (  # noqa: E402
    attention,
    cross_entropy,
    gelu,
    layer_norm,
    linear_cross_entropy,
    scaled_dot_product_attention,
)
from fasttrain.torch.optim import SGD, AdamW  # noqa: E402
from fasttrain.torch.patch import patch  # noqa: E402

__all__ = [
    "AdamW",
    "SGD",
    "attention",
    "cross_entropy",
    "gelu",
    "layer_norm",
    "linear_cross_entropy",
    "nn",
    "patch",
    "scaled_dot_product_attention",
]

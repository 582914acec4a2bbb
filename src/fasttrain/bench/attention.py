"""Causal multi-head self-attention, forward + backward (fasttrain.kernels.attention_*,
csrc/attention.c), float32, on qkv (B, T, 3C) as one linear layer makes it.

Contenders: fasttrain's backends (out, lse and dqkv preallocated); "torch" is
F.scaled_dot_product_attention(q, k, v, is_causal=True) and its autograd backward (PyTorch's CPU
flash kernel); "torch formula" the formula as nanoGPT writes it without flash (q k^T * scale,
masked_fill, softmax, @ v), which stores (B, n_head, T, T) matrices. Both torch variants start
from a qkv leaf and end in the (B, T, C) output, as a model uses them. The numpy reference and
the Numba twin (plain: a (T, T) matrix per head) take seconds per call at long contexts: numba
runs up to T = 128, numpy up to T = 1024.

Roofline: FLOPs, as FlashAttention's papers count them: the causal forward's two products
(S = Q K^T, P V) 2 * 2 * B * nh * T^2 * hs / 2, the backward's five 2.5 times that; against the
float32 GEMM rate. `--memory` reports the extra peak memory of each contender.
"""
import numpy as np

from fasttrain.bench._case import Case, rng

ORDER = 57
ALIASES = ("attention_forward", "attention_backward", "scaled_dot_product_attention", "sdpa")
# (B, n_head, T, hs): a small GPT's batch, GPT-2 small's heads at its context, one long sequence
SHAPES = [(16, 4, 128, 64), (4, 12, 1024, 64), (1, 12, 4096, 64)]
QUICK = SHAPES[:1]
TINY = [(2, 2, 16, 8)]
NUMBA_MAX_T, NUMPY_MAX_T = 128, 1024  # past these one call of the plain backends takes seconds


def label(shape):
    B, nh, T, hs = shape
    return f"B{B} H{nh} T{T} hs{hs}"


def parse_shape(text):
    """"16x4x128x64" or "B16 H4 T128 hs64" -> (B, n_head, T, hs)."""
    import re

    numbers = [int(n) for n in re.findall(r"\d+", text)]
    if len(numbers) != 4 or min(numbers) < 1:
        raise ValueError(f"an attention shape is B x n_head x T x hs, e.g. 16x4x128x64; "
                         f"got {text!r}")
    return tuple(numbers)


def flops(B: int, nh: int, T: int, hs: int, causal: bool = True) -> int:
    """Forward + backward FLOPs as counted here (see the module's docstring)."""
    forward = 2 * 2 * B * nh * T * T * hs // (2 if causal else 1)
    return forward * 7 // 2


def cases(shapes, torch_names):
    from fasttrain import kernels as K

    def case(B, nh, T, hs):
        C = nh * hs

        def setup(names):
            r = rng()
            qkv = r.standard_normal((B, T, 3 * C), dtype=np.float32)  # (B, T, 3C)
            dout = r.standard_normal((B, T, C), dtype=np.float32)     # (B, T, C)
            calls = {}
            for name in names:
                if name.startswith("torch"):
                    import torch

                    F = torch.nn.functional
                    x, g = torch.from_numpy(qkv).requires_grad_(), torch.from_numpy(dout)
                    mask = torch.ones(T, T, dtype=torch.bool).tril()

                    def call(x=x, g=g, mask=mask, flash=name == "torch"):
                        x.grad = None
                        q, k, v = (t.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
                                   for t in x.split(C, dim=2))
                        if flash:
                            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                        else:
                            att = (q @ k.transpose(-2, -1)) * (1.0 / hs ** 0.5)  # (B, nh, T, T)
                            y = att.masked_fill(~mask, float("-inf")).softmax(dim=-1) @ v
                        y.transpose(1, 2).contiguous().view(B, T, C).backward(g)
                else:
                    out, dqkv = np.empty_like(dout), np.empty_like(qkv)
                    lse = np.empty((B, nh, T), np.float32)  # (B, nh, T)

                    def call(name=name, out=out, lse=lse, dqkv=dqkv):
                        K.attention_forward(qkv, nh, out=out, lse=lse, backend=name)
                        K.attention_backward(qkv, out, lse, dout, nh, dqkv=dqkv, backend=name)
                calls[name] = call
            return calls
        names = ["c", *(["numba"] if T <= NUMBA_MAX_T else []),
                 *(["numpy"] if T <= NUMPY_MAX_T else []),
                 *(["torch", "torch formula"] if torch_names else [])]
        return Case("attention", "causal fwd+bwd", label((B, nh, T, hs)), names, setup,
                    flops=flops(B, nh, T, hs))
    return [case(*shape) for shape in shapes]

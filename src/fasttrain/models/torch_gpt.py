"""The GPT in PyTorch eager (nanoGPT's model, without dropout), weight for weight the same as
fasttrain.models.GPT: the oracle the tests compare against, and the peer the benchmarks time.
Parameter names are the arena's. Needs torch (not a dependency of fasttrain)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    def __init__(self, C: int, n_head: int, eps: float, dtype):
        super().__init__()
        self.n_head = n_head
        self.ln_1 = nn.LayerNorm(C, eps=eps, dtype=dtype)
        self.attn = nn.Module()
        self.attn.c_attn = nn.Linear(C, 3 * C, dtype=dtype)
        self.attn.c_proj = nn.Linear(C, C, dtype=dtype)
        self.ln_2 = nn.LayerNorm(C, eps=eps, dtype=dtype)
        self.mlp = nn.Module()
        self.mlp.c_fc = nn.Linear(C, 4 * C, dtype=dtype)
        self.mlp.c_proj = nn.Linear(4 * C, C, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.attn.c_attn(self.ln_1(x)).split(C, dim=2)        # (B, T, C) each
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)      # (B, nh, T, hs)
        x = x + self.attn.c_proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.mlp.c_proj(F.gelu(self.mlp.c_fc(self.ln_2(x)), approximate="tanh"))


class TorchGPT(nn.Module):
    def __init__(self, vocab_size: int, block_size: int, n_layer: int, n_head: int, n_embd: int,
                 eps: float = 1e-5, dtype=torch.float32):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd, dtype=dtype)
        self.wpe = nn.Embedding(block_size, n_embd, dtype=dtype)
        self.h = nn.ModuleList(Block(n_embd, n_head, eps, dtype) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, eps=eps, dtype=dtype)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, V) for tokens x (B, T); the head is wte (tied)."""
        h = self.wte(x) + self.wpe(torch.arange(x.shape[1]))
        for block in self.h:
            h = block(h)
        return F.linear(self.ln_f(h), self.wte.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The mean cross-entropy over the targets y (B, T)."""
        logits = self.logits(x)
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), y.reshape(-1))

    @classmethod
    def like(cls, model, dtype=None) -> "TorchGPT":
        """A copy of a fasttrain GPT: same shapes, same weights (and its dtype by default)."""
        dtype = dtype or {np.dtype(np.float64): torch.float64}.get(model.dtype, torch.float32)
        t = cls(model.V, model.block_size, model.L, model.n_head, model.C, model.eps, dtype)
        a = model.arena
        with torch.no_grad():
            for name, p in t.named_parameters():
                p.copy_(torch.from_numpy(np.asarray(a[name])))
        return t

    def param_groups(self, weight_decay: float) -> list[dict]:
        """nanoGPT's two groups: matrices and embeddings decayed, biases and LN not."""
        params = list(self.parameters())
        return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
                {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]

    def grads(self) -> dict[str, np.ndarray]:
        """Each parameter's gradient as numpy, named as in the fasttrain arena."""
        return {name: p.grad.detach().numpy() for name, p in self.named_parameters()}

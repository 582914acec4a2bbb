"""The MLP language model in PyTorch eager, weight for weight the same as fasttrain.models.MLP:
the oracle the tests compare a training step against, and the peer the benchmarks time.
Needs torch (not a dependency of fasttrain)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class TorchMLP(nn.Module):
    def __init__(self, vocab_size: int, context: int, n_embd: int, hidden: int,
                 activation: str = "tanh", dtype=torch.float32):
        super().__init__()
        self.T, self.E, self.activation = context, n_embd, activation
        self.wte = nn.Embedding(vocab_size, n_embd, dtype=dtype)
        self.fc = nn.Linear(context * n_embd, hidden, dtype=dtype)
        self.head = nn.Linear(hidden, vocab_size, dtype=dtype)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        e = self.wte(x).view(len(x), self.T * self.E)          # (B, T*E)
        pre = self.fc(e)                                       # (B, H)
        h = torch.tanh(pre) if self.activation == "tanh" else F.gelu(pre, approximate="tanh")
        return F.cross_entropy(self.head(h), y)                # mean over B

    @classmethod
    def like(cls, model, dtype=torch.float32) -> "TorchMLP":
        """A copy of a fasttrain MLP: same shapes, same weights."""
        t = cls(model.V, model.T, model.E, model.H, model.activation, dtype=dtype)
        a = model.arena
        with torch.no_grad():
            for name, p in t.named_parameters():
                p.copy_(torch.from_numpy(np.asarray(a[name])))
        return t

    def grads(self) -> dict[str, np.ndarray]:
        """Each parameter's gradient as numpy, named as in the fasttrain arena."""
        return {name: p.grad.detach().numpy() for name, p in self.named_parameters()}


def torch_train_step(model: TorchMLP, opt, x: torch.Tensor, y: torch.Tensor,
                     grad_clip: float) -> float:
    """The PyTorch eager equivalent of fasttrain.train.train_step for one micro-batch:
    forward, loss, backward, clip_grad_norm_, optimizer step, zero_grad. Returns the loss."""
    loss = model(x, y)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()

"""One training step of the default model (fasttrain train's defaults: byte-level MLP, context
8, n_embd 64, hidden 512, batch 1024), float32, 2 threads: forward, fused cross-entropy,
backward, gradient norm and clipping, AdamW. torch is the same model in PyTorch eager
(fasttrain.models.torch_mlp) with torch.optim.AdamW as users get it by default and
clip_grad_norm_. extra_info: tokens/s (predicted tokens per second: batch / step time).

Run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (see BENCHMARKING.md):
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE pytest benchmarks/bench_train_step.py
"""
import numpy as np
import pytest

from fasttrain.config import TrainConfig
from fasttrain.models import MLP
from fasttrain.optim import AdamW
from fasttrain.train import train_step
from conftest import available, record, rng

CFG = TrainConfig()


def make_step(backend):
    r = rng()
    x = r.integers(0, 256, size=(CFG.batch_size, CFG.context))  # (B, T)
    y = r.integers(0, 256, size=CFG.batch_size)                  # (B,)
    model = MLP(vocab_size=256, context=CFG.context, n_embd=CFG.n_embd, hidden=CFG.hidden,
                activation=CFG.activation, backend=None if backend == "torch" else backend)
    model.init(CFG.seed)
    if backend == "torch":
        import torch

        from fasttrain.models.torch_mlp import TorchMLP, torch_train_step

        tm = TorchMLP.like(model)
        opt = torch.optim.AdamW(tm.parameters(), lr=CFG.min_lr, betas=(CFG.beta1, CFG.beta2),
                                weight_decay=CFG.weight_decay)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        return lambda: torch_train_step(tm, opt, xt, yt, CFG.grad_clip)
    opt = AdamW(model.arena, lr=CFG.min_lr, betas=(CFG.beta1, CFG.beta2),
                weight_decay=CFG.weight_decay, backend=backend)
    return lambda: train_step(model, opt, [(x, y)], CFG.min_lr, CFG.grad_clip)


@pytest.mark.parametrize("backend", [available(b) for b in ("c", "numba", "numpy", "torch")])
def test_train_step(benchmark, settle, backend):
    step = settle(make_step(backend))
    benchmark.group = "train step, default MLP"
    benchmark(step)
    record(benchmark, tokens_per_step=CFG.batch_size)
    if getattr(benchmark, "stats", None) is not None:
        benchmark.extra_info["tokens_per_s"] = round(CFG.batch_size / benchmark.stats.stats.median)

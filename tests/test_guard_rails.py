"""Numerical guard rails: a NaN or Inf gradient or loss never reaches the parameters. train_step
leaves the parameters, the optimizer's state and its step count untouched; the loop with
on_nonfinite="skip" skips exactly that step (and with "stop" stops naming it, in
test_train.py)."""
import math

import numpy as np
import pytest

from fasttrain.config import TrainConfig
from fasttrain.data import Batches, builtin_corpus
from fasttrain.models import MLP
from fasttrain.optim import SGD, AdamW
from fasttrain.train import train, train_step


def model_and_batches(optimizer):
    model = MLP(vocab_size=256, context=4, n_embd=8, hidden=16, activation="tanh", backend="c")
    model.init(0)
    opt_cls = AdamW if optimizer == "adamw" else SGD
    opt = opt_cls(model.arena, lr=1e-2, weight_decay=0.1)
    tokens = np.frombuffer(builtin_corpus()[:4000].encode(), np.uint8).astype(np.uint16)
    return model, opt, Batches(tokens, 4, 32, seed=1)


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
@pytest.mark.parametrize("poison", ["nan-grad", "inf-grad", "nan-loss", "inf-loss"])
def test_a_nonfinite_step_leaves_parameters_and_state_untouched(optimizer, poison, monkeypatch):
    model, opt, batches = model_and_batches(optimizer)
    train_step(model, opt, [batches.next()], 1e-2, 1.0)  # a real step first: m, v not zero
    before = model.arena.params.copy(), {k: v.copy() for k, v in opt.state_arrays().items()}
    steps = opt.step_count
    original = MLP.forward_backward

    def poisoned(self, x, y):
        loss = original(self, x, y)
        bad = float("nan") if poison.startswith("nan") else float("inf")
        if poison.endswith("grad"):
            self.arena.grads[len(self.arena.grads) // 2] = bad
            return loss
        return bad

    monkeypatch.setattr(MLP, "forward_backward", poisoned)
    loss, norm = train_step(model, opt, [batches.next()], 1e-2, 1.0)
    assert not (math.isfinite(loss) and math.isfinite(norm))
    assert np.array_equal(model.arena.params, before[0]), "parameters changed"
    for k, v in opt.state_arrays().items():
        assert np.array_equal(v, before[1][k]), f"optimizer state {k} changed"
    assert opt.step_count == steps
    assert np.isfinite(model.arena.params).all()


def test_skip_mode_skips_exactly_the_poisoned_step(tmp_path, monkeypatch):
    corpus = tmp_path / "text.txt"
    corpus.write_text(builtin_corpus()[:30_000])
    cfg = dict(data=str(corpus), context=4, n_embd=8, hidden=16, batch_size=32, steps=6,
               warmup=1, eval_interval=100, checkpoint_interval=100, on_nonfinite="skip")
    seen = []
    original = MLP.forward_backward

    def poisoned(self, x, y):
        loss = original(self, x, y)
        seen.append(self.arena.params.copy())
        if len(seen) == 4:
            self.arena.grads[0] = np.nan
        return loss

    monkeypatch.setattr(MLP, "forward_backward", poisoned)
    summary = train(TrainConfig(**cfg, out_dir=str(tmp_path / "run")), progress=False)
    assert summary["skipped_steps"] == 1
    # the parameters the 5th step started from are those the 4th (skipped) step started from
    assert np.array_equal(seen[4], seen[3])
    assert not np.array_equal(seen[3], seen[2])  # the steps around it did move them
    assert all(np.isfinite(p).all() for p in seen)

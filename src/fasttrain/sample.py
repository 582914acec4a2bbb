"""Using a trained run: load it, sample text from it, measure its loss on a text.

Sampling: the model reads the last `context` tokens and gives logits; temperature T divides
them before the softmax (T -> 0 approaches greedy; T = 0 exactly takes the argmax), top-k keeps
only the k largest; the next token is drawn from a seeded generator, so the same call gives the
same text.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from fasttrain import checkpoint
from fasttrain.config import TrainConfig
from fasttrain.data import Corpus, DataError, load_text


def load_run(run_dir):
    """(config, model with the checkpoint's weights, tokenizer) of a run directory."""
    from fasttrain.models import MLP
    from fasttrain.train import CHECKPOINT

    run = Path(run_dir)
    if not (run / CHECKPOINT).exists():
        raise checkpoint.CheckpointError(f"{run}: no checkpoint ({CHECKPOINT}) in this folder")
    cfg = TrainConfig.from_dict(json.loads((run / "config.json").read_text()), str(run))
    corpus = Corpus.open(run)
    model = MLP(vocab_size=corpus.tokenizer.vocab_size, context=cfg.context, n_embd=cfg.n_embd,
                hidden=cfg.hidden, activation=cfg.activation, backend=cfg.backend,
                fused_head=cfg.fused_head)
    arrays, meta = checkpoint.load(run / CHECKPOINT)
    if meta.get("layout") != model.arena.layout():
        raise checkpoint.CheckpointError(f"{run / CHECKPOINT}: written for another model")
    model.arena.params[...] = arrays["params"]
    return cfg, model, corpus.tokenizer


def next_token_distribution(logits: np.ndarray, temperature: float,
                            top_k: int | None) -> np.ndarray:
    """Probabilities (V,) from logits (V,) at a temperature, keeping the top_k largest."""
    z = logits.astype(np.float64)
    if top_k is not None and top_k < len(z):
        kth = np.partition(z, -top_k)[-top_k]
        z = np.where(z >= kth, z, -np.inf)
    if temperature == 0:
        p = np.zeros_like(z)
        p[int(np.argmax(z))] = 1.0
        return p
    z = z / temperature
    z -= z.max()
    p = np.exp(z)
    return p / p.sum()


def generate(model, tokenizer, prompt: str, n_tokens: int, *, temperature: float = 1.0,
             top_k: int | None = None, seed: int = 0) -> str:
    """The prompt followed by n_tokens sampled tokens, decoded."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    rng = np.random.default_rng(seed)
    tokens = list(tokenizer.encode(prompt)) if prompt else []
    # a prompt shorter than the context is padded on the left with newlines, as text starts
    pad = list(tokenizer.encode("\n")) or [0]
    generated = []
    for _ in range(n_tokens):
        window = (pad * model.T + tokens)[-model.T:]
        logits = model.forward(np.array([window], dtype=np.int64))[0]
        p = next_token_distribution(logits, temperature, top_k)
        token = int(rng.choice(len(p), p=p))
        tokens.append(token)
        generated.append(token)
    return prompt + tokenizer.decode(generated)


def evaluate_text(run_dir, source: str | None = None) -> dict:
    """Loss and perplexity of a run's model on its validation split, or on a text."""
    from fasttrain.train import evaluate

    cfg, model, tokenizer = load_run(run_dir)
    if source is None:
        tokens = Corpus.open(run_dir).val
    else:
        tokens = tokenizer.encode(load_text(source))
        if len(tokens) < cfg.context + 1:
            raise DataError(f"{source}: {len(tokens)} tokens, fewer than context + 1 = "
                            f"{cfg.context + 1}")
    loss = evaluate(model, np.asarray(tokens), cfg.context, cfg.batch_size)
    return {"loss": loss, "perplexity": math.exp(loss), "tokens": int(len(tokens)),
            "source": source or "validation split"}


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

from fasttrain import checkpoint, distributed
from fasttrain.checkpoint import CHECKPOINT, kept_checkpoint, kept_steps
from fasttrain.config import TrainConfig
from fasttrain.data import IGNORE_INDEX, Corpus, DataError, all_windows, load_text


# mixed into the sample generator's seed so that its stream is not the one of any other use of
# `seed` (the initial weights, the batches), even where their seeds coincide
SAMPLE_STREAM = 0x5A3B1E


def sample_seed(seed: int, step: int) -> list[int]:
    """The seed of the sample at `step` of a run seeded with `seed` (numpy's SeedSequence
    entropy: a list of non-negative ints)."""
    return [SAMPLE_STREAM, seed, step]


def training_sample(model, tokenizer, cfg: TrainConfig, step: int) -> str:
    """The sample an evaluation at `step` writes: cfg.sample_prompt followed by
    cfg.sample_tokens tokens at cfg.sample_temperature."""
    return generate(model, tokenizer, cfg.sample_prompt, cfg.sample_tokens,
                    temperature=cfg.sample_temperature, seed=sample_seed(cfg.seed, step))


def run_checkpoint(run_dir, step: int | None = None) -> Path:
    """The checkpoint of a run: the last one, or the one of `step` (an evaluation's, kept by
    keep_checkpoints, or the last one if it is at that step)."""
    run = Path(run_dir)
    if not (run / CHECKPOINT).exists():
        raise checkpoint.CheckpointError(f"{run}: no checkpoint ({CHECKPOINT}) in this folder")
    if step is None:
        return run / CHECKPOINT
    if (run / kept_checkpoint(step)).exists():
        return run / kept_checkpoint(step)
    _, meta = checkpoint.load(run / CHECKPOINT)
    if meta["step"] == step:
        return run / CHECKPOINT
    kept = kept_steps(run)
    have = (f"kept steps: {', '.join(map(str, kept))}" if kept else
            "train with --keep_checkpoints to keep every evaluation's checkpoint")
    raise checkpoint.CheckpointError(f"{run}: no checkpoint of step {step} (the last is step "
                                     f"{meta['step']}; {have})")


def load_run(run_dir, step: int | None = None):
    """(config, model with the checkpoint's weights, tokenizer) of a run directory; the last
    checkpoint, or the one of `step` (see run_checkpoint)."""
    from fasttrain.models import from_config

    run = Path(run_dir)
    path = run_checkpoint(run, step)
    cfg = TrainConfig.from_dict(json.loads((run / "config.json").read_text()), str(run))
    corpus = Corpus.open(run)
    model = from_config(cfg, corpus.tokenizer.vocab_size)
    arrays, meta = checkpoint.load(path)
    if meta.get("layout") != model.arena.layout():
        raise checkpoint.CheckpointError(f"{path}: written for another model")
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
             top_k: int | None = None, seed: int | list[int] = 0) -> str:
    """The prompt followed by n_tokens sampled tokens, decoded. `seed` seeds the generator
    (numpy.random.default_rng), which is used for nothing else."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    rng = np.random.default_rng(seed)
    decoder, logits = read_prompt(model, tokenizer, prompt)
    generated = []
    for i in range(n_tokens):
        p = next_token_distribution(logits, temperature, top_k)
        token = int(rng.choice(len(p), p=p))
        generated.append(token)
        if i + 1 < n_tokens:
            logits = decoder.feed([token])
    return prompt + tokenizer.decode(generated)


def read_prompt(model, tokenizer, prompt: str):
    """(the model's decoder after reading the prompt, the (V,) logits of the token after it).
    Text starts after a newline: the MLP pads a short prompt on the left with newlines, and an
    empty prompt is a newline to both models."""
    pad = list(tokenizer.encode("\n")) or [0]
    decoder = model.decoder(pad[0])
    tokens = list(tokenizer.encode(prompt)) if prompt else []
    return decoder, decoder.feed(tokens or pad)


def evaluate(model, tokens: np.ndarray, context: int, batch_size: int,
             world=distributed.SOLO) -> float:
    """Mean loss over every window of `tokens` (the whole validation split, in order; each
    rank takes every world.size-th batch of it): the evaluation of `fasttrain train` and
    `fasttrain eval`."""
    total, count = 0.0, 0
    for x, y in world.share(all_windows(tokens, context, batch_size, model.sequence)):
        n = int(np.count_nonzero(y != IGNORE_INDEX))  # targets (the GPT's last window: fewer)
        total += model.loss(x, y) * n
        count += n
    total, count = world.sum(total, count)
    return total / count


def evaluate_text(run_dir, source: str | None = None) -> dict:
    """Loss and perplexity of a run's model on its validation split, or on a text."""
    cfg, model, tokenizer = load_run(run_dir)
    if source is None:
        tokens = Corpus.open(run_dir).val
    else:
        tokens = tokenizer.encode(load_text(source))
        if len(tokens) < cfg.window + 1:
            raise DataError(f"{source}: {len(tokens)} tokens, fewer than the window + 1 = "
                            f"{cfg.window + 1}")
    loss = evaluate(model, np.asarray(tokens), cfg.window, cfg.batch_size // cfg.grad_accum)
    return {"loss": loss, "perplexity": math.exp(loss), "tokens": int(len(tokens)),
            "source": source or "validation split"}


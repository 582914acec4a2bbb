"""Temperature, seen on a trained model: the next-token distribution after a prompt at several
temperatures. Sampling divides the logits by T before the softmax (fasttrain.sample): T < 1
sharpens the distribution towards the likeliest token, T > 1 flattens it towards uniform. The
entropy H = -sum p log p (nats) measures how spread it is; e^H is the number of equally likely
tokens that would be as uncertain."""
from __future__ import annotations

import math

import numpy as np


def distributions(run_dir, prompt: str, temperatures, top: int = 5) -> dict:
    """{"prompt", "temperatures": [{"t", "entropy", "top": [(token text, p), ...]}]}."""
    from fasttrain.sample import load_run, next_token_distribution, read_prompt

    temperatures = [float(t) for t in temperatures]
    if not temperatures:
        raise ValueError("give at least one temperature")
    for t in temperatures:
        if not (math.isfinite(t) and t > 0):
            raise ValueError(f"temperatures must be finite and > 0, got {t}")
    if top < 1:
        raise ValueError(f"top must be >= 1, got {top}")
    _, model, tokenizer = load_run(run_dir)
    _, logits = read_prompt(model, tokenizer, prompt)               # (V,), as sample reads it
    out = []
    for t in temperatures:
        p = next_token_distribution(logits, t, None)                 # (V,) float64
        nz = p[p > 0]
        entropy = float(-(nz * np.log(nz)).sum())
        best = np.argsort(-p, kind="stable")[:top]
        out.append({"t": t, "entropy": entropy,
                    "top": [(tokenizer.decode([int(i)]), float(p[i])) for i in best]})
    return {"prompt": prompt, "vocab_size": len(logits), "temperatures": out}


def format_distributions(r: dict) -> str:
    lines = [f"next token after {r['prompt']!r} (vocabulary {r['vocab_size']}; uniform would be "
             f"entropy {math.log(r['vocab_size']):.2f} nats)"]
    for d in r["temperatures"]:
        top = "  ".join(f"{tok!r} {p:.3f}" for tok, p in d["top"])
        lines.append(f"T = {d['t']:<5g} entropy {d['entropy']:.2f} nats "
                     f"(like {math.exp(d['entropy']):5.1f} equally likely tokens) | {top}")
    return "\n".join(lines)

"""What training costs: compute, the compute-optimal amount of data, wall time and money.

    training FLOPs  C = 6 · N · D        N parameters, D training tokens (Kaplan et al. 2020,
                                         section 2.1: 2N per token forward, 4N backward)
    compute-optimal D ≈ 20 · N           Hoffmann et al. 2022 ("Chinchilla"): 70e9 parameters
                                         on 1.4e12 tokens
    wall time       C / (FLOP/s)         at a throughput actually reached, not a peak
    cost            hours · price per hour

The throughput, unless given, is the one a fasttrain run reached on this machine: its median
training tokens/s (metrics.jsonl) times 6 times its parameter count, i.e. the same 6N
accounting, so the estimate says "at the speed fasttrain trains here". Without a run, a float32
GEMM is timed for a moment and its rate used: an upper bound, since a training step also spends
time outside matrix products (the README's default step reaches about a fifth of it).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

FLOPS_PER_PARAM_TOKEN = 6
CHINCHILLA_TOKENS_PER_PARAM = 20

# Landmark runs, (parameters, training tokens, source), that report.html sets a run's compute
# beside, counted as 6ND like everything here: GPT-3 175B on 300e9 tokens (Brown et al. 2020;
# their table D.1 gives 3.14e23 FLOPs) and Chinchilla, 70e9 parameters on 1.4e12 tokens
# (Hoffmann et al. 2022, trained on Gopher's budget of 5.76e23).
LANDMARKS = {
    "GPT-3": (175e9, 300e9, "Brown et al. 2020"),
    "Chinchilla": (70e9, 1.4e12, "Hoffmann et al. 2022"),
}


def training_flops(params: float, tokens: float) -> float:
    return FLOPS_PER_PARAM_TOKEN * params * tokens


def compute_optimal_tokens(params: float) -> float:
    return CHINCHILLA_TOKENS_PER_PARAM * params


def throughput_from_run(run_dir) -> tuple[float, str]:
    """(FLOP/s, how it was obtained) from a run's metrics and checkpointed model."""
    from statistics import median

    from fasttrain.sample import load_run

    run = Path(run_dir)
    metrics = run / "metrics.jsonl"
    if not metrics.exists():
        raise ValueError(f"{run}: no metrics.jsonl (train a run first, or pass --flops-per-second)")
    rates = [r["tokens_per_s"] for r in map(json.loads, metrics.read_text().splitlines())
             if r.get("split") == "train"]
    if not rates:
        raise ValueError(f"{metrics}: no training steps recorded")
    _, model, _ = load_run(run)
    tok_s = median(rates)
    flops = FLOPS_PER_PARAM_TOKEN * model.num_params * tok_s
    return flops, (f"{run}: median {tok_s / 1e3:.1f}k tokens/s x 6 x {model.num_params:,} "
                   f"parameters")


def measured_gemm_throughput(n: int = 512, seconds: float = 0.3) -> tuple[float, str]:
    """(FLOP/s, how) of fasttrain.linear_forward on (n, n) float32 matrices, best of a short run."""
    import numpy as np

    from fasttrain.kernels import linear_forward

    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, n), dtype=np.float32)
    W = rng.standard_normal((n, n), dtype=np.float32)
    y = np.empty((n, n), dtype=np.float32)
    linear_forward(x, W, out=y)  # untimed: loads BLAS, wakes its threads
    best, end = math.inf, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        linear_forward(x, W, out=y)
        best = min(best, time.perf_counter() - t0)
    rate = 2.0 * n ** 3 / best
    return rate, f"a float32 GEMM {n}x{n}x{n} timed now; a peak, training reaches a fraction of it"


def estimate(params: float, tokens: float, flops_per_second: float,
             price_per_hour: float | None = None) -> dict:
    for name, value in (("params", params), ("tokens", tokens),
                        ("flops_per_second", flops_per_second)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be finite and > 0, got {value}")
    if price_per_hour is not None and not (math.isfinite(price_per_hour) and price_per_hour >= 0):
        raise ValueError(f"price_per_hour must be finite and >= 0, got {price_per_hour}")
    flops = training_flops(params, tokens)
    seconds = flops / flops_per_second
    optimal = compute_optimal_tokens(params)
    return {"params": params, "tokens": tokens, "flops": flops, "optimal_tokens": optimal,
            "tokens_per_param": tokens / params, "optimal_flops": training_flops(params, optimal),
            "flops_per_second": flops_per_second, "seconds": seconds,
            "cost": None if price_per_hour is None else seconds / 3600 * price_per_hour,
            "price_per_hour": price_per_hour}


def duration(seconds: float) -> str:
    """A duration in the largest unit that reads well."""
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("hours", 3600),
                       ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:,.3g} {unit}"
    return f"{seconds:.3g} seconds"


def format_estimate(e: dict, source: str) -> str:
    lines = [
        f"model:       {e['params']:.4g} parameters, trained on {e['tokens']:.4g} tokens "
        f"({e['tokens_per_param']:.3g} tokens per parameter)",
        f"compute:     6 x N x D = {e['flops']:.3g} FLOPs",
        f"optimal:     about 20 tokens per parameter (Chinchilla): {e['optimal_tokens']:.3g} "
        f"tokens, {e['optimal_flops']:.3g} FLOPs",
        f"throughput:  {e['flops_per_second']:.3g} FLOP/s ({source})",
        f"wall time:   {duration(e['seconds'])}",
    ]
    if e["cost"] is not None:
        cost = f"{e['cost']:,.2f}" if e["cost"] < 1e6 else f"{e['cost']:.3g}"
        lines.append(f"cost:        ${cost} at ${e['price_per_hour']:g} per hour")
    else:
        lines.append("cost:        pass --price-per-hour P for the cost")
    return "\n".join(lines)

"""`fasttrain bench --profile`: where one GPT training step's time goes, kernel by kernel.

Times every kernel call of a step (fasttrain.train.train_step on the GPT of gpt_step's shape,
with fasttrain train's optimizer settings): each function of fasttrain.kernels.KERNELS is
wrapped where the step looks it up (the GPT calls `K.name(...)` on fasttrain.kernels; train.py
and optim.py hold their own names sum_of_squares and adamw_step) and restored afterwards. A
kernel called from inside another kernel counts as its caller's time. After `warmup` untimed
steps (buffers, first touch), `steps` steps are timed whole and per call; "other" is the step
less its kernels: Python, numpy glue (the residual adds, zeroing the gradients), the clip.

GEMM kernels also get their GFLOP/s and share of the GEMM probe (fasttrain.limits.gemm_flops):
linear_forward 2*N*C*OC, linear_backward 2*N*C*OC for dx and as much for dW,
linear_cross_entropy 2*N*C*V for the logits, for dx and for dW; and attention its causal matmul
FLOPs (forward q k^T and att @ v: 2*B*T^2*C in all, causal half; backward twice that, without
the forward it recomputes).
"""
from __future__ import annotations

import contextlib
import time

GEMM_KERNELS = ("linear_forward", "linear_backward", "linear_cross_entropy")


def kernel_flops(name: str, args: tuple, kwargs: dict) -> int | None:
    """The FLOPs of one call of kernel `name` with these arguments, or None (not counted)."""
    if name == "linear_forward":
        (N, C), OC = args[0].shape, args[1].shape[0]
        return 2 * N * C * OC
    if name == "linear_backward":
        (N, C), OC = args[0].shape, args[1].shape[0]
        return 2 * N * C * OC * (1 + (kwargs.get("dW") is not None))
    if name == "linear_cross_entropy":
        (N, C), V = args[0].shape, args[1].shape[0]
        grads = (kwargs.get("dx") is not None) + (kwargs.get("dW") is not None)
        return 2 * N * C * V * (1 + grads)
    if name in ("attention_forward", "attention_backward"):
        B, T, C3 = args[0].shape
        causal_matmuls = 2 * B * T * T * (C3 // 3)  # q k^T and att @ v, halved by the mask
        return causal_matmuls * (1 if name == "attention_forward" else 2)
    return None


@contextlib.contextmanager
def timed_kernels(record):
    """Within it, every kernel call the training step makes calls record(name, seconds, flops)
    (outermost calls only); the original functions are back afterwards."""
    import fasttrain.kernels as K
    import fasttrain.optim
    import fasttrain.train

    depth = [0]

    def wrap(name, fn):
        def timed(*args, **kwargs):
            if depth[0]:
                return fn(*args, **kwargs)
            depth[0] += 1
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                record(name, time.perf_counter() - t0, kernel_flops(name, args, kwargs))
                depth[0] -= 1
        return timed

    saved = []
    for module in (K, fasttrain.train, fasttrain.optim):
        for name in K.KERNELS:
            if hasattr(module, name):
                fn = getattr(module, name)
                saved.append((module, name, fn))
                setattr(module, name, wrap(name, fn))
    try:
        yield
    finally:
        for module, name, fn in saved:
            setattr(module, name, fn)


def profile(shape=None, *, steps: int = 3, warmup: int = 1, backend: str = "c",
            gemm_n: int = 2048) -> dict:
    """Profile `steps` GPT training steps at `shape` (gpt_step's (n_layer, n_head, n_embd,
    block_size, batch, vocab); default its small one). Returns {"shape", "backend", "steps",
    "step_s" (mean seconds a step), "gemm_gflops" (the probe), "rows": [{"kernel", "calls"
    (per step), "ms" (per step), "share" (of the step), "gflops", "of_gemm"} ...] slowest
    first, with "other" last}."""
    from fasttrain.bench import gpt_step
    from fasttrain.limits import gemm_flops

    shape = tuple(shape or gpt_step.SMALL)
    step = gpt_step.make_step(backend, *shape)
    for _ in range(warmup):
        step()
    calls: dict[str, list] = {}  # name: [calls, seconds, flops or None]

    def record(name, seconds, flops):
        c = calls.setdefault(name, [0, 0.0, None if flops is None else 0])
        c[0] += 1
        c[1] += seconds
        if flops is not None:
            c[2] += flops

    with timed_kernels(record):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        total = time.perf_counter() - t0
    gemm = gemm_flops(gemm_n)["gflops"]
    rows = []
    for name, (n, seconds, flops) in sorted(calls.items(), key=lambda kv: -kv[1][1]):
        gflops = None if flops is None else flops / seconds / 1e9
        rows.append({"kernel": name, "calls": n / steps, "ms": seconds / steps * 1e3,
                     "share": seconds / total, "gflops": gflops,
                     "of_gemm": None if gflops is None else gflops / gemm})
    other = total - sum(s for _, s, _ in calls.values())
    rows.append({"kernel": "other", "calls": None, "ms": other / steps * 1e3,
                 "share": other / total, "gflops": None, "of_gemm": None})
    return {"shape": gpt_step.label(shape), "backend": backend, "steps": steps,
            "step_s": total / steps, "gemm_gflops": gemm, "gemm_n": gemm_n, "rows": rows}


def table(result: dict) -> str:
    """The profile as a Markdown table, with a title line."""
    lines = [f"GPT step {result['shape']}, backend {result['backend']}: "
             f"{result['step_s'] * 1e3:.1f} ms a step (mean of {result['steps']}); "
             f"GEMM probe {result['gemm_gflops']:.3g} GFLOP/s at {result['gemm_n']}^3",
             "",
             "| kernel | calls/step | ms/step | share | GFLOP/s | of GEMM |",
             "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        calls = "-" if r["calls"] is None else f"{r['calls']:g}"
        gflops = "-" if r["gflops"] is None else f"{r['gflops']:.1f}"
        of = "-" if r["of_gemm"] is None else f"{r['of_gemm']:.0%}"
        lines.append(f"| {r['kernel']} | {calls} | {r['ms']:.2f} | {r['share']:.1%} | {gflops} "
                     f"| {of} |")
    return "\n".join(lines)

"""One AdamW step over a whole model, float32, 2 threads.

Models: 1M, 10M and 100M parameters in one tensor, and 10M as 100 tensors of 100k, which the
fasttrain arena updates as one buffer (one kernel call) and PyTorch as a list.
Backends: fasttrain's c and numba (AdamW over an Arena), "numpy" (the reference backend: naive
numpy, one temporary per expression), "numpy-inplace" (numpy with out= into two preallocated
scratch buffers, below), and torch.optim.AdamW three ways: "torch" (the default on CPU tensors:
the single-tensor loop), "torch-foreach" (foreach=True) and "torch-fused" (fused=True).
extra_info: GB/s counting 28 bytes per parameter (param, grad, m, v read; param, m, v written:
the minimum traffic of one step) and that as a fraction of the machine's read+write bandwidth
measured in the same session.

Run:  pytest benchmarks/bench_adamw.py --benchmark-columns=median,min,max,rounds
      python benchmarks/bench_adamw.py [1M 10M 10Mx100 100M]   (interleaved; see the end)
"""
import gc

import numpy as np
import pytest

import fasttrain
from conftest import THREADS, available, rng, sizes
from fasttrain.bench import ADAMW_BYTES_PER_PARAM as BYTES_PER_PARAM
from fasttrain.bench import ADAMW_HYPER as HYPER
from fasttrain.bench import ADAMW_MODELS

# name: the parameter tensors' sizes; those `fasttrain bench` runs, and 100M (6+ GB in all here)
MODELS = {**ADAMW_MODELS, "100M": [100_000_000]}
ROUNDS = {"1M": 50, "10M": 20, "100M": 7, "10Mx100": 20}
BACKENDS = [available("c"), available("numba"), available("numpy"),
            pytest.param("numpy-inplace", id="numpy-inplace")]
BACKENDS += [pytest.param(name, id=name, marks=available("torch").marks)
             for name in ("torch", "torch-foreach", "torch-fused")]
TORCH_OPTIONS = {"torch": {}, "torch-foreach": {"foreach": True}, "torch-fused": {"fused": True}}


def numpy_inplace_step(p, g, m, v, t1, t2, *, step, lr, betas, eps, weight_decay):
    """The reference's AdamW (beta1 > 0.5) written with out= into two scratch buffers t1, t2:
    no allocation, but still 14 passes over memory where the fused kernels make one."""
    real = p.dtype.type
    beta1, beta2 = betas
    bias_correction1, bias_correction2 = 1 - beta1**step, 1 - beta2**step
    np.multiply(p, real(1 - lr * weight_decay), out=p)
    np.subtract(g, m, out=t1)                      # m = lerp(m, g, 1 - beta1)
    np.multiply(t1, real(1 - beta1), out=t1)
    np.add(m, t1, out=m)
    np.multiply(v, real(beta2), out=v)             # v = v*beta2 + (1 - beta2)*g*g
    np.multiply(g, real(1 - beta2), out=t1)
    np.multiply(t1, g, out=t1)
    np.add(v, t1, out=v)
    np.sqrt(v, out=t1)                             # denom
    np.divide(t1, real(bias_correction2**0.5), out=t1)
    np.add(t1, real(eps), out=t1)
    np.multiply(m, real(-lr / bias_correction1), out=t2)
    np.divide(t2, t1, out=t2)
    np.add(p, t2, out=p)


@pytest.fixture(scope="module", params=sizes(list(MODELS)))
def model(request):
    """(name, sizes, initial parameters (P,), gradient (P,)), made once per model size."""
    sizes = MODELS[request.param]
    r = rng()
    P = sum(sizes)
    params = r.standard_normal(P, dtype=np.float32)
    grads = r.standard_normal(P, dtype=np.float32) * np.float32(1e-2)
    yield request.param, sizes, params, grads
    del params, grads
    gc.collect()


def make_arena(sizes, params0, grads0):
    """A fasttrain arena holding the model, one parameter per tensor."""
    arena = fasttrain.Arena()
    for i, n in enumerate(sizes):
        arena.add(f"w{i}", n)
    arena.build()
    lo = 0
    for i, n in enumerate(sizes):
        arena[f"w{i}"][...] = params0[lo:lo + n]
        arena.grad(f"w{i}")[...] = grads0[lo:lo + n]
        lo += n
    return arena


def make_tensors(sizes, params0, grads0):
    """The model as a list of PyTorch leaf tensors with their .grad set."""
    import torch

    tensors, lo = [], 0
    for n in sizes:
        t = torch.from_numpy(params0[lo:lo + n].copy()).requires_grad_()
        t.grad = torch.from_numpy(grads0[lo:lo + n].copy())
        tensors.append(t)
        lo += n
    return tensors


def make_step(backend, arena, tensors):
    """The step to time, over the given arena (fasttrain, numpy) or tensors (torch)."""
    if backend.startswith("torch"):
        import torch

        return torch.optim.AdamW(tensors, **HYPER, **TORCH_OPTIONS[backend]).step
    if backend == "numpy-inplace":
        m, v = np.zeros_like(arena.params), np.zeros_like(arena.params)
        t1, t2 = np.empty_like(arena.params), np.empty_like(arena.params)
        state = {"step": 0}

        def call():
            state["step"] += 1
            numpy_inplace_step(arena.params, arena.grads, m, v, t1, t2, step=state["step"],
                               **HYPER)
        return call
    return fasttrain.AdamW(arena, **HYPER, backend=backend).step


def make_call(backend, sizes, params0, grads0):
    """The step to time, on buffers of its own."""
    if backend.startswith("torch"):
        return make_step(backend, None, make_tensors(sizes, params0, grads0))
    return make_step(backend, make_arena(sizes, params0, grads0), None)


@pytest.mark.parametrize("backend", BACKENDS)
def test_adamw(benchmark, settle, bandwidth, backend, model):
    name, sizes, params0, grads0 = model
    call = settle(make_call(backend, sizes, params0, grads0))
    benchmark.group = f"adamw {name}"
    benchmark.pedantic(call, rounds=ROUNDS[name], iterations=1, warmup_rounds=1)
    if benchmark.stats is None:  # --benchmark-disable: ran once, nothing measured
        return
    P = sum(sizes)
    gbps = BYTES_PER_PARAM * P / benchmark.stats.stats.median / 1e9
    benchmark.extra_info.update(params=P, tensors=len(sizes), gbps=round(gbps, 2), threads=2)
    if bandwidth:
        benchmark.extra_info.update(machine_gbps=round(bandwidth, 2),
                                    fraction_of_bandwidth=round(gbps / bandwidth, 3))
    del call
    gc.collect()


def test_numpy_inplace_matches_the_reference():
    """The benchmark's hand-written numpy step computes what the reference computes."""
    r = rng()
    p, g = r.standard_normal(1000, dtype=np.float32), r.standard_normal(1000, dtype=np.float32)
    m, v = np.zeros_like(p), np.zeros_like(p)
    p2, m2, v2 = p.copy(), m.copy(), v.copy()
    t1, t2 = np.empty_like(p), np.empty_like(p)
    for step in (1, 2, 3):
        numpy_inplace_step(p, g, m, v, t1, t2, step=step, **HYPER)
        fasttrain.adamw_step(p2, g, m2, v2, step=step, lr=HYPER["lr"], beta1=HYPER["betas"][0],
                             beta2=HYPER["betas"][1], eps=HYPER["eps"],
                             weight_decay=HYPER["weight_decay"], backend="numpy")
    assert np.array_equal(p, p2) and np.array_equal(m, m2) and np.array_equal(v, v2)


# ---------------------------------------------------------------------------------------------
# Interleaved mode, for ratios that survive a noisy machine: python benchmarks/bench_adamw.py
# pytest-benchmark times one backend after another, so a shift of the machine's bandwidth between
# groups (seen here: the probe moves between ~20 and ~33 GB/s from one minute to the next) lands
# on some backends and not others. This mode runs rounds of A B C ..., each timed call after a
# 0.2 s pause and one untimed call (../shared/BENCHMARKING.md), measures the bandwidth probe in
# every round, and reports the median of the per-round ratios. fasttrain and numpy steps share one
# arena, the torch optimizers one list of tensors (each optimizer owns its state), to bound memory
# (about 8 GB at 100M).

def interleaved(name, rounds, backends):
    import time

    import torch

    from fasttrain.limits import memory_bandwidth

    sizes = MODELS[name]
    P = sum(sizes)
    r = rng()
    params0 = r.standard_normal(P, dtype=np.float32)
    grads0 = r.standard_normal(P, dtype=np.float32) * np.float32(1e-2)
    arena = make_arena(sizes, params0, grads0)
    tensors = make_tensors(sizes, params0, grads0) if any(
        b.startswith("torch") for b in backends) else None
    del params0, grads0
    steps = {b: make_step(b, arena, tensors) for b in backends}
    times = {b: [] for b in backends}
    probe = []
    for _ in range(rounds):
        probe.append(memory_bandwidth(threads=THREADS, repeats=3)["gbps"])
        for b, step in steps.items():
            time.sleep(0.2)
            step()
            t0 = time.perf_counter()
            step()
            times[b].append(time.perf_counter() - t0)
    bw = float(np.median(probe))
    print(f"\n{name}: {P} parameters in {len(sizes)} tensor(s), {rounds} rounds, {THREADS} threads, "
          f"torch {torch.__version__}; bandwidth probe median {bw:.1f} GB/s "
          f"(rounds {min(probe):.1f}-{max(probe):.1f})")
    print("| backend | median ms | min-max ms | GB/s | share of probe | time / c's time |")
    print("|---|---|---|---|---|---|")
    base = np.array(times["c"]) if "c" in times else None
    for b, t in times.items():
        t = np.array(t)
        med = float(np.median(t))
        gbps = BYTES_PER_PARAM * P / med / 1e9
        ratio = f"{np.median(t / base):.2f}" if base is not None else "-"
        print(f"| {b} | {med * 1e3:.2f} | {t.min() * 1e3:.2f}-{t.max() * 1e3:.2f} | {gbps:.1f} "
              f"| {gbps / bw:.0%} | {ratio} |")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="AdamW step, all backends interleaved")
    parser.add_argument("models", nargs="*", help=f"of {', '.join(MODELS)} (default: all)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds per model (default: 30 for 1M, 15 for 10M, 5 for 100M)")
    # numba is left out by default: with its OpenMP threading layer in the same process, torch's
    # per-tensor loop (default and foreach) ran ~8x slower here on the 100-tensor model (250 ms
    # instead of 34 ms), which would flatter every ratio against torch. Add it with --backends.
    parser.add_argument("--backends", default="c,numpy,numpy-inplace,torch,torch-foreach,"
                        "torch-fused", help="comma-separated, of c, numba, " + ", ".join(
                            b for b in ["numpy", "numpy-inplace"] + list(TORCH_OPTIONS)))
    args = parser.parse_args()
    if not set(args.models) <= set(MODELS):
        parser.error(f"models are {', '.join(MODELS)}, got {' '.join(args.models)}")
    fasttrain.set_num_threads(THREADS)
    import torch

    torch.set_num_threads(THREADS)
    for model_name in args.models or ["1M", "10M", "10Mx100", "100M"]:
        default = {"1M": 30, "10M": 15, "10Mx100": 15, "100M": 5}[model_name]
        interleaved(model_name, args.rounds or default, args.backends.split(","))

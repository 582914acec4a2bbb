"""The harness of `fasttrain bench`: the machine-limit probes, the interleaved timer, warm-up,
memory measurement, and `run`, which measures a list of cases (one per kernel and shape, from
the kernels' case modules) and returns the JSON-able result.

How it measures (../shared/BENCHMARKING.md in the development tree says why each step is there):
1. The machine's limits first: in-place read+write bandwidth (fasttrain.limits, best over thread
   counts 1..N) and float32 GEMM FLOP/s (scipy's BLAS at a large square size). Cases with
   `nbytes` are reported as a share of the bandwidth, cases with `flops` as a share of the GEMM
   rate. The bandwidth is measured again at the end, so that a machine that changed under the
   run shows it.
2. Each case builds every contender on the same inputs, calls each once (Numba compiles, pages
   fault in) and once more to choose how many calls make one sample (a block of about
   `block_s`, so that microsecond kernels are not timed by the clock's resolution).
3. Rounds of A B C ... A B C: before each sample a pause (`pause_s`: the last library's thread
   pool stops spinning), then untimed calls for `warm_s`, at least one (this one's pool wakes
   up and the cores clock up: a short block right after idling read 1.5x slow for the linear
   layer at 64x64x64). Medians and min-max over rounds; every ratio is the median of the
   per-round ratios, so drift of the machine during the run hits both sides of a ratio alike.
4. With memory=True, each contender's extra peak memory in one warm call, before the rounds.
This is the one timer: benchmarks/ (pytest-benchmark) and every figure in the README use it.
"""
from __future__ import annotations

import datetime
import gc
import os
import platform
import sys
import time
import tracemalloc

import numpy as np

from fasttrain.bench._case import (
    CONTENDERS,
    FASTTRAIN_BACKENDS,
    REFERENCE,
    Case,
    base,
    case_modules,
    kernel_names,
    parse_shape,
    sizes,
)

# rounds of A B C ..., seconds per timed block, warm-up before it, the limits' sizes, per mode
MODES = {
    "full": dict(rounds=5, block_s=0.05, pause_s=0.2, warm_s=0.05, bandwidth_bytes=256 << 20,
                 bandwidth_repeats=7, gemm_n=4096),
    "quick": dict(rounds=3, block_s=0.01, pause_s=0.2, warm_s=0.01, bandwidth_bytes=256 << 20,
                  bandwidth_repeats=5, gemm_n=2048),
    "tiny": dict(rounds=2, block_s=0.002, pause_s=0.005, warm_s=0.0, bandwidth_bytes=8 << 20,
                 bandwidth_repeats=2, gemm_n=128),
}

# Environment variables that force a BLAS kernel or code path instead of the one detected for
# this CPU; they change every GEMM figure, so the report names them at the top.
BLAS_FORCING = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "MKL_ENABLE_INSTRUCTIONS",
                "MKL_DEBUG_CPU_TYPE", "MKL_CBWR")
SCHEMA = 1  # the JSON's "schema": bumped when a field changes meaning


def plan_cases(kernels, mode: str, with_torch: bool, shapes=None) -> list[Case]:
    """The cases a run of `kernels` in `mode` measures (nothing is allocated until setup);
    `shapes` (texts as after --shapes) replaces the mode's shapes of a single kernel."""
    torch_names = ["torch"] if with_torch else []
    modules = case_modules()
    if shapes:
        if len(kernels) != 1:
            raise ValueError("--shapes needs exactly one kernel in --kernels")
        (k,) = kernels
        return modules[k].cases([parse_shape(k, s) for s in shapes], torch_names)
    return [c for k in kernels for c in modules[k].cases(sizes(k, mode), torch_names)]


def chosen(case: Case, backends, available) -> list[str]:
    """The contenders of `case` to measure: a default one whose library (c, numba, numpy,
    torch) is in `backends` or that needs none of them (distributed's 1x1, 2x1, 1x2), an extra
    one when `backends` names it; either only if it loads."""
    wanted = [n for n in case.contenders
              if base(n) in backends or n in backends or base(n) not in CONTENDERS]
    wanted += [n for n in case.extras if n in backends and n not in wanted]
    return [n for n in wanted if available(n)]


# ---------------------------------------------------------------------------------------------
# the environment

def _import_torch():
    """PyTorch, or None and why not. Imported only after fasttrain's C backend has loaded (see
    prepare)."""
    try:
        import torch
    except ImportError as e:
        return None, f"PyTorch is not installed ({e})"
    return torch, None


def prepare(threads: int | None) -> dict:
    """Load the backends, then torch, and give every library the same thread count. Returns
    {"threads", "backends": {name: None or why not}, "torch": module or None, "missing": {}}.

    fasttrain's C backend loads first: torch puts its own libgomp in the global symbol scope, and
    a C backend loaded after it would bind to that runtime, without fasttrain's pool manners
    (fasttrain/threads.py), and lose a third of a training step to spinning threads."""
    import fasttrain
    from fasttrain.kernels import backend_status

    status = backend_status()  # loads c (libgomp, scipy's OpenBLAS), numba, numpy
    threads = threads or fasttrain.get_num_threads()
    fasttrain.set_num_threads(threads)  # and to every BLAS now loaded
    torch, why = _import_torch()
    if torch is not None:
        torch.set_num_threads(threads)
    missing = {name: why for name, why in status.items() if why is not None}
    if why:
        missing["torch"] = why
    return {"threads": threads, "backends": status, "torch": torch, "missing": missing}


def environment(threads: int, torch) -> dict:
    """What the figures depend on: CPU, threads, SIMD level, library versions, BLAS, date."""
    import scipy

    from fasttrain.info import collect

    facts = collect()
    forced = {k: os.environ[k] for k in BLAS_FORCING if k in os.environ}
    try:
        import numba

        numba_version = numba.__version__
    except ImportError:
        numba_version = None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": facts["cpu"],
        "cores": facts["cores"],
        "threads": threads,
        "simd": facts["simd"],
        "openmp": facts.get("openmp"),
        "platform": facts["platform"],
        "versions": {"fasttrain": facts["fasttrain"], "python": platform.python_version(),
                     "numpy": np.__version__, "scipy": scipy.__version__, "numba": numba_version,
                     "torch": torch.__version__ if torch is not None else None},
        "blas": facts["blas"],
        "blas_forced": forced,
    }


def blas_warning(env: dict) -> str | None:
    """The line that says a BLAS kernel is forced by the environment, with the kernel running."""
    if not env["blas_forced"]:
        return None
    forced = " ".join(f"{k}={v}" for k, v in env["blas_forced"].items())
    kernels = "; ".join(f"{lib.get('internal_api')} {lib.get('version')}: "
                        f"{lib.get('architecture') or 'kernel not reported'}"
                        for lib in env["blas"]) or "no BLAS loaded"
    return (f"NOTE: the environment forces the BLAS kernel ({forced}); threadpoolctl reports "
            f"{kernels}. Every GEMM figure (linear, the GEMM limit, train_step) depends on it; "
            f"users' machines usually do not set it.")


def measure_limits(mode: str, threads: int, status: dict) -> dict:
    """Bandwidth (needs the C backend's streaming kernel) and GEMM rate, measured now."""
    from fasttrain.limits import gemm_flops, memory_bandwidth

    m = MODES[mode]
    limits: dict = {}
    if status.get("c") is None:
        bw = memory_bandwidth(m["bandwidth_bytes"], threads, m["bandwidth_repeats"])
        limits.update(bandwidth_gbps=bw["gbps"], bandwidth_bytes=bw["nbytes"],
                      bandwidth_per_threads={str(k): v for k, v in bw["per_threads"].items()})
    else:
        limits.update(bandwidth_gbps=None,
                      bandwidth_why="the probe is in the C backend, which did not load: "
                      + status["c"])
    g = gemm_flops(m["gemm_n"])
    limits.update(gemm_gflops=g["gflops"], gemm_n=g["n"])
    return limits


# ---------------------------------------------------------------------------------------------
# timing

def _block(call, reps: int) -> float:
    """Seconds per call over `reps` back-to-back calls."""
    t0 = time.perf_counter()
    for _ in range(reps):
        call()
    return (time.perf_counter() - t0) / reps


def _reps(call, block_s: float) -> int:
    """Calls per sample: one warm-up (compiles, faults pages in), then enough calls to fill
    about block_s, judged from one more call."""
    call()
    t = _block(call, 1)
    return int(min(10_000, max(1, round(block_s / max(t, 1e-7)))))


def _warm(call, warm_s: float) -> None:
    """Untimed calls for warm_s seconds, at least one."""
    t0 = time.perf_counter()
    call()
    while time.perf_counter() - t0 < warm_s:
        call()


def _rss_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_memory(call) -> tuple[float | None, float]:
    """(extra resident MB at the call's peak, or None where Linux's clear_refs is missing;
    peak MB of traced numpy allocations) for one call. The resident figure (VmHWM after
    resetting it through /proc/self/clear_refs) counts numpy's and PyTorch's buffers alike;
    tracemalloc sees numpy's only. Call it warm: outputs allocated once are not counted."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        before = _rss_kb("VmRSS")
    except OSError:
        before = None
    tracemalloc.start()
    try:
        call()
        _, traced = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    peak = _rss_kb("VmHWM")
    extra = None if before is None or peak is None else (peak - before) / 1024
    return extra, traced / 2**20


def run_case(case: Case, names: list[str], rounds: int, block_s: float, pause_s: float,
             progress=None, failed: dict | None = None, warm_s: float = 0.0,
             memory: dict | None = None) -> dict[str, list[float]]:
    """Per-call seconds of each contender, one sample per round, interleaved A B C A B C.
    With `memory` (a dict), each contender's peak_memory goes there first."""
    calls = case.setup(names)
    reps = {}

    def fail(name, e):  # a contender that fails is reported, not fatal to the run
        if failed is not None:
            failed[f"{case.kernel} {case.op} {case.shape} {name}"] = f"{type(e).__name__}: {e}"
        del calls[name]

    for name in list(calls):
        if case.self_timed:
            continue
        try:
            reps[name] = _reps(calls[name], block_s)
            if memory is not None:
                memory[name] = peak_memory(calls[name])
        except Exception as e:
            fail(name, e)
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name in list(calls):
            time.sleep(pause_s)
            try:
                if case.self_timed:
                    times[name].append(float(calls[name]()))
                else:
                    _warm(calls[name], warm_s)
                    times[name].append(_block(calls[name], reps[name]))
            except Exception as e:
                fail(name, e)
                del times[name]
            if progress is not None:
                progress.update(1)
    del calls
    gc.collect()
    return times


def _paired_ratio(times: dict, other: str, name: str) -> float | None:
    """Median over rounds of other's time / name's time in the same round."""
    if other not in times or name not in times:
        return None
    return float(np.median(np.array(times[other]) / np.array(times[name])))


def slow_by_design(case: Case, name: str) -> str | None:
    """Why contender `name` is slower than the reference by design, as its backend's function
    says (its `slower_than_numpy`, kernels/numba/_slow.py), or None: "numba
    softmax_cross_entropy: <why>"."""
    lib = base(name)
    if lib not in FASTTRAIN_BACKENDS or lib == REFERENCE:
        return None
    from fasttrain.kernels._backends import BackendUnavailableError, load

    try:
        module = load(lib)
    except BackendUnavailableError:
        return None
    notes = [f"{lib} {api}: {why}" for api in case.api
             if (why := getattr(getattr(module, api, None), "slower_than_numpy", None))]
    return "; ".join(notes) or None


def summarize(case: Case, times: dict, limits: dict) -> list[dict]:
    """The table's rows for one case."""
    torch_names = [n for n in times if n.startswith("torch")]
    best_torch = min(torch_names, key=lambda n: np.median(times[n])) if torch_names else None
    rows = []
    for name, t in times.items():
        med = float(np.median(t))
        row = {"kernel": case.kernel, "op": case.op, "shape": case.shape, "backend": name,
               "median_s": med, "min_s": float(min(t)), "max_s": float(max(t)),
               "times_s": [float(x) for x in t],
               "vs_numpy": _paired_ratio(times, REFERENCE, name),
               "vs_torch": _paired_ratio(times, best_torch, name) if best_torch else None,
               "vs_torch_peer": best_torch,
               "rate": None, "rate_unit": None, "limit": None, "of_limit": None,
               "slow_by_design": slow_by_design(case, name)}
        if case.nbytes is not None:
            row.update(rate=case.nbytes / med / 1e9, rate_unit="GB/s", limit="bandwidth")
            if limits.get("bandwidth_gbps"):
                row["of_limit"] = row["rate"] / limits["bandwidth_gbps"]
        elif case.flops is not None:
            gflops = case.flops / med / 1e9
            row.update(rate=gflops, rate_unit="GFLOP/s", limit="gemm",
                       of_limit=gflops / limits["gemm_gflops"])
            if case.tokens is not None:  # a model's step: tokens/s, its FLOPs' share (MFU)
                row.update(rate=case.tokens / med, rate_unit="tokens/s")
        elif case.tokens is not None:
            row.update(rate=case.tokens / med, rate_unit="tokens/s")
        rows.append(row)
    return rows


def run(kernels=None, mode: str = "full", threads: int | None = None,
        progress: bool | None = None, log=print, backends=CONTENDERS, shapes=None,
        rounds: int | None = None, memory: bool = False) -> dict:
    """Measure: the limits, then every case of `kernels` (default: all) on the contenders that
    `backends` chooses (see `chosen`) and that load. `shapes` and `rounds` replace the mode's;
    `memory` adds each contender's extra peak memory (MB) to its rows. Returns the JSON-able
    result."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    from tqdm import tqdm

    kernels = list(kernels or kernel_names())
    t_start = time.perf_counter()
    ctx = prepare(threads)
    threads, torch = ctx["threads"], ctx["torch"]
    env = environment(threads, torch)
    warning = blas_warning(env)
    if warning:
        log(warning)
    log(f"fasttrain bench ({mode}): {env['cpu']}, {threads} threads, SIMD {env['simd']}; "
        f"measuring the machine's limits...")
    limits = measure_limits(mode, threads, ctx["backends"])
    cases = plan_cases(kernels, mode, with_torch=torch is not None, shapes=shapes)

    def available(name):
        lib = base(name)
        if lib == "torch":
            return torch is not None
        return ctx["backends"].get(lib, None) is None  # a bare library call (sgemm): always

    plan = [(c, chosen(c, backends, available)) for c in cases]
    m = dict(MODES[mode], **({"rounds": rounds} if rounds else {}))
    failed: dict[str, str] = {}
    rows = []
    # progress=None: a bar on a terminal only
    with tqdm(total=sum(len(n) for _, n in plan) * m["rounds"], unit="sample", file=sys.stderr,
              disable=None if progress is None else not progress, leave=False) as bar:
        for i, (case, names) in enumerate(plan):
            what = f"{case.kernel} {case.op} {case.shape}"
            bar.set_description(what)
            if bar.disable and progress is None:  # not a terminal: a line per case instead
                log(f"[{i + 1}/{len(plan)}] {what}")
            mem = {} if memory else None
            times = run_case(case, names, m["rounds"], m["block_s"], m["pause_s"], bar, failed,
                             warm_s=m["warm_s"], memory=mem)
            for row in summarize(case, times, limits):
                if mem is not None:
                    extra, traced = mem.get(row["backend"], (None, None))
                    row.update(extra_mb=extra, traced_mb=traced)
                rows.append(row)
    if limits.get("bandwidth_gbps"):
        from fasttrain.limits import memory_bandwidth

        end = memory_bandwidth(m["bandwidth_bytes"], threads, m["bandwidth_repeats"])
        limits["bandwidth_end_gbps"] = end["gbps"]
    named = [b for b in dict.fromkeys([*CONTENDERS, *backends]) if b in backends]
    return {"schema": SCHEMA, "mode": mode, "kernels": kernels, "backends": named,
            "rounds": m["rounds"], "pause_s": m["pause_s"],
            "seconds": time.perf_counter() - t_start, **env,
            "limits": limits, "missing": ctx["missing"], "failed": failed, "results": rows}

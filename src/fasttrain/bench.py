"""`fasttrain bench`: how fast each kernel runs here, against the numpy reference, PyTorch and
this machine's limits, measured in one run.

    fasttrain bench [--kernels crossentropy,linear,...] [--backends c,numba,numpy,torch] [--quick]
                    [--threads N] [--json FILE] [--compare OLD.json] [--threshold 0.1]
                    [--plot FILE.png] [--results FILE]

How it measures (../shared/BENCHMARKING.md in the development tree says why each step is there):
1. The machine's limits first: in-place read+write bandwidth (fasttrain.limits, best over thread
   counts 1..N) and float32 GEMM FLOP/s (scipy's BLAS at a large square size). Cross-entropy,
   AdamW, embedding and the activations are reported as a share of the bandwidth (the bytes
   they must move at least), linear as a share of the GEMM rate. The bandwidth is measured again
   at the end, so that a machine that changed under the run shows it.
2. Each case (kernel x shape) builds every contender on the same inputs, calls each once (Numba
   compiles, pages fault in) and once more to choose how many calls make one sample (a block of
   about `block_s`, so that microsecond kernels are not timed by the clock's resolution).
3. Rounds of A B C ... A B C: before each sample a 0.2 s pause (the last library's thread pool
   stops spinning) and one untimed call (this one's pool wakes up). Medians and min-max over
   rounds; every ratio is the median of the per-round ratios, so drift of the machine during the
   run hits both sides of a ratio alike.

Shape letters: N rows, V vocabulary, C input and OC output channels, E embedding width, P
parameters; a train step is B windows of T tokens. The shape lists below are the one source of
truth: benchmarks/bench_*.py (pytest-benchmark) import them.
"""
from __future__ import annotations

import datetime
import gc
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

# ---------------------------------------------------------------------------------------------
# what is measured

KERNEL_NAMES = ("crossentropy", "linear", "adamw", "embedding", "elementwise", "train_step")

CROSSENTROPY_SHAPES = [(4096, 256), (8192, 4096), (4096, 32768), (2048, 50304)]  # (N, V)
LINEAR_SHAPES = [(64, 64, 64), (1024, 256, 256), (4096, 768, 3072), (4096, 3072, 768)]  # (N, C, OC)
ADAMW_MODELS = {  # name: the sizes of the model's parameter tensors (one arena in fasttrain)
    "1M": [1_000_000],
    "10M": [10_000_000],
    "10Mx100": [100_000] * 100,
}
EMBEDDING_SHAPES = [(256, 64, 8192), (50304, 768, 8192)]  # (V, E, N): the byte MLP's, a GPT-2's
ELEMENTWISE_SHAPES = [(1024, 512), (8192, 3072)]  # the default MLP's hidden layer, a GPT MLP's


def _default_model() -> tuple[int, int, int, int]:
    """(B, T, E, H) of the model `fasttrain train` trains by default (bytes: V = 256)."""
    from fasttrain.config import TrainConfig

    c = TrainConfig()
    return c.batch_size, c.context, c.n_embd, c.hidden


TRAIN_STEPS = [_default_model()]

SIZES = {
    "full": {"crossentropy": CROSSENTROPY_SHAPES, "linear": LINEAR_SHAPES,
             "adamw": list(ADAMW_MODELS), "embedding": EMBEDDING_SHAPES,
             "elementwise": ELEMENTWISE_SHAPES, "train_step": TRAIN_STEPS},
    # the cross-entropy at the byte model's vocabulary (its numpy and torch peers at 8192x4096
    # took a fifth of a quick run's minute)
    "quick": {"crossentropy": [(4096, 256)], "linear": [(1024, 256, 256)], "adamw": ["10M"],
              # the default model's activation only (a third element names the activation)
              "embedding": EMBEDDING_SHAPES[:1], "elementwise": [(*ELEMENTWISE_SHAPES[0], "tanh")],
              "train_step": TRAIN_STEPS},
    # for the tests: every code path in seconds
    "tiny": {"crossentropy": [(64, 96)], "linear": [(16, 24, 8)], "adamw": ["tiny"],
             "embedding": [(40, 8, 64)], "elementwise": [(8, 16)], "train_step": [(32, 4, 8, 16)]},
}
_TINY_MODEL = [1000, 24]

# rounds of A B C ..., seconds per timed block, the limits' sizes, per mode
# pause_s: before each sample, so that the last library's pool stops spinning (BENCHMARKING.md)
MODES = {
    "full": dict(rounds=5, block_s=0.05, pause_s=0.2, bandwidth_bytes=256 << 20,
                 bandwidth_repeats=7, gemm_n=4096),
    "quick": dict(rounds=3, block_s=0.01, pause_s=0.2, bandwidth_bytes=256 << 20,
                  bandwidth_repeats=5, gemm_n=2048),
    "tiny": dict(rounds=2, block_s=0.002, pause_s=0.005, bandwidth_bytes=8 << 20,
                 bandwidth_repeats=2, gemm_n=128),
}

# Environment variables that force a BLAS kernel or code path instead of the one detected for
# this CPU; they change every GEMM figure, so the report names them at the top.
BLAS_FORCING = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "MKL_ENABLE_INSTRUCTIONS",
                "MKL_DEBUG_CPU_TYPE", "MKL_CBWR")
REFERENCE = "numpy"
FASTTRAIN_BACKENDS = ("c", "numba", "numpy")
SCHEMA = 1  # the JSON's "schema": bumped when a field changes meaning


class BenchError(Exception):
    """A bench run cannot go on (a bad file, a missing optional library); the message says why."""


@dataclass
class Case:
    """One kernel at one shape: `setup(names)` builds the contenders' zero-argument calls on the
    same inputs. `nbytes`: the bytes a call must move at least (→ share of bandwidth);
    `flops`: its floating-point operations (→ share of GEMM FLOP/s); `tokens`: tokens per call."""
    kernel: str
    op: str
    shape: str
    contenders: list[str]
    setup: Callable[[list[str]], dict[str, Callable[[], object]]]
    nbytes: int | None = None
    flops: int | None = None
    tokens: int | None = None


# ---------------------------------------------------------------------------------------------
# the contenders of each kernel

def _rng():
    return np.random.default_rng(0)


def _crossentropy_cases(shapes, torch_names):
    import fasttrain

    def case(N, V):
        def setup(names):
            r = _rng()
            logits = r.standard_normal((N, V), dtype=np.float32)  # (N, V)
            targets = r.integers(0, V, size=N)                    # (N,)
            calls = {}
            for name in names:
                if name == "torch":
                    import torch
                    import torch.nn.functional as F

                    x, t = torch.from_numpy(logits).requires_grad_(), torch.from_numpy(targets)

                    def call(x=x, t=t):
                        x.grad = None
                        F.cross_entropy(x, t).backward()
                else:  # the gradient into a preallocated buffer, as a training loop calls it
                    out = np.empty_like(logits)

                    def call(name=name, out=out):
                        fasttrain.softmax_cross_entropy(logits, targets, out=out, backend=name)
                calls[name] = call
            return calls
        # read the logits once, write the gradient once
        return Case("crossentropy", "fwd+bwd", f"{N}x{V}", [*FASTTRAIN_BACKENDS, *torch_names],
                    setup, nbytes=8 * N * V)
    return [case(*s) for s in shapes]


def _linear_cases(shapes, torch_names):
    import fasttrain

    def case(direction, N, C, OC):
        def setup(names):
            r = _rng()
            x = r.standard_normal((N, C), dtype=np.float32)    # (N, C)
            W = r.standard_normal((OC, C), dtype=np.float32)   # (OC, C)
            b = r.standard_normal(OC, dtype=np.float32)        # (OC,)
            dy = r.standard_normal((N, OC), dtype=np.float32)  # (N, OC)
            calls = {}
            for name in names:
                if name == "torch":
                    import torch
                    import torch.nn.functional as F

                    xt, Wt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, W, b))
                    if direction == "forward":
                        calls[name] = lambda: F.linear(xt, Wt, bt)
                        continue
                    yt, dyt = F.linear(xt, Wt, bt), torch.from_numpy(dy)

                    def call():  # the grads set to None first, as optimizer.zero_grad() leaves them
                        xt.grad = Wt.grad = bt.grad = None
                        yt.backward(dyt, retain_graph=True)
                elif direction == "forward":
                    y = np.empty((N, OC), dtype=np.float32)

                    def call(name=name, y=y):
                        fasttrain.linear_forward(x, W, b, out=y, backend=name)
                else:
                    dx, dW, db = np.empty_like(x), np.empty_like(W), np.empty_like(b)

                    def call(name=name, dx=dx, dW=dW, db=db):
                        fasttrain.linear_backward(x, W, dy, dx=dx, dW=dW, db=db, backend=name)
                calls[name] = call
            return calls
        # 2NC·OC for y = x W^T; the backward is two such GEMMs (dx, dW); the bias is not counted
        flops = (2 if direction == "forward" else 4) * N * C * OC
        return Case("linear", direction, f"{N}x{C}x{OC}", [*FASTTRAIN_BACKENDS, *torch_names],
                    setup, flops=flops)
    return [case(d, *s) for s in shapes for d in ("forward", "backward")]


ADAMW_HYPER = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
ADAMW_BYTES_PER_PARAM = 28  # param, grad, m, v read; param, m, v written


def _adamw_cases(models, torch_names):
    import fasttrain

    # torch.optim.AdamW as CPU users get it by default (one tensor at a time) and fused=True
    # (one kernel over each tensor, PyTorch's fastest); "vs torch" divides by the faster of the two
    torch_variants = {"torch": {}, "torch fused": {"fused": True}}

    def case(model):
        sizes = _TINY_MODEL if model == "tiny" else ADAMW_MODELS[model]
        P = sum(sizes)

        def setup(names):
            r = _rng()
            params0 = r.standard_normal(P, dtype=np.float32)                 # (P,)
            grads0 = r.standard_normal(P, dtype=np.float32) * np.float32(1e-2)
            calls = {}
            for name in names:
                if name in torch_variants:
                    import torch

                    tensors, lo = [], 0
                    for n in sizes:
                        t = torch.from_numpy(params0[lo:lo + n].copy()).requires_grad_()
                        t.grad = torch.from_numpy(grads0[lo:lo + n].copy())
                        tensors.append(t)
                        lo += n
                    calls[name] = torch.optim.AdamW(tensors, **ADAMW_HYPER,
                                                    **torch_variants[name]).step
                    continue
                arena = fasttrain.Arena()  # the model as one buffer: one kernel call per step
                for i, n in enumerate(sizes):
                    arena.add(f"w{i}", n)
                arena.build()
                lo = 0
                for i, n in enumerate(sizes):
                    arena[f"w{i}"][...] = params0[lo:lo + n]
                    arena.grad(f"w{i}")[...] = grads0[lo:lo + n]
                    lo += n
                calls[name] = fasttrain.AdamW(arena, **ADAMW_HYPER, backend=name).step
            return calls
        shape = f"{P:,} params" + (f" in {len(sizes)} tensors" if len(sizes) > 1 else "")
        names = [*FASTTRAIN_BACKENDS, *(n for n in torch_variants if torch_names)]
        return Case("adamw", "step", shape, names, setup, nbytes=ADAMW_BYTES_PER_PARAM * P)
    return [case(m) for m in models]


def _embedding_cases(shapes, torch_names):
    from fasttrain import kernels as K

    def case(direction, V, E, N):
        def setup(names):
            r = _rng()
            W = r.standard_normal((V, E), dtype=np.float32)      # (V, E)
            idx = r.integers(0, V, size=N)                       # (N,)
            dout = r.standard_normal((N, E), dtype=np.float32)   # (N, E)
            calls = {}
            for name in names:
                if name == "torch":
                    import torch
                    import torch.nn.functional as F

                    Wt = torch.from_numpy(W).requires_grad_()
                    it, dt = torch.from_numpy(idx), torch.from_numpy(dout)
                    if direction == "forward":
                        calls[name] = lambda: F.embedding(it, Wt).detach()
                        continue

                    def call():
                        Wt.grad = None
                        F.embedding(it, Wt).backward(dt)
                elif direction == "forward":
                    out = np.empty((N, E), dtype=np.float32)

                    def call(name=name, out=out):
                        K.embedding_forward(idx, W, out=out, backend=name)
                else:
                    dW = np.empty_like(W)

                    def call(name=name, dW=dW):
                        K.embedding_backward(idx, dout, dW, backend=name)
                calls[name] = call
            return calls
        # N rows of E floats read and N written (the backward's zeroing of dW not counted)
        return Case("embedding", direction, f"V{V} E{E} N{N}", [*FASTTRAIN_BACKENDS, *torch_names],
                    setup, nbytes=8 * N * E)
    return [case(d, *s) for s in shapes for d in ("forward", "backward")]


def _elementwise_cases(shapes, torch_names):
    from fasttrain import kernels as K

    ops = {("tanh", "forward"): (K.tanh_forward, 1), ("tanh", "backward"): (K.tanh_backward, 2),
           ("gelu", "forward"): (K.gelu_forward, 1), ("gelu", "backward"): (K.gelu_backward, 2)}

    def case(act, direction, shape):
        kernel, inputs = ops[(act, direction)]
        shape = shape[:2]

        def setup(names):
            r = _rng()
            x = r.standard_normal(shape, dtype=np.float32)
            dy = r.standard_normal(shape, dtype=np.float32)
            calls = {}
            for name in names:
                if name == "torch":
                    import torch

                    f = torch.tanh if act == "tanh" else (
                        lambda t: torch.nn.functional.gelu(t, approximate="tanh"))
                    xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
                    if direction == "forward":
                        calls[name] = lambda f=f, xt=xt: f(xt)
                        continue
                    xg = xt.clone().requires_grad_()

                    def call(f=f, xg=xg, dyt=dyt):
                        xg.grad = None
                        f(xg).backward(dyt)
                elif direction == "forward":
                    out = np.empty_like(x)

                    def call(name=name, out=out):
                        kernel(x, out=out, backend=name)
                else:
                    out = np.empty_like(x)

                    def call(name=name, out=out):
                        kernel(x, dy, out=out, backend=name)
                calls[name] = call
            return calls
        return Case("elementwise", f"{act} {direction}", f"{shape[0]}x{shape[1]}",
                    [*FASTTRAIN_BACKENDS, *torch_names], setup,
                    nbytes=4 * shape[0] * shape[1] * (inputs + 1))
    return [case(a, d, s) for s in shapes for (a, d) in ops if len(s) == 2 or s[2] == a]


def _train_step_cases(shapes, torch_names):
    def case(B, T, E, H):
        def setup(names):
            from fasttrain.config import TrainConfig
            from fasttrain.models import MLP
            from fasttrain.optim import AdamW
            from fasttrain.train import train_step

            cfg = TrainConfig()  # the optimizer settings of fasttrain train's defaults
            r = _rng()
            x = r.integers(0, 256, size=(B, T))  # (B, T) byte windows
            y = r.integers(0, 256, size=B)       # (B,) the next byte
            calls = {}
            for name in names:
                model = MLP(vocab_size=256, context=T, n_embd=E, hidden=H,
                            activation=cfg.activation,
                            backend=None if name == "torch" else name)
                model.init(cfg.seed)
                if name == "torch":
                    import torch

                    from fasttrain.models.torch_mlp import TorchMLP, torch_train_step

                    tm = TorchMLP.like(model)
                    opt = torch.optim.AdamW(tm.parameters(), lr=cfg.min_lr,
                                            betas=(cfg.beta1, cfg.beta2),
                                            weight_decay=cfg.weight_decay)
                    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
                    calls[name] = (lambda tm=tm, opt=opt, xt=xt, yt=yt:
                                   torch_train_step(tm, opt, xt, yt, cfg.grad_clip))
                    continue
                opt = AdamW(model.arena, lr=cfg.min_lr, betas=(cfg.beta1, cfg.beta2),
                            weight_decay=cfg.weight_decay, backend=name)
                calls[name] = (lambda model=model, opt=opt:
                               train_step(model, opt, [(x, y)], cfg.min_lr, cfg.grad_clip))
            return calls
        return Case("train_step", "MLP step", f"B{B} T{T} E{E} H{H}",
                    [*FASTTRAIN_BACKENDS, *torch_names], setup, tokens=B)
    return [case(*s) for s in shapes]


_CASES = {"crossentropy": _crossentropy_cases, "linear": _linear_cases, "adamw": _adamw_cases,
          "embedding": _embedding_cases, "elementwise": _elementwise_cases,
          "train_step": _train_step_cases}


def _parse_list(text: str, choices: tuple[str, ...], what: str) -> list[str]:
    names = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in names if k not in choices]
    if unknown or not names:
        raise ValueError(f"unknown {what} {', '.join(map(repr, unknown)) or repr(text)}; "
                         f"choose from {','.join(choices)}")
    return list(dict.fromkeys(names))


def plan_cases(kernels, mode: str, with_torch: bool) -> list[Case]:
    """The cases a run of `kernels` in `mode` measures (nothing is allocated until setup)."""
    torch_names = ["torch"] if with_torch else []
    return [c for k in kernels for c in _CASES[k](SIZES[mode][k], torch_names)]


def parse_kernels(text: str) -> list[str]:
    """'crossentropy,linear' -> ['crossentropy', 'linear']; an unknown name is a ValueError."""
    return _parse_list(text, KERNEL_NAMES, "kernel")


CONTENDERS = (*FASTTRAIN_BACKENDS, "torch")


def parse_backends(text: str) -> list[str]:
    """'c,torch' -> ['c', 'torch'] ("torch" covers every torch variant); unknown: ValueError."""
    return _parse_list(text, CONTENDERS, "backend")


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


def run_case(case: Case, names: list[str], rounds: int, block_s: float, pause_s: float,
             progress=None, failed: dict | None = None) -> dict[str, list[float]]:
    """Per-call seconds of each contender, one sample per round, interleaved A B C A B C."""
    calls = case.setup(names)
    reps = {}
    for name in list(calls):
        try:
            reps[name] = _reps(calls[name], block_s)
        except Exception as e:  # a contender that fails is reported, not fatal to the run
            if failed is not None:
                failed[f"{case.kernel} {case.op} {case.shape} {name}"] = f"{type(e).__name__}: {e}"
            del calls[name]
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            time.sleep(pause_s)
            call()
            times[name].append(_block(call, reps[name]))
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
               "rate": None, "rate_unit": None, "limit": None, "of_limit": None}
        if case.nbytes is not None:
            row.update(rate=case.nbytes / med / 1e9, rate_unit="GB/s", limit="bandwidth")
            if limits.get("bandwidth_gbps"):
                row["of_limit"] = row["rate"] / limits["bandwidth_gbps"]
        elif case.flops is not None:
            row.update(rate=case.flops / med / 1e9, rate_unit="GFLOP/s", limit="gemm")
            row["of_limit"] = row["rate"] / limits["gemm_gflops"]
        elif case.tokens is not None:
            row.update(rate=case.tokens / med, rate_unit="tokens/s")
        rows.append(row)
    return rows


def run(kernels=KERNEL_NAMES, mode: str = "full", threads: int | None = None,
        progress: bool | None = None, log=print, backends=CONTENDERS) -> dict:
    """Measure: the limits, then every case of `kernels` on those of `backends` that load.
    Returns the JSON-able result."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    from tqdm import tqdm

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
    cases = plan_cases(kernels, mode, with_torch=torch is not None)
    available = {name for name, why in ctx["backends"].items()
                 if why is None and name in backends}
    if torch is not None and "torch" in backends:
        available |= {"torch", "torch fused"}
    plan = [(c, [n for n in c.contenders if n in available]) for c in cases]
    m = MODES[mode]
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
            times = run_case(case, names, m["rounds"], m["block_s"], m["pause_s"], bar, failed)
            rows.extend(summarize(case, times, limits))
    if limits.get("bandwidth_gbps"):
        from fasttrain.limits import memory_bandwidth

        end = memory_bandwidth(m["bandwidth_bytes"], threads, m["bandwidth_repeats"])
        limits["bandwidth_end_gbps"] = end["gbps"]
    return {"schema": SCHEMA, "mode": mode, "kernels": list(kernels),
            "backends": [b for b in CONTENDERS if b in backends], "rounds": m["rounds"],
            "pause_s": m["pause_s"], "seconds": time.perf_counter() - t_start, **env,
            "limits": limits, "missing": ctx["missing"], "failed": failed, "results": rows}


# ---------------------------------------------------------------------------------------------
# reporting

def _fmt_time(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms" if s < 0.1 else f"{s * 1e3:.0f} ms"
    return f"{s * 1e6:.3g} µs"


def _fmt_range(lo: float, hi: float) -> str:
    unit, scale = ("s", 1) if hi >= 1 else ("ms", 1e3) if hi >= 1e-3 else ("µs", 1e6)
    return f"{lo * scale:.3g}-{hi * scale:.3g} {unit}"


def _fmt_ratio(r: float | None) -> str:
    if r is None:
        return "-"
    return f"{r:.2f}×" if r < 10 else f"{r:.1f}×"


def _fmt_rate(row: dict) -> str:
    if row["rate"] is None:
        return "-"
    if row["rate_unit"] == "tokens/s":
        return f"{row['rate'] / 1e3:.1f}k tok/s"
    return f"{row['rate']:.3g} {row['rate_unit']}"


def header(result: dict) -> str:
    """The lines above the table: machine, libraries, limits, what is missing."""
    lim = result["limits"]
    v = result["versions"]
    libs = ", ".join(f"{k} {v[k]}" for k in ("fasttrain", "numpy", "scipy", "numba", "torch")
                     if v.get(k))
    blas = "; ".join(f"{b.get('internal_api')} {b.get('version')} {b.get('architecture')}"
                     for b in result["blas"]) or "none loaded"
    lines = []
    warning = blas_warning(result)
    if warning:
        lines.append(warning)
    lines.append(f"{result['date']}  {result['cpu']}, {result['cores']} cores, "
                 f"{result['threads']} threads, SIMD {result['simd']}; {libs}")
    lines.append(f"BLAS: {blas}")
    if lim.get("bandwidth_gbps"):
        per = ", ".join(f"{k}T {g:.1f}" for k, g in lim["bandwidth_per_threads"].items())
        end = (f"; {lim['bandwidth_end_gbps']:.1f} GB/s at the end"
               if lim.get("bandwidth_end_gbps") else "")
        lines.append(f"limits: bandwidth {lim['bandwidth_gbps']:.1f} GB/s (in-place read+write, "
                     f"{lim['bandwidth_bytes'] >> 20} MiB, best of {per}{end}); GEMM "
                     f"{lim['gemm_gflops']:.3g} GFLOP/s (float32 sgemm {lim['gemm_n']}^3)")
    else:
        lines.append(f"limits: bandwidth not measured ({lim.get('bandwidth_why')}); GEMM "
                     f"{lim['gemm_gflops']:.3g} GFLOP/s (float32 sgemm {lim['gemm_n']}^3)")
    for name, why in result["missing"].items():
        lines.append(f"missing: {name}: {why}")
    for what, why in result.get("failed", {}).items():
        lines.append(f"failed: {what}: {why}")
    lines.append(f"{result['mode']} run, {result['rounds']} interleaved rounds, medians; ratios "
                 f"are medians of per-round time ratios (numpy's or torch's time / this one's); "
                 f"'vs torch' is against the faster torch variant")
    return "\n".join(lines)


def table(result: dict) -> str:
    """One Markdown table: kernel, shape, backend, median, min-max, ratios, rate, share."""
    head = ["kernel", "shape", "backend", "median", "min-max", "vs numpy", "vs torch", "rate",
            "of limit"]
    body = []
    for r in result["results"]:
        share = "-" if r["of_limit"] is None else (
            f"{r['of_limit']:.0%} {'BW' if r['limit'] == 'bandwidth' else 'GEMM'}")
        body.append([f"{r['kernel']} {r['op']}", r["shape"], r["backend"], _fmt_time(r["median_s"]),
                     _fmt_range(r["min_s"], r["max_s"]), _fmt_ratio(r["vs_numpy"]),
                     _fmt_ratio(r["vs_torch"]), _fmt_rate(r), share])
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h)
              for i, h in enumerate(head)]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *map(line, body)])


RATIOS = ("vs_numpy", "vs_torch", "of_limit")


def compare(old: dict, new: dict, threshold: float) -> tuple[str, list[str]]:
    """The change of every within-run ratio of fasttrain's backends (speedup against numpy and
    torch, share of the machine's limit) from `old` to `new`; a drop by more than `threshold`
    (0.1: 10%) is a regression. Absolute times are not compared: they move with the machine.
    Returns (the report, the regressions)."""
    def key(r):
        return (r["kernel"], r["op"], r["shape"], r["backend"])

    before = {key(r): r for r in old.get("results", [])}
    lines, regressions = [], []
    for k in ("cpu", "threads", "blas_forced", "simd"):
        if old.get(k) != new.get(k):
            lines.append(f"note: {k} differs: {old.get(k)!r} then, {new.get(k)!r} now")
    lines.append(f"compared with the run of {old.get('date')} (threshold {threshold:.0%}):")
    matched = 0
    for r in new.get("results", []):
        o = before.get(key(r))
        if o is None or r["backend"] == REFERENCE or r["backend"].startswith("torch"):
            continue
        matched += 1
        changes = []
        for ratio in RATIOS:
            a, b = o.get(ratio), r.get(ratio)
            if not a or b is None:
                continue
            change = b / a - 1
            flag = change < -threshold
            moved = f"{ratio} {a:.3g} -> {b:.3g} ({change:+.0%})"
            changes.append(moved + (" REGRESSION" if flag else ""))
            if flag:
                regressions.append(f"{' '.join(key(r))}: {moved}")
        lines.append(f"  {r['kernel']} {r['op']} {r['shape']} {r['backend']}: "
                     + ("; ".join(changes) or "no ratios"))
    if not matched:
        lines.append("  no rows in common (different kernels or shapes?)")
    lines.append(f"{len(regressions)} regression(s) beyond {threshold:.0%}" if regressions
                 else f"no regression beyond {threshold:.0%}")
    return "\n".join(lines), regressions


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise BenchError("--plot needs matplotlib: pip install 'fasttrain[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot(result: dict, path: str) -> None:
    """A PNG of fasttrain's speedups per case: against the numpy reference and against torch."""
    plt = _pyplot()
    rows = [r for r in result["results"] if r["backend"] in FASTTRAIN_BACKENDS
            and r["backend"] != REFERENCE]
    labels = list(dict.fromkeys(f"{r['kernel']} {r['op']} {r['shape']}" for r in rows))
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.35 * max(len(labels), 4) + 1.5), sharey=True)
    height = 0.8 / max(len(backends), 1)
    for ax, ratio, title in zip(axes, ("vs_numpy", "vs_torch"),
                                ("speedup vs the numpy reference", "speedup vs PyTorch")):
        for j, b in enumerate(backends):
            ys, xs = [], []
            for r in rows:
                if r["backend"] == b and r[ratio]:
                    ys.append(labels.index(f"{r['kernel']} {r['op']} {r['shape']}") + j * height)
                    xs.append(r[ratio])
            ax.barh(ys, xs, height=height, label=b)
        ax.axvline(1, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_title(title)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks([i + 0.4 - height / 2 for i in range(len(labels))], labels, fontsize=8)
    axes[0].invert_yaxis()
    axes[1].legend()
    fig.suptitle(f"fasttrain bench {result['date']}: {result['cpu']}, {result['threads']} threads",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _load(path: str) -> dict:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise BenchError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or "results" not in data:
        raise BenchError(f"{path} is not a fasttrain bench JSON (schema {SCHEMA})")
    return data


def main(args) -> int:
    """The command. Exit status: 0, or 1 when --compare flags a regression (so a script or CI
    job can fail on it), 2 on an error."""
    if args.threshold is not None and not (0 <= args.threshold < 1):
        raise BenchError(f"--threshold must be in [0, 1), got {args.threshold}")
    old = _load(args.compare) if args.compare else None
    if args.plot:
        _pyplot()  # fail before minutes of measuring, not after
    if args.results:
        result = _load(args.results)
    else:
        mode = "tiny" if args.tiny else "quick" if args.quick else "full"
        result = run(parse_kernels(args.kernels), mode, args.threads,
                     log=lambda s: print(s, file=sys.stderr),
                     backends=parse_backends(args.backends))
    print(header(result))
    print(table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        print(f"wrote {args.json}")
    if args.plot:
        plot(result, args.plot)
        print(f"wrote {args.plot}")
    if old is not None:
        report, regressions = compare(old, result, args.threshold)
        print(report)
        return 1 if regressions else 0
    return 0


def _positive_int(text: str) -> int:
    import argparse

    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def _kernel_list(text: str) -> str:
    import argparse

    try:
        parse_kernels(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _backend_list(text: str) -> str:
    import argparse

    try:
        parse_backends(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def add_arguments(p) -> None:
    """The options of `fasttrain bench` (cli.py registers the subcommand)."""
    import argparse

    p.description = (
        "Times each kernel at a few standard shapes on every fasttrain backend and PyTorch "
        "(when installed), interleaved, and prints one table: median, min-max, speedup against "
        "the numpy reference and against PyTorch from the same rounds, and the share of this "
        "machine's limits (memory bandwidth, GEMM FLOP/s) measured at the start. Exit status: "
        "0; 1 when --compare finds a regression; 2 on an error.")
    p.add_argument("--kernels", type=_kernel_list, default=",".join(KERNEL_NAMES),
                   help=f"comma-separated, of {','.join(KERNEL_NAMES)} (default: all)")
    # With Numba's OpenMP threading layer started in the same process, torch's per-tensor
    # AdamW ran ~8x slower here (README, AdamW step); --backends c,numpy,torch leaves numba out.
    p.add_argument("--backends", type=_backend_list, default=",".join(CONTENDERS),
                   help=f"comma-separated, of {','.join(CONTENDERS)} (default: all that load; "
                   "without numpy there is no 'vs numpy')")
    p.add_argument("--quick", action="store_true",
                   help="one shape per kernel, 3 rounds (under a minute on 2 cores)")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="threads for fasttrain, BLAS and torch (default: fasttrain's count)")
    p.add_argument("--json", metavar="FILE", help="write the full results (and environment) here")
    p.add_argument("--compare", metavar="OLD.json",
                   help="print each ratio's change since that run; exit 1 on a regression")
    p.add_argument("--threshold", type=float, default=0.1,
                   help="a ratio that drops by more than this fraction is a regression (0.1)")
    p.add_argument("--plot", metavar="FILE.png",
                   help="bar chart of the speedups (needs matplotlib)")
    p.add_argument("--results", metavar="FILE.json",
                   help="report (and compare, plot) a saved run instead of measuring")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # tests: tiny shapes

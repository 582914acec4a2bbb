"""fasttrain's kernels inside a user's process: each C kernel timed alone and interleaved with
numpy's and PyTorch's own work, as a program that uses all three runs it.

Settings (the contenders), each a fresh process with the same thread count everywhere:

    alone             the kernel back to back, nothing else in the rounds (torch not imported)
    mix memory        rounds of [one thread copying the arrays numpy's GEMMs read (2.25 MB),
                      kernel]: no pool beside fasttrain's, only the caches refilled and a
                      core idle between calls, as single-threaded code between kernel calls
                      leaves them
    mix idle          rounds of [the calling thread busy in Python for IDLE_S, kernel]: no
                      pool, nothing touched, only time away from the kernel, about as long as
                      the numpy and torch work of `mix torch` takes at least (between_ms in
                      the result); what a mix below costs beyond this one is the pools'
    mix numpy         rounds of [numpy's GEMMs, kernel]
    mix torch first   rounds of [numpy's GEMMs, torch's ops, kernel], torch imported before
                      fasttrain (its libgomp is then the one loaded)
    mix torch after   the same, torch imported after fasttrain's kernels loaded

(named "mix ..." so that the table's vs-numpy and vs-torch columns, which are about the numpy
and torch contenders of the other cases, stay empty here: compare each row with `alone`).

numpy's GEMMs are a linear backward's (dy @ W, dy.T @ x, dy.sum(0) at 1024x256x256, on numpy's
OpenBLAS); torch's ops are the same three in torch (MKL, on libgomp's threads). The pools these
bring are what fasttrain/threads.py is about. A round times one call of the kernel; a sample is
the median of BLOCK rounds; `fasttrain bench` starts one process per setting and round (each
gives one sample of every kernel), pytest-benchmark one per setting (ROUNDS_PER_RUN samples).
`gpt chain` is a GPT MLP block's order: layernorm_forward -> linear_forward (C -> 4C) ->
gelu_forward -> linear_forward (4C -> C), at N x C.

    fasttrain bench --kernels interleaved [--shapes 2048x256,2048x1024] [--rounds 5]

The shape is the chain's (N, C); the other kernels run at one fixed shape each (KERNELS).
Named only (DEFAULT = False): 7-8 minutes of subprocesses on 2 cores (one per setting and round).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time

from fasttrain.bench._case import Case

ORDER = 97
DEFAULT = False
ALIASES = ("mixed", "pools")
SHAPES = [(2048, 256), (2048, 1024)]  # (N, C) of the gpt chain
QUICK = SHAPES[:1]
TINY = [(64, 32)]
SETTINGS = ("alone", "mix memory", "mix idle", "mix numpy", "mix torch first", "mix torch after")
BLOCK = 9             # rounds per sample
ROUNDS_PER_RUN = 5    # samples one process gives under pytest-benchmark
OTHER_SHAPE = (1024, 256, 256)  # numpy's and torch's GEMMs: a linear backward's
# mix idle's time away: `mix torch`'s numpy and torch work between two kernel calls took
# 5.0-5.4 ms on our 2-core machine in quiet moments (numpy's 1.6-1.7 ms, torch's 3.3-3.7 ms),
# up to 54 ms in others (numpy's two OpenBLAS threads both busy for 46-48 ms over GEMMs of
# 1.6 ms); the worker reports it (between_ms), and 5 ms is the time away's lower end
IDLE_S = 0.005
# kernel: its shape (the full run's; tiny runs shrink every dimension)
KERNELS = {
    "linear forward": (1024, 256, 256),
    "linear backward": (1024, 256, 256),
    "layernorm forward": (2048, 256),
    "gelu forward": (1024, 512),
    "tanh forward": (1024, 512),
    "crossentropy fwd+bwd": (4096, 256),
    "embedding forward": (256, 64, 8192),
    "attention forward": (4, 4, 128, 64),
    "adamw step": (1_000_000,),
}


def label(shape):
    return "N{} C{}".format(*shape)


def _calls(shape, tiny):
    """{kernel name: zero-argument call on the C backend}, inputs made once."""
    import numpy as np

    from fasttrain import kernels as K

    r = np.random.default_rng(0)

    def a(*s):
        return r.standard_normal(s, dtype=np.float32)

    def dims(s):
        return tuple(max(2, d // 32) for d in s) if tiny else s

    calls = {}
    N, C, OC = dims(KERNELS["linear forward"])
    x, W, b, dy = a(N, C), a(OC, C), a(OC), a(N, OC)
    y, dx, dW, db = (np.empty((N, OC), np.float32), np.empty_like(x), np.empty_like(W),
                     np.empty_like(b))
    calls["linear forward"] = lambda: K.linear_forward(x, W, b, out=y)
    calls["linear backward"] = lambda: K.linear_backward(x, W, dy, dx=dx, dW=dW, db=db)
    N, C = dims(KERNELS["layernorm forward"])
    lx, lw, lb, ly = a(N, C), a(C), a(C), np.empty((N, C), np.float32)
    calls["layernorm forward"] = lambda: K.layernorm_forward(lx, lw, lb, out=ly)
    h = a(*dims(KERNELS["gelu forward"]))
    hy = np.empty_like(h)
    calls["gelu forward"] = lambda: K.gelu_forward(h, out=hy)
    calls["tanh forward"] = lambda: K.tanh_forward(h, out=hy)
    N, V = dims(KERNELS["crossentropy fwd+bwd"])
    logits, targets = a(N, V), r.integers(0, V, N)
    dlogits = np.empty_like(logits)
    calls["crossentropy fwd+bwd"] = lambda: K.softmax_cross_entropy(logits, targets, out=dlogits)
    V, E, N = dims(KERNELS["embedding forward"])
    wte, idx, ey = a(V, E), r.integers(0, V, N), np.empty((N, E), np.float32)
    calls["embedding forward"] = lambda: K.embedding_forward(idx, wte, out=ey)
    B, H, T, hs = dims(KERNELS["attention forward"])
    qkv = a(B, T, 3 * H * hs)
    calls["attention forward"] = lambda: K.attention_forward(qkv, H)
    (n,) = dims(KERNELS["adamw step"])
    p, g, m, v = a(n), a(n), np.zeros(n, np.float32), np.zeros(n, np.float32)
    calls["adamw step"] = lambda: K.adamw_step(p, g, m, v, step=1, lr=1e-3)
    # the GPT MLP block's order of OpenMP kernels and GEMMs
    N, C = shape
    cx, cw, cb = a(N, C), 1 + 0.1 * a(C), 0.1 * a(C)
    W1, b1, W2, b2 = 0.02 * a(4 * C, C), a(4 * C), 0.02 * a(C, 4 * C), a(C)
    cn, c1, c2, c3 = (np.empty((N, C), np.float32), np.empty((N, 4 * C), np.float32),
                      np.empty((N, 4 * C), np.float32), np.empty((N, C), np.float32))

    def chain():
        K.layernorm_forward(cx, cw, cb, out=cn)
        K.linear_forward(cn, W1, b1, out=c1)
        K.gelu_forward(c1, out=c2)
        K.linear_forward(c2, W2, b2, out=c3)
    calls["gpt chain"] = chain
    return calls


def _others(setting, tiny):
    """The work interleaved with each kernel call in `setting`: a copy, a busy wait, or numpy's
    GEMMs then torch's."""
    import numpy as np

    if setting == "alone":
        return []
    N, C, OC = (max(2, d // 32) for d in OTHER_SHAPE) if tiny else OTHER_SHAPE
    r = np.random.default_rng(1)
    x, W, dy = (r.standard_normal(s, dtype=np.float32) for s in ((N, C), (OC, C), (N, OC)))
    if setting == "mix memory":  # one thread reads what numpy_ops reads (x, W, dy), no pool
        src = np.concatenate([x.ravel(), W.ravel(), dy.ravel()])
        dst = np.empty_like(src)
        return [lambda: np.copyto(dst, src)]
    if setting == "mix idle":  # time away only: the calling thread busy, nothing touched
        seconds = IDLE_S / 32 if tiny else IDLE_S

        def busy():
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                pass
        return [busy]

    def numpy_ops():
        dy @ W, dy.T @ x, dy.sum(0)
    if setting == "mix numpy":
        return [numpy_ops]
    import torch

    xt, Wt, dyt = (torch.from_numpy(t) for t in (x, W, dy))

    def torch_ops():
        dyt @ Wt, dyt.T @ xt, dyt.sum(0)
    return [numpy_ops, torch_ops]


# Which threads burn CPU while a kernel runs. Linux gives every thread a CPU clock that the
# other threads of its process can read: clock id ((~tid) << 3) | 6 (MAKE_THREAD_CPUCLOCK(tid,
# CPUCLOCK_SCHED), linux/include/linux/posix-timers.h), exact even while that thread runs.
def _threads() -> set:
    """This process's thread ids (empty where there is no /proc)."""
    try:
        return {int(t) for t in os.listdir("/proc/self/task")}
    except OSError:
        return set()


def _cpu_ns(tids) -> dict:
    out = {}
    for t in tids:
        try:
            out[t] = time.clock_gettime_ns(((~t) << 3) | 6)
        except OSError:  # exited, or not Linux
            pass
    return out


def _cpu_during(call, others, team) -> dict:
    """CPU ms per kernel call of the calling thread, the rest of the kernel's OpenMP team
    (libgomp's workers: torch's ops run on them too) and every other thread (numpy's, scipy's,
    torch's pools), over BLOCK untimed rounds of the setting (the clock reads cost µs)."""
    caller, tids = threading.get_native_id(), sorted(_threads())
    sums = dict.fromkeys(("caller", "team", "other threads"), 0)
    for _ in range(BLOCK):
        for f in others:
            f()
        before = _cpu_ns(tids)
        call()
        after = _cpu_ns(tids)
        for t in after.keys() & before.keys():
            group = "caller" if t == caller else "team" if t in team else "other threads"
            sums[group] += after[t] - before[t]
    return {group: round(ns / BLOCK / 1e6, 4) for group, ns in sums.items()}


def worker(setting: str, shape, threads: int, samples: int, tiny: int, cpu: int,
           chain_only: int = 0) -> None:
    """One setting in this fresh process: prints RESULT {kernel: [seconds per sample]}, the
    median time of the work between two calls (ms), if `cpu` the CPU each group of threads
    spent in a kernel call (_cpu_during, after the timed rounds), and the libgomp and BLAS
    libraries it ran with. `chain_only`: the gpt chain alone (the other kernels' shapes do not
    change with `shape`)."""
    if setting == "mix torch first":
        import torch  # noqa: F401  (before fasttrain: its libgomp is the one loaded)
    import fasttrain
    from fasttrain.kernels._backends import load

    load("c")
    if "torch" in setting:
        import torch

        torch.set_num_threads(threads)
    fasttrain.set_num_threads(threads)
    calls, others = _calls(tuple(shape), tiny), _others(setting, tiny)
    if chain_only:
        calls = {"gpt chain": calls["gpt chain"]}
    started = _threads()
    for call in calls.values():
        call()
    team = _threads() - started  # the OpenMP workers fasttrain's first calls started
    out, between, cpu_ms = {}, [], {}
    for name, call in calls.items():
        for f in (call, *others, call):
            f()
        rounds = []
        for _ in range(samples * BLOCK):
            t0 = time.perf_counter()
            for f in others:
                f()
            t1 = time.perf_counter()
            call()
            rounds.append(time.perf_counter() - t1)
            between.append(t1 - t0)
        out[name] = [statistics.median(rounds[i:i + BLOCK]) for i in range(0, len(rounds), BLOCK)]
        if cpu:
            cpu_ms[name] = _cpu_during(call, others, team)
    with open("/proc/self/maps") as f:  # which libgomp: torch's or the system's (threads.py)
        libs = sorted({line.split()[-1] for line in f if "gomp" in line or "openblas" in line})
    print("RESULT " + json.dumps({"times": out, "between_ms": statistics.median(between) * 1e3,
                                  "cpu_ms": cpu_ms, "libs": libs}), flush=True)


def run_worker(setting: str, shape, samples: int, tiny: bool, cpu: bool = False,
               chain_only: bool = False) -> dict:
    from fasttrain.threads import get_num_threads

    code = ("import sys; from fasttrain.bench.interleaved import worker; worker(sys.argv[1], "
            "[int(d) for d in sys.argv[2].split('x')], *map(int, sys.argv[3:]))")
    cmd = [sys.executable, "-c", code, setting, "x".join(map(str, shape)), str(get_num_threads()),
           str(samples), str(int(tiny)), str(int(cpu)), str(int(chain_only))]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ))
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{setting}: exit {proc.returncode}: {proc.stderr.strip()[-400:]}")
    return json.loads(lines[0][len("RESULT "):])


def cases(shapes, torch_names):
    settings = [s for s in SETTINGS if torch_names or "torch" not in s]
    queued: dict = {}  # (setting, shape, kernel): samples not yet taken, shared by the cases

    def sample(setting, shape, kernel):
        # One sample of every kernel per process: the first case's rounds start the processes
        # A B C A B C, and the later cases take their samples from those, so that every
        # setting's samples are spread over the same minutes (a process giving all of a
        # setting's samples at once met one moment of the shared machine: 2x apart between
        # settings measured a minute apart, in a run at 20:41 UTC).
        key = (setting, tuple(shape))
        if not queued.get((*key, kernel)):
            tiny = min(shape) < 128
            chain_only = tuple(shape) != tuple(shapes[0])  # its cases time the chain only
            for name, times in run_worker(setting, shape, 1, tiny, chain_only=chain_only)[
                    "times"].items():
                queued.setdefault((*key, name), []).extend(times)
        return queued[(*key, kernel)].pop(0)

    def case(shape, kernel):
        def setup(names):
            return {n: (lambda n=n: sample(n, shape, kernel)) for n in names}
        where = label(shape) if kernel == "gpt chain" else "x".join(map(str, KERNELS[kernel]))
        return Case("interleaved", kernel, where, settings, setup, self_timed=True)
    return [case(s, k) for s in shapes for k in ([*KERNELS, "gpt chain"] if s == shapes[0]
                                                 else ["gpt chain"])]



def main(argv=None) -> None:
    """python -m fasttrain.bench.interleaved [SETTING ...]: each setting's kernels, with the CPU
    that each group of threads spent during a call: a pool spinning beside the kernel shows as
    'other threads' well above its figure in `alone`."""
    settings = (argv if argv is not None else sys.argv[1:]) or SETTINGS
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise SystemExit(f"unknown setting(s) {', '.join(map(repr, unknown))}; the settings are "
                         + ", ".join(map(repr, SETTINGS)))
    for setting in settings:
        r = run_worker(setting, SHAPES[0], ROUNDS_PER_RUN, False, cpu=True)
        print(f"{setting}: {r['between_ms']:.2f} ms between calls; CPU ms in a call: "
              "caller, team, other threads")
        for name, t in r["times"].items():
            c = r["cpu_ms"][name]
            print(f"  {name:22s} {statistics.median(t) * 1e3:8.3f} ms   "
                  f"{c['caller']:7.3f} {c['team']:7.3f} {c['other threads']:7.3f}")


if __name__ == "__main__":
    main()

"""Benchmark fixtures: 2 threads everywhere, a pause and an untimed call before each timed test
(thread pools of the other libraries spin after use; see BENCHMARKING.md), the machine's
bandwidth measured once per session to report each result as a fraction of it, and
`contenders` / `measure`, through which every bench_<kernel>.py times the cases of the kernel's
module in fasttrain.bench (the shapes, contenders and rooflines `fasttrain bench` measures).

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE pytest benchmarks/ --benchmark-group-by=group
The interleaved figures (A B C A B C in one process, ratios from the same rounds) come from
`fasttrain bench --kernels <name>` (with --shapes, --rounds, --backends, --memory).
"""
import time

import numpy as np
import pytest

import fasttrain
from fasttrain.bench._case import CONTENDERS, base
from fasttrain.bench.harness import peak_memory
from fasttrain.kernels import backend_status

# Load the C backend (libgomp, scipy's OpenBLAS) before anything imports torch: torch puts its own
# libgomp in the global symbol scope, and a C backend loaded after it would run on that runtime,
# without fasttrain's pool manners (fasttrain/threads.py), and lose a third of a training step to
# spinning threads.
backend_status()

THREADS = 2


def sizes(values, ids=str):
    """pytest.params for the sizes a benchmark runs at, smallest first: every one after the first
    is marked `slow`, so that
        pytest benchmarks/ --benchmark-disable -m "not slow"
    runs each benchmark once, untimed, at its smallest size (.ci/run: proof that every benchmark
    still runs, in a minute instead of three)."""
    return [pytest.param(v, id=ids(v), marks=[pytest.mark.slow] if i else [])
            for i, v in enumerate(values)]


def pytest_configure(config):
    fasttrain.set_num_threads(THREADS)
    try:
        import torch

        torch.set_num_threads(THREADS)
    except ImportError:
        pass


def available(name):
    """A pytest.param for a backend (or "torch"), skipped with the reason if it cannot run."""
    if name == "torch":
        try:
            import torch  # noqa: F401
            why = None
        except ImportError:
            why = "PyTorch is not installed"
    else:
        why = backend_status()[name]
    marks = [pytest.mark.skip(reason=f"{name}: {why}")] if why else []
    return pytest.param(name, id=name, marks=marks)


@pytest.fixture(scope="session")
def bandwidth():
    """Read+write bandwidth of this machine in GB/s, measured now (fasttrain.limits)."""
    if backend_status()["c"] is not None:
        return None
    from fasttrain.limits import memory_bandwidth

    return memory_bandwidth(threads=THREADS)["gbps"]


@pytest.fixture
def settle():
    """Call with the function to time: sleeps 0.2 s, then makes one untimed call."""
    def run(fn):
        time.sleep(0.2)
        fn()
        return fn
    return run


def rng():
    return np.random.default_rng(0)


def record(benchmark, *, nbytes=None, flops=None, machine_gbps=None, **info):
    """Put the run's rates in extra_info: GB/s for `nbytes` moved per call (and the fraction of
    `machine_gbps`), GFLOP/s for `flops` per call. With --benchmark-disable there are no timings
    (each test just runs once to prove it works), so only `info` is recorded."""
    benchmark.extra_info.update(threads=THREADS, **info)
    stats = getattr(benchmark, "stats", None)
    if stats is None:
        return
    seconds = stats.stats.median
    if nbytes is not None:
        gbps = nbytes / seconds / 1e9
        benchmark.extra_info["gbps"] = round(gbps, 2)
        if machine_gbps:
            benchmark.extra_info.update(machine_gbps=round(machine_gbps, 2),
                                        fraction_of_bandwidth=round(gbps / machine_gbps, 3))
    if flops is not None:
        benchmark.extra_info["gflops"] = round(flops / seconds / 1e9, 1)


def contenders(kernel):
    """pytest.params (case, contender) for every case of a kernel's case module (its full
    run's shapes and those only --shapes asks for) and every contender, extras included; those
    past the first shape are `slow` (sizes), those that cannot run are skipped with the reason."""
    params = []
    for i, shape in enumerate([*kernel.SHAPES, *getattr(kernel, "MORE", [])]):
        for case in kernel.cases([shape], ["torch"]):
            for name in [*case.contenders, *case.extras]:
                lib = base(name)
                marks = list(available(lib).marks) if lib in CONTENDERS else []
                if i:
                    marks.append(pytest.mark.slow)
                ident = f"{case.op}-{case.shape}-{name}".replace(" ", "_").replace(",", "")
                params.append(pytest.param(case, name, id=ident, marks=marks))
    return params


def measure(benchmark, settle, case, name, *, machine_gbps=None, memory=False):
    """Time one contender of one case (pytest-benchmark), after a settle; record its rate (and,
    with memory=True and timings on, its extra peak memory)."""
    call = case.setup([name])[name]
    timed = not getattr(benchmark, "disabled", False)
    if timed:
        settle(call)
    benchmark.group = f"{case.kernel} {case.op} {case.shape}"
    info = {"shape": case.shape}
    if memory and timed:
        extra, traced = peak_memory(call)
        info.update(extra_mb=None if extra is None else round(extra, 1), traced_mb=round(traced, 1))
    benchmark(call)
    record(benchmark, nbytes=case.nbytes, flops=case.flops, machine_gbps=machine_gbps, **info)
    stats = getattr(benchmark, "stats", None)
    if case.tokens is not None and stats is not None:
        benchmark.extra_info["tokens_per_s"] = round(case.tokens / stats.stats.median)

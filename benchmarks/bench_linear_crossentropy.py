"""Fused linear + cross-entropy, forward and backward, float32, 2 threads: time and extra memory.

  fused    fasttrain.linear_cross_entropy (C backend, default chunks), into preallocated dx, dW, db
  unfused  linear_forward into a preallocated (N, V) logits buffer, softmax_cross_entropy over it
           in place, linear_backward: the unfused fasttrain path (the MLP's fused_head=False)
  torch    F.cross_entropy(F.linear(x, W, b), t).backward()

extra_info: "extra_mb", the peak resident memory above the level before a warm call (VmHWM
after resetting it through /proc/self/clear_refs, Linux), which counts numpy's and PyTorch's
buffers alike (PyTorch's includes its new gradients, (N*C + V*C + V) floats, since autograd
allocates them per call; fasttrain writes into preallocated ones); "traced_mb", the peak of
numpy's allocations during the call (tracemalloc; PyTorch's are not traced); "logits_mb",
N x V float32 for comparison. The unfused path allocates its (N, V) logits inside the call, as
the fused kernel allocates its (chunk_rows, V) buffer: both pay the same first touch of fresh
pages, and both buffers are counted.

Under --benchmark-disable the largest shape is skipped: each of its calls takes seconds (CI runs
the first shape only: conftest.sizes).
Interleaved figures (A B C A B C, 0.2 s pause and an untimed call before each):
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_linear_crossentropy.py \
        [repeats] [shape index ...]
"""
import os
import sys
import time
import tracemalloc

import numpy as np
import pytest

import fasttrain
from fasttrain.kernels import backend_status

sys.path.insert(0, os.path.dirname(__file__))
from conftest import THREADS, available, record, rng, sizes  # noqa: E402

SHAPES = [(4096, 256, 256), (8192, 512, 8192), (8192, 768, 50257)]
LARGEST = SHAPES[-1]
VARIANTS = [pytest.param("fused", id="fused", marks=available("c").marks),
            pytest.param("unfused", id="unfused", marks=available("c").marks),
            available("torch")]


def make_call(variant, N, C, V):
    r = rng()
    x = r.standard_normal((N, C), dtype=np.float32)                         # (N, C)
    W = r.standard_normal((V, C), dtype=np.float32) * np.float32(C ** -0.5)  # (V, C)
    b = np.zeros(V, dtype=np.float32)                                       # (V,)
    t = r.integers(0, V, size=N)                                            # (N,)
    if variant == "torch":
        import torch
        import torch.nn.functional as F

        xt, Wt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(W).requires_grad_()
        bt, tt = torch.from_numpy(b).requires_grad_(), torch.from_numpy(t)

        def call():
            xt.grad = Wt.grad = bt.grad = None
            F.cross_entropy(F.linear(xt, Wt, bt), tt).backward()
        return call
    dx, dW, db = np.empty_like(x), np.empty_like(W), np.empty_like(b)
    if variant == "fused":
        return lambda: fasttrain.linear_cross_entropy(x, W, t, b, dx=dx, dW=dW, db=db,
                                                      backend="c")

    def unfused():
        logits = np.empty((N, V), dtype=np.float32)                        # (N, V)
        fasttrain.linear_forward(x, W, b, out=logits, backend="c")
        fasttrain.softmax_cross_entropy(logits, t, out=logits, backend="c")
        fasttrain.linear_backward(x, W, logits, dx=dx, dW=dW, db=db, backend="c")
    return unfused


def _rss_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def peak_memory(call):
    """(extra resident MB at the call's peak, or None where Linux's clear_refs is missing;
    peak MB of traced numpy allocations) for one call."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        before = _rss_kb("VmRSS")
    except OSError:
        before = None
    tracemalloc.start()
    call()
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    extra = None if before is None else (_rss_kb("VmHWM") - before) / 1024
    return extra, traced / 2**20


@pytest.mark.parametrize("shape", sizes(SHAPES, lambda s: "x".join(map(str, s))))
@pytest.mark.parametrize("variant", VARIANTS)
def test_linear_crossentropy(benchmark, settle, request, variant, shape):
    disabled = request.config.getoption("benchmark_disable")
    if shape == LARGEST and disabled:
        pytest.skip("the largest shape takes seconds a call; run it with timings on")
    N, C, V = shape
    call = make_call(variant, N, C, V)
    extra = traced = None
    if not disabled:  # untimed (CI): the one call below proves it runs, nothing more
        settle(call)
        extra, traced = peak_memory(call)
    benchmark.group = f"linear_crossentropy {N}x{C}x{V}"
    benchmark.pedantic(call, rounds=3 if shape == LARGEST else 5, iterations=1)
    record(benchmark, flops=6 * N * C * V, shape=list(shape), logits_mb=round(N * V * 4 / 2**20),
           extra_mb=None if extra is None else round(extra, 1),
           traced_mb=None if traced is None else round(traced, 1))


def main(argv):
    """Interleaved: for each shape, A B C A B C ..., a 0.2 s pause and an untimed call before
    each timed one; medians, min-max, ratios to unfused from the same run, and memory.
    argv: [repeats (default 5; 3 at the largest shape)] [shape index ...] (default all)."""
    if backend_status()["c"] is not None:
        sys.exit("the C backend does not load")
    import torch  # after the C backend (conftest: why)

    fasttrain.set_num_threads(THREADS)
    torch.set_num_threads(THREADS)
    repeats = int(argv[0]) if argv else None
    shapes = [SHAPES[int(i)] for i in argv[1:]] or SHAPES
    for N, C, V in shapes:
        print(f"(N, C, V) = ({N}, {C}, {V}), logits {N * V * 4 / 2**20:.0f} MB", flush=True)
        calls = {v: make_call(v, N, C, V) for v in ("fused", "unfused", "torch")}
        for v, call in calls.items():
            call()  # warm: the preallocated outputs' pages are resident, not counted below
            extra, traced = peak_memory(call)
            print(f"  {v:8s} extra RSS {extra:7.1f} MB  traced {traced:7.1f} MB", flush=True)
        times = {v: [] for v in calls}
        for _ in range(repeats or (5 if (N, C, V) != LARGEST else 3)):
            for v, call in calls.items():
                time.sleep(0.2)
                call()
                t0 = time.perf_counter()
                call()
                times[v].append(time.perf_counter() - t0)
        med = {v: float(np.median(t)) for v, t in times.items()}
        for v, t in times.items():
            print(f"  {v:8s} {med[v] * 1e3:9.1f} ms ({min(t) * 1e3:.1f}-{max(t) * 1e3:.1f})"
                  f"  x{med[v] / med['unfused']:.2f} of unfused"
                  f"  {6 * N * C * V / med[v] / 1e9:6.1f} GFLOP/s", flush=True)
        del calls


if __name__ == "__main__":
    main(sys.argv[1:])

"""Linear layer forward and backward, float32, 2 threads.

Contenders: fasttrain's c, numba and numpy backends (through the public front, writing into
preallocated buffers), torch autograd (F.linear; the backward is y.backward(dy) on a retained
graph with the grads set to None first, as optimizer.zero_grad() leaves them), and "sgemm": the
bare BLAS GEMMs the kernel is made of (one for the forward; dy @ W and dy.T @ x for the
backward), called through scipy.linalg.blas on transposed views, so on the very OpenBLAS that
the c backend uses. The c backend's backward should be within 5% of the sgemm pair.
extra_info: GFLOP/s counting 2*N*C*OC for the forward and 4*N*C*OC for the backward (the bias is
O(N*OC) and not counted), the thread count, and the BLAS libraries that threadpoolctl sees.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE pytest benchmarks/bench_linear.py

pytest-benchmark times each contender in a block of its own, minutes apart from the others on a
noisy shared machine. For the README's ratios, run this file as a script: it times the
contenders interleaved (A B C ... A B C ...), settling before each, and prints medians, min-max,
GFLOP/s and the ratios from that one run (optionally fewer contenders or one direction):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_linear.py \
        [rounds [c,numba,numpy,torch,sgemm [backward,forward]]]
"""
import os
import sys
import time

import numpy as np
import pytest

import fasttrain
from conftest import THREADS, available, rng, sizes
from fasttrain.bench import LINEAR_SHAPES as SHAPES  # the shapes `fasttrain bench` runs

NAMES = ["c", "numba", "numpy", "torch", "sgemm"]
BACKENDS = [available(name) for name in NAMES[:4]] + [pytest.param("sgemm", id="sgemm")]


def flops(direction, N, C, OC):
    return (2 if direction == "forward" else 4) * N * C * OC


def make_call(backend, direction, N, C, OC):
    """A zero-argument function running one forward or backward on fresh float32 data."""
    r = rng()
    x = r.standard_normal((N, C), dtype=np.float32)   # (N, C)
    W = r.standard_normal((OC, C), dtype=np.float32)  # (OC, C)
    b = r.standard_normal(OC, dtype=np.float32)       # (OC,)
    dy = r.standard_normal((N, OC), dtype=np.float32)  # (N, OC)
    y = np.empty((N, OC), dtype=np.float32)
    dx, dW, db = np.empty_like(x), np.empty_like(W), np.empty_like(b)
    if backend == "torch":
        import torch
        import torch.nn.functional as F

        xt, Wt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, W, b))
        if direction == "forward":
            return lambda: F.linear(xt, Wt, bt)
        yt, dyt = F.linear(xt, Wt, bt), torch.from_numpy(dy)

        def backward():
            xt.grad = Wt.grad = bt.grad = None
            yt.backward(dyt, retain_graph=True)
        return backward
    if backend == "sgemm":
        from scipy.linalg import blas

        # Column-major views of row-major arrays: y.T = W @ x.T, dx.T = W.T @ dy.T,
        # dW.T = x.T @ dy; every operand and result is a Fortran-ordered view, so f2py copies
        # nothing (checked below) and the calls are the bare GEMMs.
        if direction == "forward":
            def forward():
                return blas.sgemm(1.0, W.T, x.T, trans_a=1, c=y.T, overwrite_c=1)
            assert np.shares_memory(forward(), y)
            return forward

        def pair():
            return (blas.sgemm(1.0, W.T, dy.T, c=dx.T, overwrite_c=1),
                    blas.sgemm(1.0, x.T, dy.T, trans_b=1, c=dW.T, overwrite_c=1))
        got = pair()
        assert np.shares_memory(got[0], dx) and np.shares_memory(got[1], dW)
        return pair
    if direction == "forward":
        return lambda: fasttrain.linear_forward(x, W, b, out=y, backend=backend)
    return lambda: fasttrain.linear_backward(x, W, dy, dx=dx, dW=dW, db=db, backend=backend)


def blas_kernels():
    """The BLAS libraries loaded, with the kernel each runs (OPENBLAS_CORETYPE can force one)."""
    import threadpoolctl

    return [f"{lib['internal_api']} {lib.get('version')} {lib.get('architecture')} "
            f"{lib['num_threads']}T {os.path.basename(lib['filepath'])}"
            for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]


@pytest.mark.parametrize("shape", sizes(SHAPES, lambda s: "x".join(map(str, s))))
@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_linear(benchmark, settle, backend, direction, shape):
    N, C, OC = shape
    call = settle(make_call(backend, direction, N, C, OC))
    benchmark.group = f"linear {direction} {N}x{C}x{OC}"
    benchmark(call)
    benchmark.extra_info.update(shape=list(shape), threads=THREADS, blas=blas_kernels())
    stats = getattr(benchmark, "stats", None)  # None under --benchmark-disable
    if stats is not None:
        gflops = flops(direction, N, C, OC) / stats.stats.median / 1e9
        benchmark.extra_info["gflops"] = round(gflops, 1)


# ---------------------------------------------------------------------------------------------
# the interleaved run behind the README's table

def _time(call, seconds):
    """Per-call seconds of `call`, repeated for about `seconds`, after a settle: 0.2 s (the other
    libraries' thread pools stop spinning, see BENCHMARKING.md), then untimed calls for 50 ms
    (this pool's threads wake, the cores clock up; short blocks right after idling read 1.5x
    slow at 64x64x64)."""
    time.sleep(0.2)
    n, t0 = 0, time.perf_counter()
    while n == 0 or time.perf_counter() - t0 < 0.05:
        call()
        n += 1
    reps = max(1, round(seconds * n / (time.perf_counter() - t0)))
    t0 = time.perf_counter()
    for _ in range(reps):
        call()
    return (time.perf_counter() - t0) / reps


def interleaved(rounds=7, contenders=",".join(NAMES), directions="backward,forward"):
    fasttrain.set_num_threads(THREADS)
    names = [n for n in contenders.split(",")
             if n == "sgemm" or (n in NAMES and not available(n).marks)]
    if "torch" in names:
        import torch

        torch.set_num_threads(THREADS)
    print(f"threads {THREADS}; BLAS: " + "; ".join(blas_kernels()))
    print("ratios: the median over rounds of (other's time / this one's) in the same round")
    for direction in directions.split(","):
        for N, C, OC in SHAPES:
            calls = {n: make_call(n, direction, N, C, OC) for n in names}
            times = {n: [] for n in names}
            for _ in range(rounds):
                for n in names:
                    times[n].append(_time(calls[n], seconds=0.3))
            t = {n: np.array(v) for n, v in times.items()}
            print(f"\n{direction} N, C, OC = {N}, {C}, {OC}")
            for n in names:
                med = float(np.median(t[n]))
                ratios = "  ".join(f"{other} / {n} {np.median(t[other] / t[n]):5.2f}"
                                   for other in ("numpy", "torch", "sgemm")
                                   if other in t and other != n)
                print(f"  {n:6s} {med * 1e3:9.3f} ms ({t[n].min() * 1e3:.3f}-"
                      f"{t[n].max() * 1e3:.3f})  {flops(direction, N, C, OC) / med / 1e9:6.1f}"
                      f" GFLOP/s  {ratios}")
            del calls


if __name__ == "__main__":
    interleaved(*(int(a) if i == 0 else a for i, a in enumerate(sys.argv[1:4])))

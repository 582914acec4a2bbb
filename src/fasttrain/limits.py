"""This machine's limits, measured on the spot: what bandwidth-bound kernels are divided by.

Read+write memory bandwidth: an in-place streaming scale (a *= s, C with OpenMP) over an array
far larger than the last-level cache; every byte is read once and written once, the same
traffic pattern as an in-place fused kernel. The best median over thread counts 1..threads is
reported, since with 2 threads the figure is bimodal on shared machines.
"""
from __future__ import annotations

import time

import numpy as np


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: fault the pages in, wake the thread pool
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def memory_bandwidth(nbytes: int = 256 << 20, threads: int | None = None,
                     repeats: int = 7) -> dict:
    """In-place read+write bandwidth in GB/s (1e9 bytes/s), counting 2 * nbytes per pass.

    Returns {"gbps": best, "per_threads": {n: gbps}, "nbytes": nbytes}.
    """
    from fasttrain.kernels.c import runtime
    from fasttrain.threads import get_num_threads

    threads = threads or get_num_threads()
    a = np.ones(nbytes // 4, dtype=np.float32)
    per_threads = {}
    for n in range(1, threads + 1):
        seconds = _median_seconds(lambda: runtime.stream_scale(a, 1.0, n), repeats)
        per_threads[n] = 2 * a.nbytes / seconds / 1e9
    return {"gbps": max(per_threads.values()), "per_threads": per_threads, "nbytes": a.nbytes}


def gemm_flops(n: int = 4096, repeats: int = 3) -> dict:
    """float32 GEMM rate in GFLOP/s (2 n^3 flops per call): C = A @ B at n x n x n through
    scipy's BLAS (the library the linear kernels call), on preallocated Fortran-ordered arrays
    so that nothing is copied or allocated per call. BLAS uses its own thread count
    (fasttrain.set_num_threads sets it through threadpoolctl). The median of `repeats` timed
    calls after one warm-up.

    Returns {"gflops": median, "n": n}.
    """
    from scipy.linalg import blas

    from fasttrain.threads import blas_loaded

    blas_loaded()  # scipy.linalg.blas may have just loaded scipy's OpenBLAS: give it our count
    r = np.random.default_rng(0)
    a = np.asfortranarray(r.standard_normal((n, n), dtype=np.float32))
    b = np.asfortranarray(r.standard_normal((n, n), dtype=np.float32))
    c = np.zeros((n, n), dtype=np.float32, order="F")

    def call():
        return blas.sgemm(1.0, a, b, c=c, overwrite_c=1)

    assert np.shares_memory(call(), c), "sgemm copied its output: the probe would time a copy"
    seconds = _median_seconds(call, repeats)
    return {"gflops": 2 * n**3 / seconds / 1e9, "n": n}

"""The library's thread count: one number, kept here, passed to every kernel call.

OpenMP's omp_set_num_threads() changes only the calling thread's setting, so a count set from
one Python thread would not reach kernels called from another. fasttrain keeps the count itself
and hands it to each parallel region (`num_threads(nthreads)` in csrc/, numba.set_num_threads
before each Numba call).

BLAS has thread pools of its own: numpy's OpenBLAS (the reference's GEMMs) and scipy's, a separate
library that loads with scipy.linalg (the GEMMs of the C and Numba linear kernels). The same count
governs them, through threadpoolctl: set_num_threads() applies it to every BLAS loaded, and a
backend that loads a BLAS calls blas_loaded() once. Applying it costs milliseconds, so it is done
then and never per kernel call (OpenBLAS's count is process-wide, unlike OpenMP's).
No kernel runs an OpenMP team and BLAS threads at once (linear.c has no OpenMP region, and says
why; linear_crossentropy.c opens its team only between its GEMMs). Between kernels both pools still busy-wait for a while after their work
(libgomp for milliseconds, OpenBLAS up to ~0.1 s, yielding), so alternating OpenMP kernels with
BLAS ones on 2 cores costs time: 2.3x the sum of the two alone for a cross-entropy followed by a
linear backward (1024x4096 logits, 1024x256x256). OMP_WAIT_POLICY=passive and
OPENBLAS_THREAD_TIMEOUT=4 in the environment bring that to about 1.25x.
"""
from __future__ import annotations

import contextlib
import os
import threading

_lock = threading.Lock()
_num_threads: int | None = None  # None: not set yet, use the default


def default_num_threads() -> int:
    """OMP_NUM_THREADS if it is set to a positive integer, else the cores this process may use."""
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def set_num_threads(n: int) -> None:
    """Set the number of threads every fasttrain kernel uses, from any Python thread."""
    if isinstance(n, bool) or not hasattr(n, "__index__"):
        raise TypeError(f"set_num_threads expects an integer, got {type(n).__name__}")
    n = n.__index__()
    if n < 1:
        raise ValueError(f"set_num_threads expects n >= 1, got {n}")
    global _num_threads
    with _lock:
        _num_threads = n
        _limit_blas(n)


def blas_loaded() -> None:
    """Give every BLAS loaded in this process the library's thread count. Call once after
    importing something that loads a BLAS (scipy.linalg loads scipy's own OpenBLAS)."""
    get_num_threads()  # settles the default
    with _lock:  # read under the lock: a concurrent set_num_threads() is applied after, not lost
        _limit_blas(_num_threads)


def _limit_blas(n: int) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n, user_api="blas")  # called, not entered: the limit stays


def get_num_threads() -> int:
    """The thread count kernels use: set_num_threads(), else OMP_NUM_THREADS, else the cores."""
    global _num_threads
    if _num_threads is None:
        with _lock:
            if _num_threads is None:
                _num_threads = default_num_threads()
    return _num_threads


# How the thread pools wait, set while fasttrain's native libraries load.
#
# A training step alternates our OpenMP kernels (libgomp's pool) with GEMMs (OpenBLAS's pool,
# scipy's copy). After a call each pool keeps its threads spinning: libgomp for GOMP_SPINCOUNT =
# 300,000 pause loops (milliseconds on these CPUs), OpenBLAS for 2^28 cycles (about 0.1 s). The
# next call of the other pool then finds its cores taken, and its static split of the work waits
# for the slowest thread: on 2 cores the default MLP's step took 70 ms instead of 23.5 ms.
# Both libraries read their setting once, when they load, so fasttrain sets these two while it
# loads them (a value the user set wins), then restores the environment, so that libraries
# loaded later (PyTorch's own libgomp, say) see exactly what the user set. A library that was
# already loaded keeps its setting: load fasttrain's kernels before scipy.linalg and before
# torch (torch puts its libgomp in the global symbol scope, and our kernels would then bind to
# it, with torch's default spinning: the step above took 30 ms instead of 20 that way).
POOL_MANNERS = {
    "GOMP_SPINCOUNT": "1000",         # libgomp: spin briefly, then sleep on a futex
    "OPENBLAS_THREAD_TIMEOUT": "4",   # OpenBLAS: spin 2^4 cycles, then sleep
}


@contextlib.contextmanager
def loading_native_libraries():
    """Set POOL_MANNERS (unless already set) while native libraries load; restore after."""
    added = {k: v for k, v in POOL_MANNERS.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)

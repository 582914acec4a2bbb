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
No kernel runs an OpenMP team and BLAS threads at once (the linear kernels have no OpenMP region:
csrc/linear.c says why). Between kernels both pools still busy-wait for a while after their work
(libgomp for milliseconds, OpenBLAS up to ~0.1 s, yielding), so alternating OpenMP kernels with
BLAS ones on 2 cores costs time: 2.3x the sum of the two alone for a cross-entropy followed by a
linear backward (1024x4096 logits, 1024x256x256). OMP_WAIT_POLICY=passive and
OPENBLAS_THREAD_TIMEOUT=4 in the environment bring that to about 1.25x.
"""
from __future__ import annotations

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

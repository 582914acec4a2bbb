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

The C backend's GEMMs run on fasttrain's OpenMP team, not on BLAS's pool (gemm_team below):
each thread of the team makes one single-threaded GEMM call for its block of rows. Why: every
pool keeps its threads spinning for a while after its work, and on 2 cores a spinning pool
takes the core the next pool needs. A process that uses fasttrain beside numpy and PyTorch holds
four pools: libgomp (ours, and PyTorch's: both bind to the one libgomp.so.1 loaded first),
numpy's OpenBLAS, scipy's OpenBLAS and, inside libgomp, MKL's threads. With the GEMMs on
scipy's pool, fasttrain's linear backward at 1024x256x256 took 10-120 ms instead of 1.8 in
rounds with numpy and torch GEMMs (torch imported first: libgomp then spins 300,000 rounds, its
default), because each GEMM had to wake scipy's sleeping worker onto a core that libgomp's
spinning worker held. On the team, fasttrain's OpenMP kernels and GEMMs, and PyTorch's ops,
take turns on the same threads, which are awake when the next region starts.
"""
from __future__ import annotations

import contextlib
import os
import sys
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
    global _num_threads, _gemm_saved
    with _lock:
        _num_threads = n
        _limit_blas(n)
        if _gemm_depth:  # a GEMM team is running: it keeps 1, and restores n when it ends
            _gemm_saved = n
            _gemm_blas["set"](1)


def blas_loaded() -> None:
    """Give every BLAS loaded in this process the library's thread count. Call once after
    importing something that loads a BLAS (scipy.linalg loads scipy's own OpenBLAS)."""
    get_num_threads()  # settles the default
    with _lock:  # read under the lock: a concurrent set_num_threads() is applied after, not lost
        _limit_blas(_num_threads)
        _find_gemm_blas()


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
# loaded later see exactly what the user set. (PyTorch imported later loads no libgomp of its
# own: its libgomp.so.1 has the same name, so the dynamic loader hands it ours.) A library that
# was already loaded keeps its setting: PyTorch imported first brings its libgomp with the
# default spin, which our kernels then bind to (the step above took 30 ms instead of 20 that
# way); shorten_libgomp_spin below is what fasttrain does then.
POOL_MANNERS = {
    "GOMP_SPINCOUNT": "1000",         # libgomp: spin briefly, then sleep on a futex
    "OPENBLAS_THREAD_TIMEOUT": "4",   # OpenBLAS: spin 2^4 cycles, then sleep
}


def libgomp_path() -> str | None:
    """The libgomp mapped into this process, None if none (or not Linux)."""
    try:
        with open("/proc/self/maps") as f:
            return next((line.split()[-1] for line in f if "libgomp" in line), None)
    except OSError:
        return None


def libgomp_loaded() -> bool:
    return libgomp_path() is not None


# When libgomp was loaded before fasttrain (by torch, imported first: PyTorch ships a libgomp.so.1
# and fasttrain's kernels then bind to it), it read its wait settings without POOL_MANNERS: its
# idle workers spin 300,000 rounds. On 2 busy cores that made every OpenMP kernel wait for a
# descheduled worker at its closing barrier: layernorm_forward at 2048x256 took 16 ms a call
# instead of 0.4, back to back with nothing else running, and torch's own matmul 18-32 ms
# instead of 8. libgomp cannot be told later, but its documented rule gives a way: "if there
# are more OpenMP threads than available CPUs", its threads spin 100 rounds (GOMP_SPINCOUNT in
# libgomp's manual). So fasttrain parks one more OpenMP thread: a Python thread runs one empty
# region of 2 threads and then sleeps for good, its libgomp worker asleep too (two idle
# threads, no CPU). That is one thread more than the cores when the teams already fill them
# (fasttrain's count defaults to the cores); with fewer threads than cores the spinning costs
# little anyway. Only when the user set neither GOMP_SPINCOUNT nor OMP_WAIT_POLICY.
LIBGOMP_STATE = {"loaded_before_fasttrain": None, "spin": None}  # for `fasttrain info`


_gomp_loaded_by_us = False  # libgomp first loaded inside loading_native_libraries()


def shorten_libgomp_spin(park_team) -> None:
    """Called once the C backend has loaded: where a libgomp loaded before fasttrain runs its
    default spin, park a team so that it spins briefly (above: why). `park_team(n)` is
    kernels/c/runtime.park_team."""
    loaded_before = libgomp_loaded() and not _gomp_loaded_by_us
    user = {k: os.environ[k] for k in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY") if k in os.environ}
    LIBGOMP_STATE["loaded_before_fasttrain"] = loaded_before
    if user:
        LIBGOMP_STATE["spin"] = "as the environment sets: " + ", ".join(
            f"{k}={v}" for k, v in user.items())
    elif not loaded_before:
        LIBGOMP_STATE["spin"] = (f"GOMP_SPINCOUNT={POOL_MANNERS['GOMP_SPINCOUNT']} "
                                 "(set by fasttrain while it loaded)")
    else:
        ready = threading.Event()

        def parked():
            park_team(2)
            ready.set()
            threading.Event().wait()  # for good: the team lives as long as this thread
        threading.Thread(target=parked, name="fasttrain-parked-openmp-team", daemon=True).start()
        ready.wait()
        LIBGOMP_STATE["spin"] = ("100 rounds: loaded before fasttrain with the default spin "
                                 "(300,000), shortened by one parked OpenMP team")


@contextlib.contextmanager
def loading_native_libraries():
    """Set POOL_MANNERS (unless already set) while native libraries load; restore after."""
    global _gomp_loaded_by_us
    added = {k: v for k, v in POOL_MANNERS.items() if k not in os.environ}
    gomp_before = libgomp_loaded()
    os.environ.update(added)
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)
        if not gomp_before and libgomp_loaded():
            _gomp_loaded_by_us = True


# What is left beside numpy and PyTorch, and why fasttrain leaves it. Measured per thread
# (bench/interleaved.py: each thread's CPU clock read around a kernel call; 2 cores):
# - numpy's OpenBLAS worker spins (yields) for up to 2^28 cycles, about 0.1 s, after each numpy
#   GEMM, through any torch ops after it and through our next kernel: in rounds of [numpy's
#   GEMMs, torch's ops, kernel] it burnt 0.34-0.43 ms of CPU during an embedding forward of
#   0.37-0.47 ms. numpy loads it before fasttrain can set OPENBLAS_THREAD_TIMEOUT, and setting
#   it to 1 thread would slow the user's numpy: the user's to set (the README says how).
# - PyTorch starts no thread that runs during our kernels: one pthreadpool worker (asleep),
#   and its GEMMs (MKL) and reductions run on the libgomp worker that our kernels use. What its
#   ops cost a kernel is the time they take (4-12 ms in those rounds): the kernel's caches go
#   cold and its OpenMP worker falls asleep, and a woken worker mostly lands on the caller's
#   core, so a short region runs on one core (a 2-thread region of 40 µs a thread: both
#   threads on one CPU in 33-42 of 42 calls after other work, 70-260 µs; back to back, the
#   worker still spinning, on two CPUs in 200 of 200, 32 µs). A Python busy loop of 5 ms
#   before each call, no pool at all, slowed the same kernels about as much as torch's ops
#   (embedding forward 1.5-2.4x against 1.8-2.5x, layernorm 1.1-1.7x against 1.1-1.4x, AdamW
#   1.2-1.8x against 1.1-1.4x; one process, blocks of rounds interleaved). A longer spin
#   keeps the worker awake but takes the core that the caller and the other pools need
#   (GOMP_SPINCOUNT 30,000: AdamW 1.2-7x in those rounds; 300,000: layernorm 1.5-70x); waking
#   the team before the call won back 5-15%; pinning threads to cores would change threads
#   that PyTorch and the user share.


# GEMMs on fasttrain's OpenMP team.
#
# csrc/linear.c splits a GEMM's output rows over an OpenMP team of get_num_threads() threads,
# and each thread calls scipy's sgemm/dgemm once for its rows. OpenBLAS's count is process-wide,
# so for the length of the call it is set to 1 (otherwise each of those calls would start
# OpenBLAS's own workers: 2 pools on 2 cores again) and then restored: between fasttrain's calls
# scipy's BLAS keeps the count it had, for the user's scipy.linalg. Calls from several Python
# threads at once nest: the first one in sets 1, the last one out restores.
# Small GEMMs (at most GEMM_ONE_CALL_MAX multiply-adds) are one call on the calling thread, as
# OpenBLAS itself runs them, and need no switch.
GEMM_ONE_CALL_MAX = 64 * 64 * 64  # csrc/linear.h's GEMM_ONE_CALL_MAX

_gemm_blas: dict | None = None  # {"filepath", "set", "get"} of the BLAS the C GEMMs call
_gemm_depth = 0   # calls now inside gemm_team
_gemm_saved = 0   # the BLAS count to restore when the last one leaves


def _find_gemm_blas() -> None:
    """Find the set/get-threads functions of the BLAS behind scipy.linalg.cython_blas: the
    OpenBLAS in scipy's own folder (its wheels bundle one), else the only OpenBLAS loaded. None
    found (MKL, two candidates): the GEMMs stay on that BLAS's pool, and `fasttrain info` says
    so."""
    global _gemm_blas
    if _gemm_blas is not None or "scipy.linalg" not in sys.modules:
        return
    import ctypes

    import scipy
    from threadpoolctl import threadpool_info

    where = os.path.dirname(os.path.dirname(os.path.abspath(scipy.__file__)))
    openblas = [lib["filepath"] for lib in threadpool_info()
                if lib.get("internal_api") == "openblas"]
    mine = [p for p in openblas if os.path.abspath(p).startswith(os.path.join(where, "scipy"))]
    candidates = mine or (openblas if len(openblas) == 1 else [])
    if len(candidates) != 1:
        return
    lib = ctypes.CDLL(candidates[0])  # already loaded: the same handle
    for prefix, suffix in (("scipy_", ""), ("", ""), ("scipy_", "64_"), ("", "64_")):
        setter = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
        getter = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
        if setter is not None and getter is not None:
            setter.argtypes, setter.restype = [ctypes.c_int], None
            getter.argtypes, getter.restype = [], ctypes.c_int
            _gemm_blas = {"filepath": candidates[0], "set": setter, "get": getter}
            return


def gemm_team(macs: int) -> int:
    """Enter a C GEMM call of `macs` multiply-adds: the team size to pass to C (1: one GEMM
    call on BLAS's own threads, for small GEMMs or a BLAS that cannot be switched). A result
    above 1 must be matched by gemm_team_done() after the call."""
    n = get_num_threads()
    if n == 1 or macs <= GEMM_ONE_CALL_MAX or _gemm_blas is None:
        return 1
    global _gemm_depth, _gemm_saved
    with _lock:
        if _gemm_depth == 0:
            _gemm_saved = _gemm_blas["get"]()
            _gemm_blas["set"](1)
        _gemm_depth += 1
    return n


def gemm_team_done() -> None:
    """Leave a C GEMM call that gemm_team() gave a team: the last one out restores BLAS's count."""
    global _gemm_depth
    with _lock:
        _gemm_depth -= 1
        if _gemm_depth == 0:
            _gemm_blas["set"](_gemm_saved)


def gemm_policy() -> dict:
    """Where the C GEMMs run, for `fasttrain info`."""
    if _gemm_blas is None:
        return {"on": "blas", "blas": None}
    return {"on": "team", "blas": _gemm_blas["filepath"]}

"""`fasttrain info`: what is installed, what loaded, and what this machine will run."""
from __future__ import annotations

import os
import platform
import sys


def collect() -> dict:
    """The facts as a dict (also recorded by the benchmarks next to their figures)."""
    import numpy as np
    import threadpoolctl

    import fasttrain
    from fasttrain.kernels import backend_status, get_backend
    from fasttrain.threads import get_num_threads

    facts: dict = {
        "fasttrain": fasttrain.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": f"{platform.system()} {platform.machine()}",
        "cpu": _cpu_name(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "threads": get_num_threads(),
        "default_backend": get_backend(),
        "backends": backend_status(),
    }
    try:
        from fasttrain.kernels.c import runtime

        facts["simd"] = runtime.simd_level()
        facts["openmp"] = runtime.openmp_version()
        facts["vector_exp"] = runtime.vector_exp()
    except ImportError as e:
        facts["simd"] = f"unknown (C backend did not load: {e})"
    try:
        import numba

        facts["numba"] = numba.__version__
    except ImportError:
        facts["numba"] = None
    facts["blas"] = [
        {k: lib.get(k) for k in ("internal_api", "version", "architecture", "num_threads", "filepath")}
        for lib in threadpoolctl.threadpool_info() if lib.get("user_api") == "blas"
    ]
    facts["blas_env"] = {k: v for k, v in os.environ.items()
                         if k.startswith(("OPENBLAS_", "MKL_", "GOTO", "OMP_"))}
    facts["pools"] = pools()
    return facts


def pools() -> dict:
    """What fasttrain set on the thread pools of this process (fasttrain/threads.py says why)."""
    from fasttrain.threads import LIBGOMP_STATE, POOL_MANNERS, gemm_policy, libgomp_path

    return {"libgomp": libgomp_path(), **LIBGOMP_STATE, "gemm": gemm_policy(),
            "set_while_loading": {k: v for k, v in POOL_MANNERS.items()}}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# where each backend lives: the "numpy" backend is the reference in kernels/ref/, not kernels/numpy/
WHERE = {"c": "kernels/c/: C in csrc/, wrapped by Cython", "numba": "kernels/numba/",
         "numpy": "kernels/ref/: the numpy reference, the spec"}


def report(facts: dict | None = None) -> str:
    """The facts as the text `fasttrain info` prints."""
    f = collect() if facts is None else facts
    omp = f.get("openmp")
    lines = [
        f"fasttrain {f['fasttrain']}  (Python {f['python']}, numpy {f['numpy']}, {f['platform']})",
        f"cpu        {f['cpu']}, {f['cores']} cores",
        f"simd       {f['simd']} (function clones picked at load time)",
        "openmp     " + (f"yes ({omp})" if omp else "NO: the C kernels run on one thread"),
        f"threads    {f['threads']} (fasttrain.set_num_threads; default OMP_NUM_THREADS or cores)",
        "vector exp float32 inline; float64 " + ("libmvec" if f.get("vector_exp") else "scalar (no libmvec)"),
        "backends",
    ]
    for name, why in f["backends"].items():
        mark = " (default)" if name == f["default_backend"] else ""
        extra = f", numba {f['numba']}" if name == "numba" and f.get("numba") else ""
        lines.append(f"  {name:6s}   " + (f"ok{extra}{mark}" if why is None else f"UNAVAILABLE: {why}")
                     + f"  [{WHERE.get(name, '')}]")
    lines.append("blas")
    for lib in f["blas"] or [{"internal_api": "none loaded yet"}]:
        desc = " ".join(str(lib[k]) for k in ("internal_api", "version", "architecture") if lib.get(k))
        threads = f", {lib['num_threads']} threads" if lib.get("num_threads") else ""
        lines.append(f"  {desc}{threads}  {lib.get('filepath') or ''}".rstrip())
    for k, v in f["blas_env"].items():
        lines.append(f"  env {k}={v}")
    p = f.get("pools")
    if p:
        gemm = p["gemm"]
        lines += [
            "pools      (fasttrain/threads.py: why)",
            "  libgomp  " + (p["libgomp"] or "not loaded")
            + (" (loaded before fasttrain)" if p.get("loaded_before_fasttrain") else ""),
            f"  spin     {p['spin'] or '-'}",
            "  GEMMs    " + (f"on fasttrain's OpenMP team, {gemm['blas']} one thread per call"
                             if gemm["on"] == "team" else "on the BLAS's own threads (no "
                             "OpenBLAS found that fasttrain can switch to one thread per call)"),
            "  set while fasttrain's libraries load, unless already set: "
            + " ".join(f"{k}={v}" for k, v in p["set_while_loading"].items()),
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(report() + "\n")

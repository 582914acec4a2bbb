"""`fasttrain info` tells what loaded and what runs."""
import os
import shutil
import subprocess
import sys

from fasttrain.info import collect, report


def test_collect_has_the_facts():
    facts = collect()
    assert facts["simd"] in ("avx512", "avx2", "baseline")
    assert facts["openmp"] > 0, "built without OpenMP: the C kernels would be single-threaded"
    assert set(facts["backends"]) == {"c", "numba", "numpy"}
    assert facts["backends"]["c"] is None


def test_report_names_backends_and_simd():
    text = report()
    for word in ("backends", "simd", "openmp", "threads", "blas", "c ", "numpy"):
        assert word in text


def test_command_line_and_module_entry_points():
    # The console script of the environment that runs the tests, even when it is not on PATH.
    script = shutil.which("fasttrain", path=os.path.dirname(sys.executable)) or "fasttrain"
    for cmd in ([script, "info"], [sys.executable, "-m", "fasttrain", "info"]):
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        assert out.startswith("fasttrain ") and "backends" in out


def test_report_says_where_each_backend_lives():
    """The numpy backend is fasttrain.kernels.ref: a reader looking for kernels/numpy/ is told."""
    lines = report().splitlines()
    numpy_line = next(line for line in lines if line.strip().startswith("numpy "))
    assert "kernels/ref/" in numpy_line
    assert "kernels/c/" in next(line for line in lines if line.strip().startswith("c "))

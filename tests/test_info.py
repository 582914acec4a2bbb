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

"""One thread count for the whole library, settable from any Python thread."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fasttrain


@pytest.fixture
def restore_threads():
    before = fasttrain.get_num_threads()
    yield
    fasttrain.set_num_threads(before)


def test_set_and_get(restore_threads):
    fasttrain.set_num_threads(3)
    assert fasttrain.get_num_threads() == 3
    fasttrain.set_num_threads(np.int64(1))
    assert fasttrain.get_num_threads() == 1


@pytest.mark.parametrize("bad,exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError),
                                     ("2", TypeError), (True, TypeError)])
def test_bad_counts(bad, exc, restore_threads):
    with pytest.raises(exc, match="set_num_threads"):
        fasttrain.set_num_threads(bad)


def test_count_set_in_another_thread_applies_everywhere(restore_threads):
    t = threading.Thread(target=fasttrain.set_num_threads, args=(1,))
    t.start()
    t.join()
    assert fasttrain.get_num_threads() == 1


@pytest.mark.parametrize("env,expected", [("3", 3), ("2,1", 2), ("", None), ("zero", None)])
def test_default_comes_from_omp_num_threads_else_cores(env, expected):
    code = "import fasttrain, os; print(fasttrain.get_num_threads(), len(os.sched_getaffinity(0)))"
    environ = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if env:
        environ["OMP_NUM_THREADS"] = env
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=environ, check=True).stdout.split()
    got, cores = int(out[0]), int(out[1])
    assert got == (expected if expected is not None else cores)


def test_pool_manners_are_set_while_loading_and_restored(monkeypatch):
    from fasttrain.threads import POOL_MANNERS, loading_native_libraries

    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "9")  # a user's own setting wins
    with loading_native_libraries():
        assert os.environ["GOMP_SPINCOUNT"] == POOL_MANNERS["GOMP_SPINCOUNT"]
        assert os.environ["OPENBLAS_THREAD_TIMEOUT"] == "9"
    assert "GOMP_SPINCOUNT" not in os.environ          # restored for libraries loaded later
    assert os.environ["OPENBLAS_THREAD_TIMEOUT"] == "9"


def test_importing_fasttrain_leaves_the_environment_as_it_was():
    code = ("import os, fasttrain, fasttrain.kernels.c, fasttrain.kernels.numba; "
            "print('GOMP_SPINCOUNT' in os.environ, 'OPENBLAS_THREAD_TIMEOUT' in os.environ)")
    environ = {k: v for k, v in os.environ.items()
               if k not in ("GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=environ, check=True).stdout.split()
    assert out == ["False", "False"]

"""One thread count for the whole library, settable from any Python thread."""
import json
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


# --- the pools beside numpy and PyTorch (fasttrain/threads.py) ---------------------------------

def _run(code, **env_changes):
    environ = {k: v for k, v in os.environ.items()
               if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT")}
    environ.update(env_changes)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environ, check=True).stdout


_POOLS = ("import json, threading, fasttrain.kernels.c; from fasttrain import info; "
          "p = info.collect()['pools']; "
          "p['parked'] = any(t.name == 'fasttrain-parked-openmp-team' "
          "for t in threading.enumerate()); "
          "print(json.dumps(p)); print(info.report())")


def test_info_reports_the_spin_fasttrain_set_when_it_loads_libgomp():
    out = _run(_POOLS)
    pools = json.loads(out.splitlines()[0])
    assert pools["loaded_before_fasttrain"] is False and not pools["parked"]
    assert pools["spin"].startswith("GOMP_SPINCOUNT=1000")
    assert pools["set_while_loading"] == {"GOMP_SPINCOUNT": "1000", "OPENBLAS_THREAD_TIMEOUT": "4"}
    assert "GOMP_SPINCOUNT=1000 (set by fasttrain" in out


def test_torch_imported_first_gets_a_parked_team_and_info_says_so():
    pytest.importorskip("torch")
    out = _run("import torch; " + _POOLS)
    pools = json.loads(out.splitlines()[0])
    assert pools["loaded_before_fasttrain"] is True and pools["parked"]
    assert "torch" in pools["libgomp"]  # PyTorch's own libgomp.so.1, which our kernels bind to
    assert "parked OpenMP team" in pools["spin"] and "(loaded before fasttrain)" in out


def test_a_wait_setting_of_the_user_is_left_alone():
    pytest.importorskip("torch")
    pools = json.loads(_run("import torch; " + _POOLS, OMP_WAIT_POLICY="active").splitlines()[0])
    assert not pools["parked"]
    assert pools["spin"] == "as the environment sets: OMP_WAIT_POLICY=active"


def _scipy_blas_threads():
    import threadpoolctl

    from fasttrain.threads import gemm_policy

    path = gemm_policy()["blas"]
    return next(lib["num_threads"] for lib in threadpoolctl.threadpool_info()
                if lib["filepath"] == path)


def test_gemm_team_makes_the_blas_single_threaded_only_during_the_call(restore_threads):
    import fasttrain.kernels.c  # noqa: F401  (loads scipy's OpenBLAS)
    from fasttrain import threads

    if threads.gemm_policy()["on"] != "team":
        pytest.skip("no switchable OpenBLAS behind scipy here")
    fasttrain.set_num_threads(2)
    assert _scipy_blas_threads() == 2
    assert threads.gemm_team(threads.GEMM_ONE_CALL_MAX) == 1  # small: one call, no switch
    assert _scipy_blas_threads() == 2
    assert threads.gemm_team(10**9) == 2 and threads.gemm_team(10**9) == 2  # two callers nest
    assert _scipy_blas_threads() == 1
    threads.gemm_team_done()
    assert _scipy_blas_threads() == 1  # the other caller is still inside
    fasttrain.set_num_threads(3)       # a new count during a call: applied when the last leaves
    assert _scipy_blas_threads() == 1
    threads.gemm_team_done()
    assert _scipy_blas_threads() == 3
    fasttrain.set_num_threads(1)
    assert threads.gemm_team(10**9) == 1  # one thread: BLAS's own single call


def test_linear_calls_leave_the_blas_count_as_they_found_it(restore_threads):
    x = np.ones((256, 128), np.float32)
    W = np.ones((192, 128), np.float32)
    fasttrain.set_num_threads(2)
    fasttrain.kernels.linear_forward(x, W, backend="c")
    fasttrain.kernels.linear_backward(x, W, np.ones((256, 192), np.float32), backend="c")
    fasttrain.kernels.linear_cross_entropy(x, W, np.zeros(256, np.int64), backend="c")
    from fasttrain import threads

    if threads.gemm_policy()["on"] == "team":
        assert _scipy_blas_threads() == 2


_BITS = ("import sys, hashlib, numpy as np, fasttrain\n"
         "if sys.argv[1] == 'torch': import torch\n"
         "from fasttrain import kernels as K\n"
         "fasttrain.set_num_threads(int(sys.argv[2]))\n"
         "r = np.random.default_rng(0)\n"
         "x, W, dy = (r.standard_normal(s, dtype=np.float32)\n"
         "            for s in ((300, 200), (260, 200), (300, 260)))\n"
         "outs = [K.linear_forward(x, W), *K.linear_backward(x, W, dy),\n"
         "        K.linear_cross_entropy(x, W, r.integers(0, 260, 300))[1]]\n"
         "print(hashlib.sha256(b''.join(o.tobytes() for o in outs)).hexdigest())\n")


@pytest.mark.parametrize("threads", [1, 2])
def test_results_are_the_same_bits_with_torch_loaded_first_or_not(threads):
    """The team's split depends on the thread count only: the same bits in any process."""
    pytest.importorskip("torch")
    code = f"exec({_BITS!r})"
    plain = subprocess.run([sys.executable, "-c", code, "plain", str(threads)],
                           capture_output=True, text=True, check=True).stdout
    after_torch = subprocess.run([sys.executable, "-c", code, "torch", str(threads)],
                                 capture_output=True, text=True, check=True).stdout
    assert plain == after_torch and len(plain.strip()) == 64

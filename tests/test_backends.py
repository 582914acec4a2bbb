"""Backend choice: one place, the same names everywhere, clear errors when one cannot load."""
import inspect
import subprocess
import sys

import numpy as np
import pytest

import fasttrain
from fasttrain.kernels import KERNELS, _backends
from conftest import BACKEND_PARAMS


def test_default_is_c():
    assert fasttrain.get_backend() == "c"
    assert "c" in fasttrain.available_backends()
    assert "numpy" in fasttrain.available_backends()


@pytest.mark.parametrize("name", BACKEND_PARAMS)
def test_every_backend_exports_every_kernel_with_one_signature(name):
    module = _backends.load(name)
    reference = _backends.load("numpy")
    assert sorted(module.__all__) == sorted(KERNELS)
    for kernel in KERNELS:
        fn, ref = getattr(module, kernel), getattr(reference, kernel)
        assert str(inspect.signature(fn)) == str(inspect.signature(ref)), kernel


def test_set_backend_changes_the_default(backend):
    logits = np.zeros((2, 3), dtype=np.float32)
    targets = np.array([0, 2])
    try:
        fasttrain.set_backend(backend)
        assert fasttrain.get_backend() == backend
        loss, _ = fasttrain.softmax_cross_entropy(logits, targets)
        assert abs(loss - np.log(3)) < 1e-6
    finally:
        _backends._chosen = None


def test_unknown_backend_names_the_choices():
    with pytest.raises(ValueError, match="unknown backend 'fortran'.*c, numba, numpy"):
        fasttrain.set_backend("fortran")


def test_backend_that_cannot_load_says_why(monkeypatch):
    monkeypatch.setitem(_backends._MODULES, "numba", "fasttrain.kernels.no_such_module")
    monkeypatch.setattr(_backends, "_loaded", {})
    monkeypatch.setattr(_backends, "_failed", {})
    with pytest.raises(_backends.BackendUnavailableError, match="'numba' cannot load: .*no_such"):
        fasttrain.softmax_cross_entropy(np.zeros((1, 2)), np.zeros(1, dtype=int), backend="numba")
    assert "numba" not in _backends.available_backends()
    assert "no_such_module" in _backends.backend_status()["numba"]


def _run(code, **env):
    import os

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, **env})
    return result


def test_environment_variable_picks_the_backend():
    result = _run("import fasttrain; print(fasttrain.get_backend())", FASTTRAIN_BACKEND="numpy")
    assert result.stdout.strip() == "numpy", result.stderr


def test_bad_environment_variable_is_named_in_the_error():
    result = _run("import fasttrain, numpy as np; "
                  "fasttrain.softmax_cross_entropy(np.zeros((1, 2)), np.zeros(1, dtype=int))",
                  FASTTRAIN_BACKEND="gpu")
    assert result.returncode != 0
    assert "FASTTRAIN_BACKEND" in result.stderr and "'gpu'" in result.stderr

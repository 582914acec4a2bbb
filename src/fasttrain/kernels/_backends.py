"""The backend registry: the one place where fasttrain chooses which implementation runs a kernel.

A backend is a module that exports every kernel under its public name, with the same signature:
    "c"      fasttrain.kernels.c      C in csrc/, wrapped by Cython (the default)
    "numba"  fasttrain.kernels.numba  Numba twins of the C kernels (needs fasttrain[numba])
    "numpy"  fasttrain.kernels.ref    the numpy reference: the spec every other backend matches
Backend functions receive arguments already validated by the public front
(fasttrain.kernels.<kernel>.py) and an output buffer to write; they never allocate it.
Order of choice: the backend= argument of a call, else set_backend(), else $FASTTRAIN_BACKEND,
else "c". Backends load on first use; one that cannot load says why.
"""
from __future__ import annotations

import importlib
import os
import threading
from types import ModuleType

BACKENDS = ("c", "numba", "numpy")
DEFAULT_BACKEND = "c"
_MODULES = {
    "c": "fasttrain.kernels.c",
    "numba": "fasttrain.kernels.numba",
    "numpy": "fasttrain.kernels.ref",
}

_lock = threading.Lock()
_loaded: dict[str, ModuleType] = {}
_failed: dict[str, str] = {}  # backend -> why it could not load
_chosen: str | None = None  # set by set_backend()


class BackendUnavailableError(ImportError):
    """A backend was asked for by name but cannot load on this installation."""


def _check_name(name: object, source: str = "backend") -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown {source} {name!r}; fasttrain's backends are {', '.join(BACKENDS)}")
    return name  # type: ignore[return-value]


def load(name: str) -> ModuleType:
    """The module of backend `name`, imported on first use; raises if it cannot load."""
    _check_name(name)
    with _lock:
        if name in _loaded:
            return _loaded[name]
        if name not in _failed:
            try:
                _loaded[name] = importlib.import_module(_MODULES[name])
                return _loaded[name]
            except ImportError as e:
                _failed[name] = f"{type(e).__name__}: {e}"
    raise BackendUnavailableError(f"fasttrain backend {name!r} cannot load: {_failed[name]}")


def backend_status() -> dict[str, str | None]:
    """Each backend mapped to None if it loads, else the reason it does not."""
    status: dict[str, str | None] = {}
    for name in BACKENDS:
        try:
            load(name)
            status[name] = None
        except BackendUnavailableError:
            status[name] = _failed[name]
    return status


def available_backends() -> list[str]:
    """The backends that load here, in order of preference."""
    return [name for name, why in backend_status().items() if why is None]


def get_backend() -> str:
    """The backend a kernel call without backend= uses."""
    if _chosen is not None:
        return _chosen
    env = os.environ.get("FASTTRAIN_BACKEND")
    if env:
        return _check_name(env, "backend in $FASTTRAIN_BACKEND")
    return DEFAULT_BACKEND


def set_backend(name: str) -> None:
    """Make `name` the default backend of this process; raises if it cannot load."""
    global _chosen
    load(name)
    _chosen = name


def implementation(kernel: str, backend: str | None):
    """The function that runs `kernel` on `backend` (or the current default)."""
    return getattr(load(backend if backend is not None else get_backend()), kernel)

"""What a benchmark case is, and the registry of the kernels' case modules.

A case module (one per kernel, named like the kernel's stem in csrc/, kernels/, tests/ and
benchmarks/) defines:

    ORDER = 10                 # its place in the table and in `--kernels`' list
    ALIASES = ("softmax_cross_entropy", ...)   # other names a user may type for it (optional)
    SHAPES = [...]             # the full run's shapes; QUICK = [...]: --quick's (one shape);
    TINY = [...]               # the tests': every code path in seconds; MORE = [...] (optional):
                               # shapes only --shapes asks for (too slow or large for a full run)
    EXTRAS = ("sgemm", ...)    # contenders run only when --backends names them (optional)
    DEFAULT = False            # measured only when --kernels names it (optional)
    def cases(shapes, torch_names) -> list[Case]
    def label(shape) -> str; def parse_shape(text) -> shape   (optional: "AxBxC" of ints)

and nothing else has to change: the modules are found by discovery (`case_modules`).
"""
from __future__ import annotations

import functools
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

REFERENCE = "numpy"
FASTTRAIN_BACKENDS = ("c", "numba", "numpy")  # "numpy": fasttrain.kernels.ref, the reference
CONTENDERS = (*FASTTRAIN_BACKENDS, "torch")  # what --backends chooses from by default
_NOT_CASES = ("harness", "report", "cli", "profile")  # the package's modules that are not cases


class BenchError(Exception):
    """A bench run cannot go on (a bad file, a missing optional library); the message says why."""


@dataclass
class Case:
    """One kernel at one shape: `setup(names)` builds the contenders' zero-argument calls on the
    same inputs. `contenders`: those a run measures by default (fasttrain's backends, and any
    number of PyTorch variants, each named "torch..."); `extras`: those it measures only when
    --backends names them. `nbytes`: the bytes a call must move at least (→ share of
    bandwidth); `flops`: its floating-point operations (→ share of GEMM FLOP/s); `tokens`:
    tokens per call (→ tokens/s, the rate even with `flops`: a model step's FLOPs then give
    only its share of the GEMM rate, the MFU); `self_timed`: see below. `api`: the public
    kernels (fasttrain.kernels.<name>) the fasttrain contenders call, so that the report can
    give the reason of a backend that marks one as slower than the reference by design
    (kernels/numba/_slow.py)."""
    kernel: str
    op: str
    shape: str
    contenders: list[str]
    setup: Callable[[list[str]], dict[str, Callable[[], object]]]
    nbytes: int | None = None
    flops: int | None = None
    tokens: int | None = None
    extras: list[str] = field(default_factory=list)
    api: tuple[str, ...] = ()
    # a call that times itself (a fresh process timing its own steps): it returns its seconds
    # per unit, which the harness takes instead of the clock's; one call per sample, no warm-up
    self_timed: bool = False


def rng():
    return np.random.default_rng(0)


def base(name: str) -> str:
    """The library a contender needs: "c-inplace" -> "c", "torch fused" -> "torch"."""
    if name.startswith("torch"):
        return "torch"
    return name.replace(" ", "-").split("-")[0]


@functools.cache
def case_modules() -> dict:
    """{kernel name: its case module}, in table order: every module of this package that
    defines `cases`."""
    import fasttrain.bench as package

    found = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_") or info.name in _NOT_CASES:
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        if callable(getattr(module, "cases", None)):
            found.append((getattr(module, "ORDER", 1000), info.name, module))
    return {name: module for _, name, module in sorted(found, key=lambda t: t[:2])}


def kernel_names(every: bool = False) -> tuple[str, ...]:
    """The kernels a run measures by default; with every=True also those measured only when
    --kernels names them (a module with DEFAULT = False: minutes of subprocesses)."""
    return tuple(k for k, m in case_modules().items() if every or getattr(m, "DEFAULT", True))


def aliases() -> dict[str, str]:
    """{a name a user may type: the kernel it means}: the public Python names
    (softmax_cross_entropy, linear_forward, ...) and the C ones (ft_crossentropy, ...)."""
    out = {}
    for name, module in case_modules().items():
        for alias in (*getattr(module, "ALIASES", ()), f"ft_{name}"):
            out[alias] = name
    return out


def extras() -> tuple[str, ...]:
    """Every contender that runs only when named."""
    return tuple(dict.fromkeys(e for module in case_modules().values()
                               for e in getattr(module, "EXTRAS", ())))


def label(kernel: str, shape) -> str:
    module = case_modules()[kernel]
    if hasattr(module, "label"):
        return module.label(shape)
    return "x".join(map(str, shape))


def parse_shape(kernel: str, text: str):
    """A shape as typed after --shapes ("4096x256"), checked against the kernel's arity."""
    module = case_modules()[kernel]
    if hasattr(module, "parse_shape"):
        return module.parse_shape(text)
    arity = len(module.SHAPES[0])
    try:
        shape = tuple(int(p) for p in text.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) != arity or min(shape) < 1:
        raise ValueError(f"a {kernel} shape is {arity} positive integers joined by x "
                         f"(e.g. {label(kernel, module.SHAPES[0])}), got {text!r}")
    return shape


def sizes(kernel: str, mode: str) -> list:
    """The shapes a run of `kernel` in mode "full", "quick" or "tiny" measures."""
    module = case_modules()[kernel]
    return list({"full": module.SHAPES, "quick": module.QUICK, "tiny": module.TINY}[mode])

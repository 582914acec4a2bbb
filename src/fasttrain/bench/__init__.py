"""`fasttrain bench`: how fast each kernel runs here, against the numpy reference, PyTorch and
this machine's limits, measured in one run.

    fasttrain bench [--kernels crossentropy,linear,...] [--backends c,numba,numpy,torch]
                    [--shapes S,...] [--rounds R] [--memory] [--quick] [--threads N]
                    [--json FILE] [--compare OLD.json] [--threshold 0.1] [--plot FILE.png]
                    [--results FILE]

The package has the kernels' shape: one case module per kernel, named by the kernel's stem as
in csrc/, kernels/, tests/ and benchmarks/ (crossentropy.py, linear.py, ...), each with its
shapes, its contenders (the fasttrain call, its numpy and PyTorch peers) and the bytes or FLOPs
of its roofline (_case.py says what a case module defines; a new kernel adds one and nothing
else); harness.py, the one timer (interleaved rounds, warm-up, the machine-limit probes,
memory); report.py (table, JSON, --compare, plot); profile.py (--profile: one GPT step's
time per kernel); cli.py, the command line.
benchmarks/bench_<name>.py run the same cases under pytest-benchmark.

Shape letters: N rows, V vocabulary, C input and OC output channels, E embedding width, P
parameters; a train step is B windows of T tokens.
"""
from fasttrain.bench._case import (
    CONTENDERS,
    FASTTRAIN_BACKENDS,
    REFERENCE,
    BenchError,
    Case,
    case_modules,
    kernel_names,
)
from fasttrain.bench.harness import (
    BLAS_FORCING,
    MODES,
    SCHEMA,
    blas_warning,
    environment,
    measure_limits,
    peak_memory,
    plan_cases,
    prepare,
    run,
    run_case,
    summarize,
)
from fasttrain.bench.report import compare, header, plot, table
from fasttrain.bench.cli import add_arguments, main, parse_backends, parse_kernels  # noqa: E402



def __getattr__(name):
    """KERNEL_NAMES and the shape lists by their former names, read from the case modules on
    first use: importing this package imports no case module, so that `python -m
    fasttrain.bench.interleaved` runs without runpy's warning of a module imported twice."""
    if name == "KERNEL_NAMES":
        return kernel_names()
    shapes = {"CROSSENTROPY_SHAPES": "crossentropy", "LINEAR_SHAPES": "linear",
              "EMBEDDING_SHAPES": "embedding", "ELEMENTWISE_SHAPES": "elementwise"}
    if name in shapes:
        return case_modules()[shapes[name]].SHAPES
    if name == "ADAMW_MODELS":
        adamw = case_modules()["adamw"]
        return {k: adamw.MODELS[k] for k in adamw.SHAPES}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BLAS_FORCING", "CONTENDERS", "FASTTRAIN_BACKENDS", "KERNEL_NAMES", "MODES", "REFERENCE",
    "SCHEMA", "BenchError", "Case", "add_arguments", "blas_warning", "compare", "environment",
    "header", "main", "measure_limits", "parse_backends", "parse_kernels", "peak_memory",
    "plan_cases", "plot", "prepare", "run", "run_case", "summarize", "table",
]

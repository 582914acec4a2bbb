"""fasttrain's C kernels alone and interleaved with numpy's and PyTorch's work (torch imported
before and after fasttrain): the cases of fasttrain.bench.interleaved under pytest-benchmark,
one round per setting (every call is a fresh process timing its own rounds). extra_info: each
kernel's median over the process's samples, its spread (max/min), once `alone` has run in the
session its median over alone's, and the CPU ms that the calling thread, the rest of its OpenMP
team and every other thread spent in one call (other threads well above alone's: a pool
spinning beside the kernel); the setting's time between two calls. Under --benchmark-disable,
tiny shapes to prove it runs.
Interleaved figures (the README's table):
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE fasttrain bench --kernels interleaved --rounds 5
"""
import statistics

import pytest

from conftest import sizes
from fasttrain.bench import interleaved as kernel

ALONE: dict = {}  # shape: {kernel: median seconds alone}, filled by the `alone` test


@pytest.mark.parametrize("shape", sizes(kernel.SHAPES, ids=kernel.label))
@pytest.mark.parametrize("setting", kernel.SETTINGS)
def test_interleaved(benchmark, setting, shape):
    if "torch" in setting:
        pytest.importorskip("torch")
    tiny = getattr(benchmark, "disabled", False)
    shape = kernel.TINY[0] if tiny else shape
    result = {}
    benchmark.group = f"kernels beside numpy and torch, chain {kernel.label(shape)}"
    benchmark.pedantic(lambda: result.update(kernel.run_worker(
        setting, shape, 2 if tiny else kernel.ROUNDS_PER_RUN, tiny, cpu=True)), rounds=1,
        iterations=1)
    times = result["times"]
    assert set(times) == {*kernel.KERNELS, "gpt chain"} and all(min(t) > 0 for t in times.values())
    medians = {k: statistics.median(t) for k, t in times.items()}
    if setting == "alone":
        ALONE[tuple(shape)] = medians
    alone = ALONE.get(tuple(shape), {})
    benchmark.extra_info.update(libs=result["libs"], between_ms=round(result["between_ms"], 3), **{
        k: {"median_ms": round(m * 1e3, 4), "spread": round(max(times[k]) / min(times[k]), 2),
            "vs_alone": round(m / alone[k], 2) if k in alone else None,
            "cpu_ms": result["cpu_ms"][k]}
        for k, m in medians.items()})

"""Causal multi-head self-attention, forward + backward, float32, 2 threads, at (B, n_head, T, hs)
= (16, 4, 128, 64) (a small GPT), (4, 12, 1024, 64) (GPT-2's heads at its context) and
(1, 12, 4096, 64) (a long context).

Contenders: fasttrain's backends (out, lse and dqkv preallocated); "torch" is
F.scaled_dot_product_attention(q, k, v, is_causal=True) and its autograd backward (PyTorch's CPU
flash kernel); "torch-eager" is the formula as nanoGPT writes it without flash (att = q k^T *
scale, masked_fill, softmax, att v) and its autograd backward, which stores (B, n_head, T, T)
matrices. numpy and numba (plain, (T, T) per head) are left out where one call takes many seconds
(numba past T = 128, numpy past T = 1024). extra_info: GFLOP/s counting the causal forward as 2 * 2 * B * nh * T * T * hs / 2 (the
two products over the lower triangle) and the backward as 2.5 times that (five products, the
convention of FlashAttention's papers), and that as a fraction of this machine's float32 GEMM
rate (fasttrain.limits.gemm_flops, measured once per session).

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE pytest benchmarks/bench_attention.py
      env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_attention.py
          (interleaved rounds, ratios and peak memory; see the end)
"""
import numpy as np
import pytest

from fasttrain import kernels as K
from conftest import available, record, rng, sizes

SHAPES = [(16, 4, 128, 64), (4, 12, 1024, 64), (1, 12, 4096, 64)]
BACKENDS = [available("c"), available("numba"), available("numpy"), available("torch"),
            pytest.param("torch-eager", id="torch-eager", marks=available("torch").marks)]


def flops(B, nh, T, hs):
    return 3.5 * 2 * 2 * B * nh * T * T * hs / 2  # forward + 2.5x forward for the backward


@pytest.fixture(scope="session")
def gemm_gflops():
    """float32 GEMM GFLOP/s of this machine (scipy's BLAS, 2048^3), measured once."""
    from fasttrain.limits import gemm_flops

    return gemm_flops(n=2048)["gflops"]


def make_call(backend, B, nh, T, hs):
    C = nh * hs
    r = rng()
    qkv = r.standard_normal((B, T, 3 * C), dtype=np.float32)  # (B, T, 3C)
    dout = r.standard_normal((B, T, C), dtype=np.float32)     # (B, T, C)
    if backend.startswith("torch"):
        import torch
        import torch.nn.functional as F

        x, g = torch.from_numpy(qkv).requires_grad_(), torch.from_numpy(dout)
        mask = torch.ones(T, T, dtype=torch.bool).tril()

        def call():
            x.grad = None
            q, k, v = (t.view(B, T, nh, hs).transpose(1, 2) for t in x.split(C, dim=2))
            if backend == "torch":
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:  # nanoGPT's CausalSelfAttention without flash
                att = (q @ k.transpose(-2, -1)) * (1.0 / hs ** 0.5)
                att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
                y = att @ v
            y.transpose(1, 2).reshape(B, T, C).backward(g)
        return call
    out = np.empty((B, T, C), np.float32)
    lse = np.empty((B, nh, T), np.float32)
    dqkv = np.empty_like(qkv)

    def call():
        K.attention_forward(qkv, nh, out=out, lse=lse, backend=backend)
        K.attention_backward(qkv, out, lse, dout, nh, dqkv=dqkv, backend=backend)
    return call


@pytest.mark.parametrize("shape", sizes(SHAPES, lambda s: "B{}h{}T{}hs{}".format(*s)))
@pytest.mark.parametrize("backend", BACKENDS)
def test_attention(benchmark, settle, gemm_gflops, backend, shape):
    B, nh, T, hs = shape
    if T > {"numpy": 1024, "numba": 128}.get(backend, T):
        pytest.skip(f"{backend}: plain (T, T) per head, too slow to time at T = {T} "
                    "(numpy 10 s, numba 21 s per call at T = 1024)")
    call = settle(make_call(backend, B, nh, T, hs))
    benchmark.group = "attention fwd+bwd B{} h{} T{} hs{}".format(*shape)
    benchmark(call)
    record(benchmark, flops=flops(*shape), shape=list(shape))
    if "gflops" in benchmark.extra_info:
        benchmark.extra_info.update(
            gemm_gflops=round(gemm_gflops, 1),
            fraction_of_gemm=round(benchmark.extra_info["gflops"] / gemm_gflops, 3))


# pytest-benchmark times one contender after another, so a burst of noise on this shared machine
# lands on some and not others. This mode runs rounds of A B C ..., each timed call after a 0.2 s
# pause and one untimed call (../shared/BENCHMARKING.md), and reports the median of the per-round
# ratios to c. It also measures the peak memory one c forward + backward allocates beyond its
# inputs and outputs (tracemalloc: the per-thread blocks are numpy arrays; lse is counted too),
# against one (B, n_head, T, T) float32 matrix, of which the formula path stores several.

def interleaved(shape, rounds, backends):
    import time
    import tracemalloc

    import torch

    import fasttrain
    from fasttrain.limits import gemm_flops

    B, nh, T, hs = shape
    calls = {b: make_call(b, *shape) for b in backends}
    times = {b: [] for b in backends}
    for _ in range(rounds):
        for b, call in calls.items():
            time.sleep(0.2)
            call()
            t0 = time.perf_counter()
            call()
            times[b].append(time.perf_counter() - t0)
    C = nh * hs
    r = rng()
    qkv = r.standard_normal((B, T, 3 * C), dtype=np.float32)
    dout = r.standard_normal((B, T, C), dtype=np.float32)
    out, dqkv = np.empty((B, T, C), np.float32), np.empty_like(qkv)
    tracemalloc.start()
    _, lse = K.attention_forward(qkv, nh, out=out, backend="c")
    K.attention_backward(qkv, out, lse, dout, nh, dqkv=dqkv, backend="c")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    tt = 4 * B * nh * T * T
    gemm = gemm_flops(n=2048)["gflops"]
    print(f"\n(B, n_head, T, hs) = {shape}: {rounds} rounds, {fasttrain.get_num_threads()} threads, "
          f"torch {torch.__version__}; float32 GEMM {gemm:.0f} GFLOP/s; c's peak extra memory "
          f"{peak / 2**20:.1f} MiB = 1/{tt / peak:.0f} of one (B, nh, T, T) float32 matrix "
          f"({tt / 2**20:.0f} MiB)")
    print("| backend | median ms | min-max ms | GFLOP/s | of GEMM | time / c's time |")
    print("|---|---|---|---|---|---|")
    base = np.array(times["c"]) if "c" in times else None
    for b, t in times.items():
        t = np.array(t)
        med = float(np.median(t))
        gf = flops(*shape) / med / 1e9
        ratio = f"{np.median(t / base):.2f}" if base is not None else "-"
        print(f"| {b} | {med * 1e3:.2f} | {t.min() * 1e3:.2f}-{t.max() * 1e3:.2f} | {gf:.1f} "
              f"| {gf / gemm:.0%} | {ratio} |")


if __name__ == "__main__":
    import argparse

    import fasttrain

    parser = argparse.ArgumentParser(description="attention fwd+bwd, contenders interleaved")
    parser.add_argument("shapes", nargs="*", help="B,n_head,T,hs (default: the three above)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--backends", default="c,torch,torch-eager",
                        help="comma-separated, of c, numba, numpy, torch, torch-eager")
    args = parser.parse_args()
    K.backend_status()  # load the C backend (and its libgomp) before torch: conftest.py says why
    import torch

    fasttrain.set_num_threads(2)
    torch.set_num_threads(2)
    for s in [tuple(int(x) for x in a.split(",")) for a in args.shapes] or SHAPES:
        interleaved(s, args.rounds, args.backends.split(","))

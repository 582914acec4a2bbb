"""Data-parallel training steps over MPI ranks (fasttrain.distributed) on this machine.

The default model (fasttrain train's defaults: byte-level MLP, 410k parameters, a global batch
of 1024 windows), float32, the real train_step (forward, loss, backward, all-reduce of the
gradient arena, the mean loss, clipping, AdamW) plus the loop's per-step stop vote. Contenders:

    1x1   1 rank, 1 thread           (the unit that 2 ranks should double)
    2x1   mpiexec -n 2, 1 thread each (each rank does half of every batch)
    1x2   1 rank, 2 threads          (what one process makes of the same 2 cores)

Each contender is a fresh process (or two) running `steps` timed steps after 3 untimed ones on
random tokens; it reports the median step, tokens/s (1024 / median step), and per step the
time in the gradient all-reduce and in all collectives (waiting for the slower rank included),
then the bare all-reduce of the 1.64 MB arena timed back to back after a barrier (the transfer
alone, with no rank late). The script times rounds of the contenders interleaved (A B C ...,
0.2 s pause before each) and prints medians, min-max and the per-round ratios:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_distributed.py [rounds [steps]]

`pytest benchmarks/bench_distributed.py` runs one round (the figures in extra_info); under
--benchmark-disable, a quick one of 2 steps to prove it works.
"""
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

BATCH = 1024
CONTENDERS = {"1x1": (1, 1), "2x1": (2, 1), "1x2": (1, 2)}  # name: (ranks, threads per rank)


def mpiexec():
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


def why_no_mpi():
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py is not installed (pip install 'fasttrain[mpich]')"
    if mpiexec() is None:
        return "no mpiexec next to this Python or on PATH"
    return None


# ----------------------------------------------------------------------------------------------
# the worker: one process per rank

def worker(steps: int, threads: int) -> None:
    import numpy as np

    import fasttrain
    from fasttrain import distributed
    from fasttrain.config import TrainConfig
    from fasttrain.data import Batches
    from fasttrain.models import MLP
    from fasttrain.optim import AdamW
    from fasttrain.train import train_step

    world = distributed.world()
    fasttrain.set_num_threads(threads)
    cfg = TrainConfig()
    tokens = np.random.default_rng(0).integers(0, 256, size=1 << 20).astype(np.uint8)
    batches = Batches(tokens, cfg.context, BATCH, seed=1, shard=(world.rank, world.size))
    model = MLP(vocab_size=256, context=cfg.context, n_embd=cfg.n_embd, hidden=cfg.hidden,
                activation=cfg.activation)
    model.init(cfg.seed)
    opt = AdamW(model.arena, lr=cfg.min_lr, betas=(cfg.beta1, cfg.beta2),
                weight_decay=cfg.weight_decay)
    world.broadcast_state(model, opt, batches, 0)

    def step():
        world.any(False)  # the loop's stop vote
        train_step(model, opt, [batches.next()], cfg.min_lr, cfg.grad_clip, world)

    for _ in range(3):
        step()
    times, reduce, collective = [], [], []
    for _ in range(steps):
        a, c = world.allreduce_seconds, world.collective_seconds
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
        reduce.append(world.allreduce_seconds - a)
        collective.append(world.collective_seconds - c)
    bare = []
    if world.size > 1:  # the transfer alone: every rank ready, back to back
        world.comm.Barrier()
        for _ in range(max(steps, 5)):
            t0 = time.perf_counter()
            world.comm.Allreduce(world.MPI.IN_PLACE, model.arena.grads)
            bare.append(time.perf_counter() - t0)
    if world.is_root:
        med = statistics.median
        print("RESULT " + json.dumps({
            "ranks": world.size, "threads": threads, "params": model.num_params,
            "step_ms": med(times) * 1e3, "min_ms": min(times) * 1e3, "max_ms": max(times) * 1e3,
            "tokens_per_s": BATCH / med(times),
            "allreduce_ms": med(reduce) * 1e3, "collective_ms": med(collective) * 1e3,
            "allreduce_fraction": med(r / t for r, t in zip(reduce, times)),
            "bare_allreduce_ms": med(bare) * 1e3 if bare else 0.0}), flush=True)


# ----------------------------------------------------------------------------------------------
# the driver

def run(name: str, steps: int) -> dict:
    ranks, threads = CONTENDERS[name]
    cmd = [sys.executable, __file__, "--worker", str(steps), str(threads)]
    if ranks > 1:
        cmd = [mpiexec(), "-n", str(ranks)] + cmd
    env = {k: v for k, v in os.environ.items()
           if k not in ("PMI_SIZE", "PMI_RANK", "PMI_FD", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK")}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{name}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return json.loads(lines[0][len("RESULT "):])


def interleaved(rounds: int = 5, steps: int = 30) -> dict:
    results = {name: [] for name in CONTENDERS}
    for _ in range(rounds):
        for name in CONTENDERS:
            time.sleep(0.2)
            results[name].append(run(name, steps))
    return results


def report(results: dict) -> str:
    med = statistics.median
    rounds = len(results["1x1"])
    out = [f"default MLP, global batch {BATCH}, {rounds} rounds of "
           f"{CONTENDERS} interleaved; medians (min-max over rounds)"]
    for name, rs in results.items():
        step = [r["step_ms"] for r in rs]
        line = (f"  {name}: step {med(step):.1f} ms ({min(step):.1f}-{max(step):.1f}), "
                f"{med(r['tokens_per_s'] for r in rs) / 1e3:.1f}k tokens/s")
        if rs[0]["ranks"] > 1:
            line += (f"; all-reduce {med(r['allreduce_ms'] for r in rs):.2f} ms/step = "
                     f"{100 * med(r['allreduce_fraction'] for r in rs):.1f}% of the step "
                     f"(all collectives {med(r['collective_ms'] for r in rs):.2f} ms); bare "
                     f"all-reduce of {4 * rs[0]['params'] / 1e6:.2f} MB "
                     f"{med(r['bare_allreduce_ms'] for r in rs):.2f} ms")
        out.append(line)
    for a, b in (("2x1", "1x1"), ("2x1", "1x2")):
        ratios = [x["tokens_per_s"] / y["tokens_per_s"] for x, y in zip(results[a], results[b])]
        out.append(f"  tokens/s {a} / {b}: {med(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})")
    return "\n".join(out)


@pytest.mark.skipif(bool(why_no_mpi()), reason=str(why_no_mpi()))
def test_distributed_scaling(benchmark):
    quick = getattr(benchmark, "disabled", False)  # --benchmark-disable: prove it runs
    results = {}
    benchmark.group = "data-parallel train step, default MLP"
    benchmark.pedantic(lambda: results.update(interleaved(rounds=1, steps=2 if quick else 20)),
                       rounds=1, iterations=1)
    for name, (r,) in results.items():
        assert r["ranks"] == CONTENDERS[name][0] and r["step_ms"] > 0
        benchmark.extra_info[name] = {k: round(v, 4) for k, v in r.items()}
    print("\n" + report(results))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(int(sys.argv[2]), int(sys.argv[3]))
    else:
        args = [int(a) for a in sys.argv[1:3]]
        print(report(interleaved(*args)))

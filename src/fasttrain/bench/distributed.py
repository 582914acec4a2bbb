"""Data-parallel training steps over MPI ranks (fasttrain.distributed) on this machine.

The default model (fasttrain train's defaults: byte-level MLP, a global batch of B windows),
float32, the real train_step (forward, loss, backward, all-reduce of the gradient arena, the
mean loss, clipping, AdamW) plus the loop's per-step stop vote. Contenders, each a fresh process
(or two) per sample:

    1x1   1 rank, 1 thread           (the unit that 2 ranks should double)
    2x1   mpiexec -n 2, 1 thread each (each rank does half of every batch)
    1x2   1 rank, 2 threads          (what one process makes of the same 2 cores)

A sample is the median of S timed steps after 3 untimed ones, timed by the worker itself (the
case is `self_timed`: process start-up is not a step). Rate: tokens (windows) per second. Named
only: `fasttrain bench --kernels distributed [--shapes 1024x20] [--rounds 5]` (a shape is B x S).
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

from fasttrain.bench._case import Case

ORDER = 95
DEFAULT = False  # a minute of subprocesses: only when --kernels names it
ALIASES = ("mpi", "data_parallel")
SHAPES = [(1024, 30)]  # (B windows per global batch, S timed steps)
QUICK = [(1024, 10)]
TINY = [(64, 2)]
CONTENDERS = {"1x1": (1, 1), "2x1": (2, 1), "1x2": (1, 2)}  # name: (ranks, threads per rank)
_LAUNCHER = ("PMI_SIZE", "PMI_RANK", "PMI_FD", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK")


def label(shape):
    return "B{} S{}".format(*shape)


def mpiexec():
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


def why_no_mpi():
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py is not installed (pip install 'fasttrain[mpich]')"
    if mpiexec() is None:
        return "no mpiexec next to this Python or on PATH"
    return None


def worker(batch: int, steps: int, threads: int) -> None:
    """One rank: 3 untimed steps, `steps` timed ones; rank 0 prints RESULT {json}."""
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
    batches = Batches(tokens, cfg.context, batch, seed=1, shard=(world.rank, world.size))
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
    times, reduce = [], []
    for _ in range(steps):
        a = world.allreduce_seconds
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
        reduce.append(world.allreduce_seconds - a)
    if world.is_root:
        print("RESULT " + json.dumps({"ranks": world.size, "step_s": statistics.median(times),
                                      "allreduce_s": statistics.median(reduce)}), flush=True)


def run_worker(name: str, batch: int, steps: int) -> dict:
    ranks, threads = CONTENDERS[name]
    cmd = [sys.executable, "-m", "fasttrain.bench.distributed", "--worker", str(batch),
           str(steps), str(threads)]
    if ranks > 1:
        why = why_no_mpi()
        if why:
            raise RuntimeError(why)
        cmd = [mpiexec(), "-n", str(ranks)] + cmd
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCHER}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{name}: exit {proc.returncode}: {proc.stderr.strip()[-400:]}")
    return json.loads(lines[0][len("RESULT "):])


def cases(shapes, torch_names):
    def case(batch, steps):
        def setup(names):
            return {n: (lambda n=n: run_worker(n, batch, steps)["step_s"]) for n in names}
        return Case("distributed", "train step", label((batch, steps)), list(CONTENDERS), setup,
                    tokens=batch, self_timed=True)
    return [case(*s) for s in shapes]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(*(int(a) for a in sys.argv[2:5]))

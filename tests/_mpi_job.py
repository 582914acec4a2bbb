"""A training job for tests/test_distributed.py to start under mpiexec (or alone):

    mpiexec -n 2 python tests/_mpi_job.py '{"config": {...}, "resume": false, "fail": null}'

Trains with fasttrain.train.train and the given TrainConfig fields. Each rank saves the windows
of its first micro-batch as first_batch.rank{R}.npy in the run directory, so the test can check
that the ranks' shares are disjoint and together make the batch one process draws. "fail":
{"rank": r, "step": k, "how": "kill" | "raise" | "exit" | "exit0" | "hang"} makes rank r, at its k-th
optimizer step, die by SIGKILL, raise an exception, leave with os._exit(3) or os._exit(0) ("exit0": as if it had finished), or stop itself
(SIGSTOP), to test that the others stop instead of waiting for it forever.
"""
import json
import os
import signal
import sys

import numpy as np

import fasttrain.train as T
from fasttrain import distributed
from fasttrain.config import TrainConfig


def main():
    spec = json.loads(sys.argv[1])
    cfg = TrainConfig(**spec["config"])
    rank = distributed.world().rank
    fail = spec.get("fail")
    steps = 0
    real_step = T.train_step

    def train_step(model, opt, micro_batches, *args, **kwargs):
        nonlocal steps
        steps += 1
        if fail and fail["rank"] == rank and fail["step"] == steps:
            if fail["how"] == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            elif fail["how"] == "exit":
                os._exit(3)
            elif fail["how"] == "exit0":
                os._exit(0)
            elif fail["how"] == "hang":
                os.kill(os.getpid(), signal.SIGSTOP)  # alive, but never answers again
            raise RuntimeError(f"injected failure at step {steps}")
        return real_step(model, opt, spy(micro_batches, steps == 1), *args, **kwargs)

    def spy(micro_batches, first):  # the batches are buffers that the next one overwrites
        for i, (x, y) in enumerate(micro_batches):
            if first and i == 0:
                np.save(os.path.join(cfg.out_dir, f"first_batch.rank{rank}.npy"), x)
            yield x, y

    T.train_step = train_step
    summary = T.train(cfg, resume=spec.get("resume", False), progress=False)
    if rank == 0:
        print(json.dumps({"summary_step": summary["step"]}))


if __name__ == "__main__":
    main()

"""Data-parallel training over MPI (fasttrain.distributed): the ranks' shares of a batch, the
single-process path that never touches MPI, and, under `mpiexec -n 2` on this machine, that
2 ranks give the parameters 1 rank gives, that a rank that dies ends the job, and that the last
checkpoint then resumes. The MPI tests skip, saying why, without mpi4py or mpiexec; under
FASTTRAIN_STRICT=1 (CI, which installs mpi4py and the mpich wheel with ".[test]") they run."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fasttrain import checkpoint, distributed
from fasttrain.config import TrainConfig
from fasttrain.data import Batches, Corpus
from fasttrain.models import from_config
from fasttrain.train import CHECKPOINT, train
from conftest import STRICT, assert_close

JOB = Path(__file__).with_name("_mpi_job.py")
LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMI_SIZE", "PMI_RANK",
                      "PMI_FD", "PMIX_RANK")
# float32 parameters of size ~1 after 10 steps: 1 rank and 2 ranks sum the same gradients in a
# different order (one GEMM over the batch against two half-batch GEMMs and an all-reduce); we
# measured differences of 9e-7. A missing or doubled 1/ranks moves SGD's parameters by ~1e-2.
ATOL = 1e-5


def _mpiexec():
    """The mpiexec next to this Python (the mpich wheel installs it there), else on PATH."""
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


def _why_no_mpi():
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py is not installed (pip install 'fasttrain[mpich]')"
    if _mpiexec() is None:
        return "no mpiexec next to this Python or on PATH (pip install mpich, or a system MPI)"
    return None


needs_mpi = pytest.mark.skipif(bool(_why_no_mpi()) and not STRICT, reason=str(_why_no_mpi()))


def _clean_env():
    """This environment without a launcher's variables (in case pytest itself was launched)."""
    return {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}


def mpirun(ranks, spec, timeout=180, **env):
    """Run tests/_mpi_job.py on `ranks` ranks; (CompletedProcess, seconds)."""
    if _why_no_mpi():  # reached only under FASTTRAIN_STRICT=1: CI must run these
        pytest.fail(f"FASTTRAIN_STRICT=1 and {_why_no_mpi()}")
    cmd = [_mpiexec(), "-n", str(ranks), sys.executable, str(JOB), json.dumps(spec)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**_clean_env(), **env})
    return proc, time.perf_counter() - t0


def tiny(corpus_file, out_dir, **kw):
    # one thread per process: 2 ranks have the 2 cores (the kernels' bits do not depend on it)
    base = dict(data=str(corpus_file), context=4, n_embd=8, hidden=32, batch_size=64, steps=10,
                warmup=2, lr=1e-2, min_lr=1e-3, eval_interval=10, checkpoint_interval=5,
                log_interval=5, val_fraction=0.05, threads=1, out_dir=str(out_dir))
    return {**base, **kw}


def params(run_dir):
    arrays, meta = checkpoint.load(Path(run_dir) / CHECKPOINT)
    return arrays["params"], meta


def metrics(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


# ----------------------------------------------------------------------------------------------
# without MPI

@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_shares_are_disjoint_and_make_the_whole_batch(size):
    tokens = np.arange(1000, dtype=np.uint16) % 251
    whole = Batches(tokens, 4, 12, seed=7)
    shards = [Batches(tokens, 4, 12, seed=7, shard=(r, size)) for r in range(size)]
    for _ in range(3):
        x, y = whole.next()
        parts = [b.next() for b in shards]
        assert all(len(px) == 12 // size for px, _ in parts)
        np.testing.assert_array_equal(np.concatenate([px for px, _ in parts]), x)
        np.testing.assert_array_equal(np.concatenate([py for _, py in parts]), y)
    assert all(b.state() == whole.state() for b in shards)  # one data position for every rank


def test_a_batch_that_does_not_split_evenly_is_refused():
    with pytest.raises(ValueError, match="batch of 10 windows does not split evenly over 4 ranks"):
        Batches(np.zeros(100, dtype=np.uint8), 4, 10, seed=0, shard=(0, 4))


def test_the_rank_count_comes_from_the_launcher_environment(monkeypatch):
    for var in LAUNCHER_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    assert distributed.launched_size() == 1
    monkeypatch.setenv("PMI_SIZE", "4")            # MPICH's Hydra, Intel MPI, srun --mpi=pmi2
    assert distributed.launched_size() == 4
    monkeypatch.delenv("PMI_SIZE")
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "3")  # Open MPI's mpirun
    assert distributed.launched_size() == 3
    monkeypatch.delenv("OMPI_COMM_WORLD_SIZE")
    monkeypatch.setenv("PMIX_RANK", "0")           # PMIx: the size is known only to MPI
    assert distributed.launched_size() is None


def test_a_launcher_without_mpi4py_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now raises ImportError
    monkeypatch.setattr(distributed, "_world", None)
    with pytest.raises(distributed.DistributedError, match="2 ranks.*mpi4py is not installed"):
        distributed.world()


def test_one_process_never_imports_mpi4py():
    # train() asks distributed.world() first; it is the one place that imports mpi4py
    code = ("import sys, fasttrain.cli, fasttrain.train; from fasttrain import distributed; "
            "assert distributed.world() is distributed.SOLO; "
            "assert 'mpi4py' not in sys.modules, 'mpi4py was imported'; print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=_clean_env())
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr


def test_the_default_thread_count_shares_the_cores(monkeypatch):
    w = distributed.World()
    w.local_size = 2
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4}, raising=False)
    assert w.default_threads() == 2                 # 5 cores, 2 ranks on this machine
    w.local_size = 8
    assert w.default_threads() == 1                 # never 0
    monkeypatch.setenv("OMP_NUM_THREADS", "3")      # the user's setting wins
    assert w.default_threads() == 3


# ----------------------------------------------------------------------------------------------
# under mpiexec -n 2

@pytest.fixture(scope="module")
def reference(corpus_file, tmp_path_factory):
    """The same 10 AdamW steps on 1 rank (in this process) and on 2 ranks (mpiexec)."""
    if _why_no_mpi() and not STRICT:
        pytest.skip(_why_no_mpi())
    root = tmp_path_factory.mktemp("reference")
    train(TrainConfig(**tiny(corpus_file, root / "one")), progress=False)
    proc, _ = mpirun(2, {"config": tiny(corpus_file, root / "two")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root / "one", root / "two", proc


@needs_mpi
def test_two_ranks_give_the_parameters_of_one(reference, corpus_file):
    one, two, proc = reference
    p1, meta1 = params(one)
    p2, meta2 = params(two)
    assert (meta1["ranks"], meta2["ranks"], meta2["step"]) == (1, 2, 10)
    assert_close(p2, p1, rtol=0, atol=ATOL, what="parameters, 2 ranks vs 1")
    # the ranks' first batches: disjoint halves, together the batch that 1 rank drew
    cfg = TrainConfig(**tiny(corpus_file, two))
    first, _ = Batches(Corpus.open(one).train, cfg.context, cfg.batch_size,
                       seed=cfg.seed + 1).next()
    halves = [np.load(two / f"first_batch.rank{r}.npy") for r in (0, 1)]
    np.testing.assert_array_equal(np.concatenate(halves), first)
    # the logged loss is the mean over the whole batch, logged once (by rank 0 alone)
    m1, m2 = metrics(one), metrics(two)
    assert [(r["step"], r["split"]) for r in m2] == [(r["step"], r["split"]) for r in m1]
    assert_close([r["loss"] for r in m2], [r["loss"] for r in m1], rtol=1e-5, atol=0,
                 what="logged losses")
    # the epoch counts the global batch's tokens: the same on 2 ranks as on 1
    assert [r.get("epoch") for r in m2] == [r.get("epoch") for r in m1]
    assert m1[1]["epoch"] == m1[1]["step"] * cfg.batch_size / len(Corpus.open(one).train)
    assert proc.stdout.count("val loss") == 2, "only rank 0 prints"


@needs_mpi
def test_two_ranks_match_one_with_sgd_and_gradient_accumulation(corpus_file, tmp_path):
    # SGD, unlike AdamW, scales its step with the gradient: a wrong 1/ranks would show
    kw = dict(optimizer="sgd", lr=0.5, min_lr=0.05, grad_clip=0.0, grad_accum=2)
    train(TrainConfig(**tiny(corpus_file, tmp_path / "one", **kw)), progress=False)
    proc, _ = mpirun(2, {"config": tiny(corpus_file, tmp_path / "two", **kw)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_close(params(tmp_path / "two")[0], params(tmp_path / "one")[0], rtol=0, atol=ATOL,
                 what="SGD parameters, 2 ranks vs 1")


@needs_mpi
def test_two_ranks_train_the_gpt_as_one(corpus_file, tmp_path):
    # the GPT's batches are (B, T) sequences: each rank takes half of the sequences
    kw = dict(model="gpt", n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=8,
              sample_tokens=0)
    train(TrainConfig(**tiny(corpus_file, tmp_path / "one", **kw)), progress=False)
    proc, _ = mpirun(2, {"config": tiny(corpus_file, tmp_path / "two", **kw)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    two, one = params(tmp_path / "two")[0], params(tmp_path / "one")[0]
    # the key bias shifts every score of a query by the same q . b_k, which the softmax cancels:
    # its true gradient is 0, the computed one rounding noise that depends on the summation
    # order (ranks), and AdamW's m / sqrt(v) turns noise into steps. So it is only checked to
    # stay near 0; every other parameter must agree.
    model = from_config(TrainConfig(**tiny(corpus_file, tmp_path / "x", **kw)), 256)
    span, C = model.arena.span("h.0.attn.c_attn.bias"), kw["n_embd"]
    k_bias = np.zeros(len(one), bool)
    k_bias[span.start + C:span.start + 2 * C] = True
    assert np.abs(one[k_bias]).max() < 1e-4 and np.abs(two[k_bias]).max() < 1e-4
    assert_close(two[~k_bias], one[~k_bias], rtol=0, atol=ATOL,
                 what="GPT parameters but the key bias, 2 ranks vs 1")
    assert_close([r["loss"] for r in metrics(tmp_path / "two")],
                 [r["loss"] for r in metrics(tmp_path / "one")], rtol=1e-5, atol=0,
                 what="GPT losses, 2 ranks vs 1")


@needs_mpi
def test_a_batch_that_does_not_split_over_the_ranks_stops_every_rank(corpus_file, tmp_path):
    proc, seconds = mpirun(2, {"config": tiny(corpus_file, tmp_path / "run", batch_size=63,
                                              grad_accum=1)}, timeout=120)
    assert proc.returncode != 0
    assert "does not split evenly over 2 ranks" in proc.stderr


@needs_mpi
@pytest.mark.parametrize("how", ["kill", "raise", "exit"])
def test_a_rank_that_dies_ends_the_job_and_the_checkpoint_resumes(how, reference, corpus_file,
                                                                  tmp_path):
    one, two, _ = reference
    run = tmp_path / "run"
    cfg = tiny(corpus_file, run)
    # rank 1 fails in its 8th step; the checkpoint of step 5 is on disk
    proc, seconds = mpirun(2, {"config": cfg, "fail": {"rank": 1, "step": 8, "how": how}},
                           timeout=120)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert seconds < 60, f"the job took {seconds:.0f} s to end after rank 1 died"
    if how == "raise":
        assert ("fasttrain: rank 1 of 2 stopped: RuntimeError: injected failure at step 8"
                in proc.stderr), proc.stderr
    _, meta = params(run)
    assert meta["step"] == 5 and meta["ranks"] == 2
    if how == "raise":
        # every rank count can resume: 1 rank continues where 2 left off
        train(TrainConfig(**cfg), resume=True, progress=False)
        assert_close(params(run)[0], params(one)[0], rtol=0, atol=ATOL, what="resumed on 1 rank")
    elif how == "kill":
        proc, _ = mpirun(2, {"config": cfg, "resume": True})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        np.testing.assert_array_equal(params(run)[0], params(two)[0])  # bit for bit


@needs_mpi
def test_a_rank_that_exits_with_status_0_mid_run_is_named_and_fails_the_job(corpus_file,
                                                                            tmp_path):
    """os._exit(0) on one rank looked to the launcher like a rank that had finished: it killed
    the others and the job ended with status 0, with not a word. Now the job fails, saying which
    rank left and at which step."""
    run = tmp_path / "run"
    proc, seconds = mpirun(2, {"config": tiny(corpus_file, run),
                               "fail": {"rank": 1, "step": 8, "how": "exit0"}}, timeout=120)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "fasttrain: rank 1 of 2 left the job at step 8 (os._exit(0) in mid-run)" in proc.stderr
    assert params(run)[1]["step"] == 5


@needs_mpi
def test_a_rank_that_hangs_ends_the_job_after_the_timeout(corpus_file, tmp_path):
    run = tmp_path / "run"
    proc, seconds = mpirun(2, {"config": tiny(corpus_file, run),
                               "fail": {"rank": 1, "step": 8, "how": "hang"}},
                           timeout=120, **{distributed.TIMEOUT_VARIABLE: "3"})
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert seconds < 60, f"the job took {seconds:.0f} s to end after rank 1 stopped"
    assert "fasttrain: rank 0 of 2: no answer from the other ranks for 3 s" in proc.stderr
    assert params(run)[1]["step"] == 5


def test_a_bad_timeout_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(distributed.TIMEOUT_VARIABLE, "soon")
    with pytest.raises(distributed.DistributedError, match="FASTTRAIN_MPI_TIMEOUT must be"):
        distributed.timeout_seconds()
    monkeypatch.setenv(distributed.TIMEOUT_VARIABLE, "0")
    assert distributed.timeout_seconds() == 0

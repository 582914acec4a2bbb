"""Data-parallel training over MPI ranks (mpi4py): who this process is, and the few collectives
the training loop needs.

    mpiexec -n 2 fasttrain train ...       # two replicas, each on half of every batch

Every rank holds a full replica of the model. A global batch of B windows is drawn from one
seeded generator that every rank advances identically, and rank r takes the r-th of `size`
equal slices of it (fasttrain.data.Batches, `shard=`): the ranks' shares are disjoint, their
union is exactly the batch one process would draw, so batch_size and lr mean the same thing for
any number of ranks, and the data position in a checkpoint is valid for any number of ranks.
Each rank sums its gradients into the arena; one in-place MPI_Allreduce (sum) over the whole
gradient arena, a single flat buffer, adds the ranks' sums, and the 1/size of the average is
folded into the optimizer's grad_scale together with clipping and gradient accumulation, so it
costs no extra pass. Every rank then takes the same AdamW step on the same gradients, and the
replicas stay identical (checked at every checkpoint).

Without a launcher, or with one rank, `world()` is SOLO: every method returns at once and
mpi4py is never imported. Under a launcher the rank count is read from the environment it sets
(MPICH/Intel MPI/Slurm's PMI: PMI_SIZE; Open MPI: OMPI_COMM_WORLD_SIZE; PMIx: PMIX_RANK)
before mpi4py is imported, so `mpiexec -n 1` is the same as no launcher at all.

Failure: MPI cannot time out a collective, so a rank that stops taking part must end the job.
A Python exception on any rank prints that rank's error and calls MPI_Abort, which ends every
rank (`abort_on_error`); a rank that dies outright (killed, or exits) is noticed by the launcher,
which ends the others (MPICH's Hydra and Open MPI's mpirun both do; a rank that leaves by
os._exit during training first names itself and its step and aborts the job, since with status 0
the launcher would end the others silently, as if the job had finished); a rank that hangs without
dying is caught by a watchdog thread on the others, which aborts the job when one collective
has waited FASTTRAIN_MPI_TIMEOUT seconds (600 by default; 0 turns it off). Only rank 0 writes
to the run directory (checkpoints, metrics, config, plot), and checkpoints are written
atomically, so the last checkpoint is usable whatever happened to the job.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import sys
import threading
import time
import traceback
import zlib

import numpy as np

# environment variables that launchers set for each process, holding the number of ranks
SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
# set by PMIx launchers (Open MPI 5's prterun, srun --mpi=pmix), which publish no size variable
RANK_ONLY_VARIABLES = ("PMIX_RANK",)
TIMEOUT_VARIABLE = "FASTTRAIN_MPI_TIMEOUT"
DEFAULT_TIMEOUT = 600.0  # seconds one collective may wait; generous: rank 0 may be saving


class DistributedError(RuntimeError):
    """MPI is needed but missing or mismatched, or the replicas no longer agree."""


def timeout_seconds() -> float:
    """How long a rank waits in one collective before it aborts the job: FASTTRAIN_MPI_TIMEOUT
    seconds (0 turns the watchdog off), else 600."""
    value = os.environ.get(TIMEOUT_VARIABLE, "").strip()
    try:
        return float(value) if value else DEFAULT_TIMEOUT
    except ValueError:
        raise DistributedError(
            f"{TIMEOUT_VARIABLE} must be a number of seconds, got {value!r}") from None


def launched_size() -> int | None:
    """The rank count a launcher announced in the environment (None: not launched, or a PMIx
    launcher that only tells after MPI starts). Reads no library."""
    for var in SIZE_VARIABLES:
        value = os.environ.get(var, "").strip()
        if value.isdigit():
            return int(value)
    if any(var in os.environ for var in RANK_ONLY_VARIABLES):
        return None
    return 1


class World:
    """This process's rank among `size` replicas and the collectives over them. The base
    class is the single-process world (SOLO): every collective is the identity."""

    rank, size, local_size = 0, 1, 1
    comm = None
    step = 0  # the optimizer step the training loop is taking (1-based): named if a rank leaves

    def __init__(self):
        # seconds spent in the gradient all-reduce, and in every collective (the scalars too),
        # waiting for the slowest rank included: benchmarks/bench_distributed.py reports them
        self.allreduce_seconds = 0.0
        self.collective_seconds = 0.0

    @property
    def is_root(self) -> bool:
        """Rank 0: the one that writes checkpoints, metrics and plots, and prints."""
        return self.rank == 0

    def __repr__(self):
        return f"World(rank={self.rank}, size={self.size})"

    # the collectives, identities for one process -----------------------------------------------
    def allreduce_grads(self, grads: np.ndarray) -> None:
        """grads (P,) <- the sum of every rank's grads, in place."""

    def sum(self, *values: float) -> tuple[float, ...]:
        """Each value summed over the ranks (float64)."""
        return values

    def any(self, flag: bool) -> bool:
        """True on every rank if it is true on any."""
        return bool(flag)

    def broadcast_state(self, model, opt, batches, step: int) -> int:
        """Make every rank's parameters, optimizer state, data position and step rank 0's."""
        return step

    def check_replicas(self, params: np.ndarray) -> None:
        """Raise DistributedError if the ranks' parameters are not bit for bit the same."""

    def share(self, iterable):
        """Every size-th item of `iterable`, starting at this rank's index."""
        return iterable

    @contextlib.contextmanager
    def rank0_first(self):
        """Rank 0 runs the block, then the others (who then find what rank 0 wrote)."""
        yield

    @contextlib.contextmanager
    def abort_on_error(self):
        """An exception on one rank ends every rank (see the module's docstring)."""
        yield

    def default_threads(self) -> int:
        """Kernel threads per rank when neither --threads nor OMP_NUM_THREADS sets them: the
        cores this process may use, shared evenly by the ranks on this machine."""
        from fasttrain.threads import default_num_threads

        if self.local_size == 1 or os.environ.get("OMP_NUM_THREADS", "").strip():
            return default_num_threads()
        return max(1, default_num_threads() // self.local_size)


SOLO = World()


class MPIWorld(World):
    """World over mpi4py's COMM_WORLD."""

    def __init__(self, MPI, announced: int | None):
        super().__init__()
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        if announced is not None and announced != self.size:
            # e.g. Open MPI's mpirun starting a Python whose mpi4py loads MPICH: each process
            # would be a world of one, and N unrelated copies would train over the same files
            raise DistributedError(
                f"the launcher started {announced} ranks but MPI sees {self.size}: mpi4py's MPI "
                f"library ({MPI.Get_library_version().splitlines()[0].strip()}) is not the "
                f"launcher's; use the mpiexec that belongs to it")
        # ranks sharing this machine (and its cores): MPI-3 shared-memory split
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED)
        self.local_size = node.Get_size()
        node.Free()
        self._scalars = np.zeros(8, dtype=np.float64)
        self._waiting = None  # (what, since when) while in a collective
        self.timeout = timeout_seconds()
        if self.timeout > 0:
            threading.Thread(target=self._watchdog, name="fasttrain-mpi-watchdog",
                             daemon=True).start()

    @contextlib.contextmanager
    def _collective(self, what: str):
        t0 = time.perf_counter()
        self._waiting = (what, time.monotonic())
        try:
            yield
        finally:
            self._waiting = None
            self.collective_seconds += time.perf_counter() - t0

    def _watchdog(self):
        # A rank that hangs (stopped, deadlocked, cut off) without dying is not noticed by the
        # launcher, and a blocking collective never returns: the others would wait forever.
        # mpi4py releases the GIL inside MPI calls and asks for MPI_THREAD_MULTIPLE, so this
        # thread runs, and may call MPI_Abort, while the main thread is blocked in one.
        while True:
            time.sleep(min(1.0, self.timeout / 4))
            waiting = self._waiting
            if waiting is not None and time.monotonic() - waiting[1] > self.timeout:
                print(f"fasttrain: rank {self.rank} of {self.size}: no answer from the other "
                      f"ranks for {self.timeout:g} s in {waiting[0]} (a rank hangs, or died "
                      f"without its launcher noticing); aborting all ranks (MPI_Abort); the "
                      f"last checkpoint written stays usable ({TIMEOUT_VARIABLE} sets the "
                      f"timeout)", file=sys.stderr, flush=True)
                self._abort(3)

    def allreduce_grads(self, grads):
        t0 = time.perf_counter()
        with self._collective("the gradient all-reduce"):
            self.comm.Allreduce(self.MPI.IN_PLACE, grads, op=self.MPI.SUM)
        self.allreduce_seconds += time.perf_counter() - t0

    def sum(self, *values):
        buf = self._scalars[:len(values)]
        buf[...] = values
        with self._collective("an all-reduce of the loss"):
            self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        return tuple(float(v) for v in buf)

    def any(self, flag):
        return self.sum(1.0 if flag else 0.0)[0] > 0

    def broadcast_state(self, model, opt, batches, step):
        # arrays in place (rank 0's buffers are the source), then the small things as one object
        with self._collective("the broadcast of rank 0's state"):
            self.comm.Bcast(model.arena.params, root=0)
            for array in opt.state_arrays().values():
                self.comm.Bcast(array, root=0)
            step, opt.step_count, data_state = self.comm.bcast(
                (step, opt.step_count, batches.state()), root=0)
        batches.set_state(data_state)
        return step

    def check_replicas(self, params):
        # one CRC-32 per rank, gathered: the replicas start equal and take the same steps on
        # the same reduced gradients, so any difference is a bug (or an MPI whose all-reduce
        # gives different ranks different bits) and must not go unnoticed into a checkpoint
        crc = zlib.crc32(memoryview(np.ascontiguousarray(params)).cast("B"))
        with self._collective("the check of the replicas before a checkpoint"):
            crcs = self.comm.allgather(crc)
        if len(set(crcs)) > 1:
            differ = [r for r, c in enumerate(crcs) if c != crcs[0]]
            raise DistributedError(f"the parameters of rank(s) {differ} differ from rank 0's: "
                                   f"the replicas have diverged")

    def share(self, iterable):
        return itertools.islice(iterable, self.rank, None, self.size)

    @contextlib.contextmanager
    def rank0_first(self):
        if self.rank == 0:
            yield  # an exception here aborts the job (abort_on_error)
        with self._collective("a barrier while rank 0 prepares the data"):
            self.comm.Barrier()
        if self.rank != 0:
            yield

    @contextlib.contextmanager
    def abort_on_error(self):
        # Without this, a rank that raises would wait in MPI_Finalize (at exit) while the others
        # wait for it in the next all-reduce: a hang, with the error printed or not. MPI_Abort
        # ends every rank of the job; mpi4py's own `python -m mpi4py` does the same. Anything
        # that leaves the training early on one rank (even SystemExit(0)) strands the others.
        #
        # os._exit skips every handler: a rank that called it with status 0 was taken by the
        # launcher for one that had finished, which then killed the others (SIGKILL: they
        # cannot say a word), and the job ended with status 0, silently. So while the loop
        # runs, os._exit in this process first says which rank left at which step, then ends
        # the job as a failure. (A forked child's os._exit is its own business: passed on.)
        real_exit, pid = os._exit, os.getpid()

        def leaving(status=0):
            if os.getpid() == pid:
                print(f"fasttrain: rank {self.rank} of {self.size} left the job at step "
                      f"{self.step} (os._exit({status}) in mid-run); aborting all {self.size} "
                      f"ranks (MPI_Abort); the last checkpoint written stays usable",
                      file=sys.stderr, flush=True)
                self._abort(status or 2)
            real_exit(status)

        os._exit = leaving
        try:
            yield
        except BaseException as e:
            name = type(e).__name__
            print(f"fasttrain: rank {self.rank} of {self.size} stopped: {name}: {e}\n"
                  f"fasttrain: aborting all {self.size} ranks (MPI_Abort); the last checkpoint "
                  f"written stays usable", file=sys.stderr, flush=True)
            if not isinstance(e, (KeyboardInterrupt, DistributedError)):
                traceback.print_exc(file=sys.stderr)
            self._abort(130 if isinstance(e, KeyboardInterrupt) else 2)
        finally:
            os._exit = real_exit

    def _abort(self, code: int) -> None:
        # The launcher forwards each rank's stderr through a pipe, and MPI_Abort makes it kill
        # every process at once: a message still in the pipe is then lost (it happened in about
        # one run of ten under MPICH's Hydra). A second's pause lets it through first.
        sys.stderr.flush()
        time.sleep(1.0)
        self.comm.Abort(code)


_world: World | None = None


def world() -> World:
    """This process's World, made once: SOLO unless a launcher started more than one rank."""
    global _world
    if _world is None:
        size = launched_size()
        if size == 1:
            _world = SOLO
        else:
            try:
                from mpi4py import MPI
            except ImportError as e:
                raise DistributedError(
                    f"started by an MPI launcher ({size or 'several'} ranks) but mpi4py is not "
                    f"installed: pip install 'fasttrain[mpich]' (MPICH wheels, no system MPI "
                    f"needed) or 'fasttrain[mpi]' (with a system MPI such as Open MPI)") from e
            w = MPIWorld(MPI, size)
            _world = SOLO if w.size == 1 else w
    return _world

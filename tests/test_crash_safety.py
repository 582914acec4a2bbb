"""Training survives SIGKILL: `fasttrain train` in a subprocess is killed at random moments,
twice inside a checkpoint write (the temporary file half written; written but not yet renamed),
and resumed each time. After every kill a valid checkpoint exists and at most one checkpoint
interval of steps is lost; the final parameters and optimizer state equal an uninterrupted run's
bit for bit. Corrupt or foreign checkpoints are refused, and the good one is kept.

The child runs fasttrain.cli.main behind a small shim (CHILD) that slows down checkpoint writes
and announces them on stdout, so the parent can kill inside the few milliseconds a real write
takes. FASTTRAIN_CRASH_SEED picks other random kill moments (the seed is in every message).
"""
import json
import os
import random
import signal
import subprocess
import sys

import numpy as np
import pytest

from fasttrain import checkpoint
from fasttrain.config import TrainConfig
from fasttrain.data import builtin_corpus
from fasttrain.train import CHECKPOINT, train

STEPS, INTERVAL = 60, 5
SEED = int(os.environ.get("FASTTRAIN_CRASH_SEED", "0"))

# The child: checkpoint writes go through a file object that writes the first half, says
# "ckpt-half <path>", pauses, then writes the rest; fsync says "ckpt-fsync" and pauses before the
# rename. Everything else is the real `fasttrain train`.
CHILD = r"""
import os, sys, time
import fasttrain.checkpoint as ck

class SlowFile:
    def __init__(self, f):
        self.f = f
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return self.f.__exit__(*exc)
    def write(self, blob):
        half = len(blob) // 2
        self.f.write(blob[:half]); self.f.flush()
        print("ckpt-half", flush=True); time.sleep(0.3)
        return self.f.write(blob[half:])
    def __getattr__(self, name):
        return getattr(self.f, name)

real_fsync = os.fsync
def slow_fsync(fd):
    real_fsync(fd)
    if not os.path.isdir(f"/proc/self/fd/{fd}") and os.readlink(f"/proc/self/fd/{fd}").find(".tmp-") >= 0:
        print("ckpt-fsync", flush=True); time.sleep(0.3)

ck.open = lambda path, mode="r": SlowFile(open(path, mode))
ck.os = type(os)("os_shim")
ck.os.__dict__.update(os.__dict__)
ck.os.fsync = slow_fsync
from fasttrain.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "text.txt"
    path.write_text(builtin_corpus()[:40_000])
    return path


def settings(corpus_file, out_dir):
    return dict(data=str(corpus_file), context=4, n_embd=8, hidden=32, batch_size=64,
                steps=STEPS, warmup=5, lr=1e-2, min_lr=1e-3, eval_interval=1000,
                checkpoint_interval=INTERVAL, log_interval=1, threads=1, out_dir=str(out_dir))


def start(args):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-c", CHILD, "train", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)


def run_until(proc, rng, kill_at):
    """Read the child's lines; SIGKILL it at `kill_at` ("half", "fsync" or a step number, then
    after a random pause of 0-30 ms). Returns (the last step it reported, whether it was killed)."""
    last = 0
    for line in proc.stdout:
        if line.startswith("step ") and "/" in line.split()[1]:
            last = int(line.split()[1].split("/")[0])
        hit = (line.startswith("ckpt-half") and kill_at == "half"
               or line.startswith("ckpt-fsync") and kill_at == "fsync"
               or isinstance(kill_at, int) and line.startswith("step ") and last >= kill_at)
        if hit:
            if isinstance(kill_at, int):
                try:
                    proc.wait(timeout=rng.uniform(0, 0.03))
                except subprocess.TimeoutExpired:
                    pass
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return last, True
    return last, proc.wait() != 0 and None


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="the child's shim tells files apart through /proc/self/fd (Linux)")
def test_sigkill_at_random_moments_then_resume_is_bit_exact(corpus_file, tmp_path):
    kw = settings(corpus_file, tmp_path / "whole")
    train(TrainConfig(**kw), progress=False)
    expected, expected_meta = checkpoint.load(tmp_path / "whole" / CHECKPOINT)

    rng = random.Random(SEED)
    run = tmp_path / "killed"
    kw["out_dir"] = str(run)
    # where each attempt is killed: inside the checkpoint writes of steps 10 and 20, then at
    # random steps that are spread over the rest of the run, then not at all
    plan = ["half", "fsync", *sorted(rng.sample(range(21, STEPS - 1), 4)), None]
    survived, lost, args = 0, [], [f"--{k}={v}" for k, v in kw.items()]
    ckpt = run / CHECKPOINT
    for attempt, kill_at in enumerate(plan):
        what = f"seed {SEED}, attempt {attempt} (kill at {kill_at})"
        resume = ckpt.exists()
        proc = start(["--resume", f"--out_dir={run}"] if resume else args)
        if kill_at in ("half", "fsync"):
            # skip the first checkpoint's write: kill inside the second one after this start
            kill_at = _second(kill_at)
        last, killed = run_until(proc, rng, kill_at)
        if kill_at is None:
            assert killed is False, f"{what}: the final run failed"
            break
        assert killed, f"{what}: the child finished before the kill"
        # (a) a valid checkpoint exists, and nothing but it and the run's own files
        assert ckpt.exists(), f"{what}: no checkpoint after the kill (last step {last})"
        _, meta = checkpoint.load(ckpt)
        # (b) at most one interval of steps is lost
        lost.append(last - meta["step"])
        assert 0 <= last - meta["step"] <= INTERVAL, f"{what}: last step {last}, checkpoint {meta['step']}"
        survived += 1
    # (c) the same bits as the uninterrupted run
    got, meta = checkpoint.load(ckpt)
    assert meta["step"] == STEPS and meta["optimizer_steps"] == expected_meta["optimizer_steps"]
    assert sorted(got) == sorted(expected)
    for name in expected:
        assert np.array_equal(got[name], expected[name]), f"seed {SEED}: {name} differs"
    assert meta["val_loss"] == expected_meta["val_loss"]
    train_steps = [json.loads(l)["step"] for l in (run / "metrics.jsonl").read_text().splitlines()
                   if json.loads(l)["split"] == "train"]
    assert train_steps == list(range(1, STEPS + 1)), "each step logged once across the kills"
    # the killed writes' temporary files are swept by a later save
    assert not list(run.glob(f".{CHECKPOINT}.tmp-*")), sorted(p.name for p in run.iterdir())
    assert survived == len(plan) - 1
    print(f"survived {survived} SIGKILLs (seed {SEED}); steps lost per kill {lost}")


class _second:
    """A kill point that fires at the second checkpoint write the child announces."""

    def __init__(self, marker):
        self.marker, self.seen = marker, 0

    def __eq__(self, other):
        if other != self.marker:
            return False
        self.seen += 1
        return self.seen == 2

    def __repr__(self):
        return f"the second {self.marker}"


@pytest.fixture(scope="module")
def good_run(corpus_file, tmp_path_factory):
    """A finished 10-step run, and a second one whose model has other hidden/n_embd sizes."""
    base = tmp_path_factory.mktemp("runs")
    kw = {**settings(corpus_file, base / "good"), "steps": 10}
    train(TrainConfig(**kw), progress=False)
    train(TrainConfig(**{**kw, "out_dir": str(base / "other"), "hidden": 16, "n_embd": 4}),
          progress=False)
    return base


def _flip(pos):
    def corrupt(blob, other):
        bad = bytearray(blob)
        bad[pos if pos >= 0 else len(blob) + pos] ^= 0x01
        return bytes(bad)
    return corrupt


@pytest.mark.parametrize("corrupt,message", [
    pytest.param(_flip(12), "not a readable checkpoint|checksum", id="flip-header"),
    pytest.param(lambda blob, other: _flip(len(blob) // 2)(blob, other), "checksum", id="flip-data"),
    pytest.param(_flip(-1), "checksum", id="flip-last"),
    pytest.param(lambda blob, other: blob[:len(blob) // 2], "corrupt or truncated", id="half"),
    pytest.param(lambda blob, other: blob[:-1], "corrupt or truncated", id="one-byte-short"),
    pytest.param(lambda blob, other: b"", "corrupt or truncated", id="empty"),
    pytest.param(lambda blob, other: other, "different model: n_embd=4 \\(now 8\\), hidden=16",
                 id="other-model"),
])
def test_bad_checkpoints_are_refused_and_kept(good_run, tmp_path, capsys, corrupt, message):
    import re
    import shutil

    from fasttrain.cli import main

    run = tmp_path / "run"
    shutil.copytree(good_run / "good", run)
    blob = corrupt((run / CHECKPOINT).read_bytes(), (good_run / "other" / CHECKPOINT).read_bytes())
    (run / CHECKPOINT).write_bytes(blob)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert main(["train", "--resume", f"--out_dir={run}", "--steps=20"]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and "Traceback" not in err, err
    assert str(run / CHECKPOINT) in err, f"the message names the file: {err}"
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert after == before, "a refused resume changed the run directory"

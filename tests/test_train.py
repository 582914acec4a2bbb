"""Training end to end on a tiny model: the loss falls, backends agree, PyTorch agrees on a step,
resume after Ctrl-C is bit-exact, NaN stops the run, sampling and eval work, errors are clear."""
import json
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from fasttrain import checkpoint
from fasttrain.config import TrainConfig
from fasttrain.models import MLP
from fasttrain.train import CHECKPOINT, TrainingError, train
from conftest import assert_close


def tiny(corpus_file, out_dir, **kw):
    base = dict(data=str(corpus_file), context=4, n_embd=8, hidden=32, batch_size=64, steps=40,
                warmup=5, lr=1e-2, min_lr=1e-3, eval_interval=20, checkpoint_interval=10,
                log_interval=10, out_dir=str(out_dir))
    return TrainConfig(**{**base, **kw})


def val_losses(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(l)["loss"] for l in lines if json.loads(l)["split"] == "val"]


def train_epochs(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [(r["step"], r["epoch"]) for r in map(json.loads, lines) if r["split"] == "train"]


def test_stdlib_run_logs_the_epoch(tmp_path, capsys):
    """--data=stdlib trains (in seconds: the corpus is read and tokenised once); each training
    record and progress line carries the epoch, tokens seen / tokens of the train split."""
    from fasttrain.data import Corpus

    cfg = tiny("stdlib", tmp_path / "run", steps=6, batch_size=32, val_fraction=0.01,
               eval_interval=6, log_interval=3, sample_tokens=0)
    summary = train(cfg, progress=False)
    assert math.isfinite(summary["val_loss"])
    meta = json.loads((tmp_path / "run" / "data.json").read_text())
    assert meta["source"] == "stdlib" and meta["train_files"] > meta["val_files"] > 0
    n_train = len(Corpus.open(tmp_path / "run").train)
    assert n_train > 5_000_000
    assert train_epochs(tmp_path / "run") == [(s, s * 32 / n_train) for s in range(1, 7)]
    out = capsys.readouterr().out
    assert f"| epoch {3 * 32 / n_train:.3g}" in out and f"| epoch {6 * 32 / n_train:.3g}" in out


def test_loss_falls(corpus_file, tmp_path):
    summary = train(tiny(corpus_file, tmp_path / "run", steps=150), progress=False)
    losses = val_losses(tmp_path / "run")
    assert losses[0] == pytest.approx(math.log(256), abs=0.05)   # random init: uniform
    assert losses[-1] < losses[0] - 1.5                           # it learned something
    assert summary["val_perplexity"] == pytest.approx(math.exp(losses[-1]))
    for name in ("config.json", "metrics.jsonl", CHECKPOINT, "train.bin", "val.bin"):
        assert (tmp_path / "run" / name).exists(), name


def test_backends_give_the_same_losses(corpus_file, tmp_path, backend):
    reference = train(tiny(corpus_file, tmp_path / "c", steps=5, backend="c"), progress=False)
    got = train(tiny(corpus_file, tmp_path / backend, steps=5, backend=backend), progress=False)
    ref_lines = (tmp_path / "c" / "metrics.jsonl").read_text().splitlines()
    got_lines = (tmp_path / backend / "metrics.jsonl").read_text().splitlines()
    for a, b in zip(ref_lines, got_lines):
        assert_close(json.loads(b)["loss"], json.loads(a)["loss"], rtol=1e-4, atol=1e-5,
                     what=f"{backend} vs c")
    assert got["val_loss"] == pytest.approx(reference["val_loss"], rel=1e-4)


@pytest.mark.parametrize("first_layer", ["gemm", "tables"])
@pytest.mark.parametrize("activation", ["tanh", "gelu"])
def test_one_step_matches_pytorch(torch, backend, activation, first_layer):
    from fasttrain.models.torch_mlp import TorchMLP

    model = MLP(vocab_size=50, context=3, n_embd=5, hidden=16, activation=activation,
                backend=backend, first_layer=first_layer)
    model.init(0)
    noise = np.random.default_rng(1)
    for name in model.arena.names:  # biases away from 0 too, so their gradients are tested
        model.arena[name][...] += noise.standard_normal(model.arena.shape(name)) * 0.1
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 50, (32, 3)), rng.integers(0, 50, 32)
    model.arena.zero_grad()
    loss = model.forward_backward(x, y)
    ref = TorchMLP.like(model)
    ref_loss = ref(torch.tensor(x), torch.tensor(y))
    ref_loss.backward()
    assert model.uses_tables(len(x)) == (first_layer == "tables")
    assert loss == pytest.approx(ref_loss.item(), rel=1e-5)
    for name, g in ref.grads().items():
        assert_close(model.arena.grad(name), g, rtol=1e-4, atol=1e-6, what=name)


def test_gradient_accumulation_matches_one_big_batch(corpus_file, tmp_path):
    """batch_size 64 as 4 micro-batches of 16 takes the same steps as 64 at once: the arena sums
    the micro-batches' mean gradients and the optimizer's grad_scale divides by 4. SGD, since
    Adam would hide a wrong scale (its update does not depend on the gradient's scale)."""
    from fasttrain.data import Batches, Corpus
    from fasttrain.train import build, train_step

    cfg = tiny(corpus_file, tmp_path / "run", optimizer="sgd", grad_clip=0.0)
    corpus = Corpus.prepare(tmp_path / "run", cfg.data, "bytes", 0, 0.1, cfg.context)
    x, y = Batches(corpus.train, cfg.context, 64, seed=0).next()
    params = []
    for k in (1, 4):
        model, opt = build(cfg, corpus)
        for step in range(3):
            micro = [(x[i::k], y[i::k]) for i in range(k)]
            train_step(model, opt, micro, 0.5, cfg.grad_clip)
        params.append(model.arena.params.copy())
    assert_close(params[1], params[0], rtol=1e-5, atol=1e-6, what="accumulated vs one batch")


def ctrl_c_at_batch(monkeypatch, n):
    """A SIGINT while the n-th batch is drawn (during step n), as a user's Ctrl-C; returns the
    original Batches.next, to put back before resuming."""
    import fasttrain.train as train_module

    calls = {"n": 0}
    original = train_module.Batches.next

    def next_with_ctrl_c(self):
        calls["n"] += 1
        if calls["n"] == n:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self)

    monkeypatch.setattr(train_module.Batches, "next", next_with_ctrl_c)
    return original


def test_ctrl_c_then_resume_is_bit_exact(corpus_file, tmp_path, monkeypatch):
    full = tiny(corpus_file, tmp_path / "full", steps=30)
    train(full, progress=False)
    expected, _ = checkpoint.load(tmp_path / "full" / CHECKPOINT)

    # the same run, interrupted by a SIGINT during step 13, then resumed
    import fasttrain.train as train_module

    original = ctrl_c_at_batch(monkeypatch, 13)
    cut = tiny(corpus_file, tmp_path / "cut", steps=30)
    summary = train(cut, progress=False)
    assert summary["interrupted"] and summary["step"] == 13
    assert checkpoint.load(tmp_path / "cut" / CHECKPOINT)[1]["step"] == 13
    monkeypatch.setattr(train_module.Batches, "next", original)
    train(cut, resume=True, progress=False)
    got, meta = checkpoint.load(tmp_path / "cut" / CHECKPOINT)
    assert meta["step"] == 30
    for name in expected:
        assert np.array_equal(got[name], expected[name]), name
    steps = [json.loads(l)["step"] for l in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
             if json.loads(l)["split"] == "train"]
    assert steps == list(range(1, 31))  # each step logged once, across the interruption
    # the epoch is counted on from the step, not restarted by the resume
    assert train_epochs(tmp_path / "cut") == train_epochs(tmp_path / "full")


def nan_loss_at_call(monkeypatch, model_class, n):
    """model_class.forward_backward returns a NaN loss at its n-th call (the gradients stay
    finite: the guard must look at the loss too); returns the call counter, {"n": calls}."""
    calls = {"n": 0}
    original = model_class.forward_backward

    def poisoned(self, x, y):
        calls["n"] += 1
        loss = original(self, x, y)
        return float("nan") if calls["n"] == n else loss

    monkeypatch.setattr(model_class, "forward_backward", poisoned)
    return calls


def test_nan_loss_stops_and_keeps_the_last_checkpoint(corpus_file, tmp_path, monkeypatch):
    calls = nan_loss_at_call(monkeypatch, MLP, 15)
    cfg = tiny(corpus_file, tmp_path / "run", steps=30)
    with pytest.raises(TrainingError, match="step 15: loss nan"):
        train(cfg, progress=False)
    _, meta = checkpoint.load(tmp_path / "run" / CHECKPOINT)
    assert meta["step"] == 10

    calls["n"] = 0
    summary = train(tiny(corpus_file, tmp_path / "skip", steps=30, on_nonfinite="skip"),
                    progress=False)
    assert summary["skipped_steps"] == 1 and math.isfinite(summary["val_loss"])


def test_mismatched_and_corrupt_checkpoints_are_refused(corpus_file, tmp_path):
    cfg = tiny(corpus_file, tmp_path / "run", steps=10)
    train(cfg, progress=False)
    from fasttrain.train import resolve_config

    with pytest.raises(checkpoint.CheckpointError, match="different model: hidden=32"):
        train(resolve_config({"out_dir": str(tmp_path / "run"), "hidden": "64"}, None, True),
              resume=True, progress=False)
    path = tmp_path / "run" / CHECKPOINT
    blob = bytearray(path.read_bytes())
    blob[-3] ^= 1
    path.write_bytes(bytes(blob))
    with pytest.raises(checkpoint.CheckpointError, match="checksum"):
        train(cfg, resume=True, progress=False)
    assert path.read_bytes() == bytes(blob)  # nothing overwritten


def test_sample_and_eval(corpus_file, tmp_path):
    from fasttrain.sample import evaluate_text, generate, load_run, next_token_distribution

    train(tiny(corpus_file, tmp_path / "run", steps=60), progress=False)
    _, model, tok = load_run(tmp_path / "run")
    a = generate(model, tok, "The ", 40, temperature=0.8, top_k=20, seed=3)
    assert a == generate(model, tok, "The ", 40, temperature=0.8, top_k=20, seed=3)
    assert a.startswith("The ") and len(a.encode()) >= 44 - 3
    greedy = generate(model, tok, "", 10, temperature=0, seed=1)
    assert greedy == generate(model, tok, "", 10, temperature=0, seed=2)  # argmax: no randomness
    p = next_token_distribution(np.array([1.0, 2.0, 3.0, 0.0]), 1.0, top_k=2)
    assert p[0] == p[3] == 0 and p[2] > p[1] > 0 and p.sum() == pytest.approx(1)
    hot = next_token_distribution(np.array([1.0, 2.0]), 100.0, None)
    assert hot[0] == pytest.approx(0.5, abs=0.01)   # high temperature flattens
    r = evaluate_text(tmp_path / "run")
    assert r["perplexity"] == pytest.approx(math.exp(r["loss"]))
    assert r["loss"] == pytest.approx(val_losses(tmp_path / "run")[-1], rel=1e-6)


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "fasttrain", *args], capture_output=True,
                          text=True, cwd=cwd)


@pytest.mark.parametrize("make,message", [
    (lambda d: ["--no_such_key=1"], "unknown key 'no_such_key'"),
    (lambda d: ["--steps=many"], "steps must be int"),
    (lambda d: [f"--data={d / 'missing.txt'}"], "no such file or folder"),
    (lambda d: [f"--data={d / 'empty.txt'}"], "the corpus is empty"),
    (lambda d: [f"--data={d / 'one.txt'}"], "fewer than context"),
    (lambda d: [f"--data={d / 'short.txt'}", "--context=64"], "fewer than context"),
    (lambda d: ["--resume", f"--out_dir={d / 'nothing'}"], "no run to resume"),
])
def test_cli_errors_are_clear(tmp_path, make, message):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "one.txt").write_text("x")
    (tmp_path / "short.txt").write_text("short text " * 5)
    result = _cli("train", *make(tmp_path), f"--out_dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_cli_sample_without_a_run(tmp_path):
    result = _cli("sample", "--run", str(tmp_path))
    assert result.returncode == 2 and "no checkpoint" in result.stderr


# ----------------------------------------------------------------------------------------------
# samples through training, kept checkpoints, sample --step

def val_records(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["split"] == "val"]


def test_a_sample_at_every_evaluation(corpus_file, tmp_path, capsys):
    train(tiny(corpus_file, tmp_path / "run", steps=40, sample_tokens=50, sample_prompt="The "),
          progress=False)
    records = val_records(tmp_path / "run")
    assert [r["step"] for r in records] == [0, 20, 40]
    for r in records:
        assert r["sample"].startswith("The ") and len(r["sample"].encode()) >= 4 + 50 - 3
        assert r["perplexity"] == pytest.approx(math.exp(r["loss"]))
    assert len({r["sample"] for r in records}) == 3       # the model changed, so did the text
    out = capsys.readouterr().out.splitlines()
    for r in records:   # the progress output shows one line of each, after the evaluation's
        i = next(k for k, line in enumerate(out) if line.startswith(f"step {r['step']:>6d}: val"))
        assert out[i + 1].startswith("  The ") and len(out[i + 1]) <= 102
    train(tiny(corpus_file, tmp_path / "off", steps=20, sample_tokens=0), progress=False)
    assert all("sample" not in r for r in val_records(tmp_path / "off"))


def test_samples_leave_training_unchanged_and_survive_resume(corpus_file, tmp_path, monkeypatch):
    """The sample's generator is seeded by (seed, step) alone: the run's bits are those of a run
    without samples, and a run interrupted at step 13 and resumed writes the same samples."""
    import fasttrain.train as train_module

    kw = dict(steps=30, eval_interval=10, sample_tokens=40)
    train(tiny(corpus_file, tmp_path / "full", **kw), progress=False)
    train(tiny(corpus_file, tmp_path / "quiet", **{**kw, "sample_tokens": 0}), progress=False)
    expected, _ = checkpoint.load(tmp_path / "full" / CHECKPOINT)
    quiet, _ = checkpoint.load(tmp_path / "quiet" / CHECKPOINT)
    for name in expected:
        assert np.array_equal(quiet[name], expected[name]), name

    original = ctrl_c_at_batch(monkeypatch, 13)
    cut = tiny(corpus_file, tmp_path / "cut", **kw)
    assert train(cut, progress=False)["step"] == 13
    monkeypatch.setattr(train_module.Batches, "next", original)
    train(cut, resume=True, progress=False)
    got, _ = checkpoint.load(tmp_path / "cut" / CHECKPOINT)
    for name in expected:
        assert np.array_equal(got[name], expected[name]), name
    assert val_records(tmp_path / "cut") == val_records(tmp_path / "full")


def test_extending_a_finished_run_logs_each_evaluation_once(corpus_file, tmp_path):
    from fasttrain.train import resolve_config

    train(tiny(corpus_file, tmp_path / "run", steps=20, eval_interval=10, sample_tokens=10),
          progress=False)
    cfg = resolve_config({"out_dir": str(tmp_path / "run"), "steps": "30"}, None, True)
    train(cfg, resume=True, progress=False)
    assert [r["step"] for r in val_records(tmp_path / "run")] == [0, 10, 20, 30]


def test_keep_checkpoints_and_sample_from_a_step(corpus_file, tmp_path, capsys):
    from fasttrain.cli import main
    from fasttrain.sample import generate, load_run, training_sample
    from fasttrain.checkpoint import kept_steps

    run = tmp_path / "run"
    train(tiny(corpus_file, run, steps=40, keep_checkpoints=True, sample_tokens=30), progress=False)
    assert kept_steps(run) == [0, 20, 40]
    for r in val_records(run):     # each kept checkpoint holds the weights that wrote the sample
        cfg, model, tok = load_run(run, r["step"])
        assert training_sample(model, tok, cfg, r["step"]) == r["sample"]
        _, meta = checkpoint.load(run / f"ckpt-{r['step']:06d}.safetensors")
        assert meta["step"] == r["step"] and meta["val_loss"] == r["loss"]

    capsys.readouterr()
    assert main(["sample", "--run", str(run), "--step", "20", "--prompt", "The ", "--tokens",
                 "30", "--seed", "5"]) == 0
    cfg, model, tok = load_run(run, 20)
    assert capsys.readouterr().out == generate(model, tok, "The ", 30, temperature=0.8,
                                               seed=5) + "\n"
    assert main(["sample", "--run", str(run), "--step", "7"]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint of step 7" in err and "kept steps: 0, 20, 40" in err

    # by default only the last checkpoint is kept; --step names it, or says how to keep more
    plain = tmp_path / "plain"
    assert _cli("train", f"--data={corpus_file}", "--context=4", "--n_embd=8", "--hidden=32",
                "--batch_size=64", "--steps=20", "--eval_interval=10", f"--out_dir={plain}",
                "--sample_tokens=5").returncode == 0
    assert kept_steps(plain) == [] and (plain / CHECKPOINT).exists()
    capsys.readouterr()
    assert main(["sample", "--run", str(plain), "--step", "20", "--tokens", "5"]) == 0
    assert main(["sample", "--run", str(plain), "--step", "10"]) == 2
    assert "--keep_checkpoints" in capsys.readouterr().err


def test_keep_checkpoints_as_a_bare_flag():
    from fasttrain.config import parse_overrides

    assert parse_overrides(["--keep_checkpoints"]) == {"keep_checkpoints": "true"}
    assert parse_overrides(["--keep_checkpoints", "--steps=5"]) == {"keep_checkpoints": "true",
                                                                    "steps": "5"}
    assert parse_overrides(["--keep_checkpoints=false"]) == {"keep_checkpoints": "false"}
    assert TrainConfig().override(parse_overrides(["--keep-checkpoints"]), "cli").keep_checkpoints

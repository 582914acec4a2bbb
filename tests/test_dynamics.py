"""`fasttrain step`, `estimate`, `temperature` and `lr-sweep`: their numbers, and clear errors."""
import math

import numpy as np
import pytest

from fasttrain.cli import main
from fasttrain.config import TrainConfig
from fasttrain.dynamics import estimate as est
from fasttrain.dynamics.lrsweep import final_train_loss, sweep
from fasttrain.dynamics.onestep import PROBS, WORDS, one_step
from fasttrain.dynamics.temperature import distributions
from fasttrain.train import train


# ----------------------------------------------------------------------------------------------
# one step in numbers

def test_one_step_numbers(backend):
    r = one_step(lr=0.1, backend=backend)
    on, mat = WORDS.index("on"), WORDS.index("mat")
    assert np.allclose(r["probs"], PROBS, atol=1e-12)
    assert r["loss"] == pytest.approx(-math.log(0.20), abs=1e-12)        # 1.6094
    assert round(r["loss"], 2) == 1.61
    assert r["dlogits"][on] == pytest.approx(-0.80, abs=1e-12)
    assert r["dlogits"][mat] == pytest.approx(0.50, abs=1e-12)
    assert np.allclose(r["db"], r["dlogits"]) and np.allclose(r["dW"], np.outer(r["dlogits"], r["h"]))
    # AdamW's first step: m_hat / sqrt(v_hat) = g / |g|, so each weight moves by lr (to within
    # eps) against its gradient's sign; W starts at 0, so its weight decay does nothing yet
    grads = np.concatenate([r["dW"].ravel(), r["db"]])
    assert np.allclose(r["after"] - r["before"], -0.1 * np.sign(grads), atol=1e-6)
    assert r["probs_after"][on] > 0.2 and r["loss_after"] < r["loss"]


def test_cli_step_prints_the_numbers(capsys):
    assert main(["step"]) == 0
    out = capsys.readouterr().out
    assert "-log 0.20 = 1.61" in out
    assert "-0.80" in out and "+0.50" in out and "p(on) 0.20 -> " in out


def test_cli_step_refuses_a_bad_lr(capsys):
    assert main(["step", "--lr", "-1"]) == 2
    assert "lr must be finite and > 0" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# what training costs

def test_gpt3_compute():
    e = est.estimate(175e9, 300e9, 1e15)
    assert e["flops"] == pytest.approx(3.15e23, rel=1e-12)
    assert e["seconds"] == pytest.approx(3.15e8)


def test_chinchilla_compute_optimal_tokens():
    assert est.compute_optimal_tokens(70e9) == pytest.approx(1.4e12)
    e = est.estimate(70e9, 1.4e12, 1e15, price_per_hour=2.0)
    assert e["tokens_per_param"] == pytest.approx(20)
    assert e["cost"] == pytest.approx(5.88e23 / 1e15 / 3600 * 2.0)


def test_cli_estimate(capsys):
    assert main(["estimate", "--params", "175e9", "--tokens", "300e9",
                 "--flops-per-second", "1e15", "--price-per-hour", "2"]) == 0
    out = capsys.readouterr().out
    assert "3.15e+23 FLOPs" in out and "3.5e+12 tokens" in out and "9.98 years" in out
    assert "$175,000.00" in out   # 87,500 hours at $2


def test_estimate_throughput_from_a_run(tiny_run, capsys):
    rate, source = est.throughput_from_run(tiny_run)
    assert rate > 0 and str(tiny_run) in source and "tokens/s x 6 x" in source
    assert main(["estimate", "--params", "1e6", "--tokens", "2e7", "--run", str(tiny_run)]) == 0
    assert "tokens/s x 6 x" in capsys.readouterr().out


def test_measured_throughput_is_plausible():
    rate, source = est.measured_gemm_throughput(n=128, seconds=0.05)
    assert 1e8 < rate < 1e13 and "GEMM" in source


@pytest.mark.parametrize("args,message", [
    (["--params", "0", "--tokens", "1e9", "--flops-per-second", "1e12"], "params must be"),
    (["--params", "1e9", "--tokens", "-5", "--flops-per-second", "1e12"], "tokens must be"),
    (["--params", "1e9", "--tokens", "1e9", "--flops-per-second", "0"], "flops_per_second must"),
    (["--params", "1e9", "--tokens", "1e9", "--flops-per-second", "1e12",
      "--price-per-hour", "-1"], "price_per_hour must"),
])
def test_estimate_bad_arguments(args, message, capsys):
    assert main(["estimate", *args]) == 2
    assert message in capsys.readouterr().err


def test_estimate_from_a_folder_without_metrics(tmp_path, capsys):
    assert main(["estimate", "--params", "1e6", "--tokens", "1e7", "--run", str(tmp_path)]) == 2
    assert "no metrics.jsonl" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# temperature, on a tiny trained run

def tiny(corpus_file, **kw):
    return TrainConfig(**{**dict(data=str(corpus_file), context=4, n_embd=8, hidden=32,
                                 batch_size=64, steps=60, warmup=5, lr=1e-2, min_lr=1e-3,
                                 eval_interval=60, checkpoint_interval=60), **kw})


@pytest.fixture(scope="module")
def tiny_run(corpus_file, tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    train(tiny(corpus_file, out_dir=str(run)), progress=False)
    return run


def test_entropy_rises_with_temperature(tiny_run):
    temps = [0.1, 0.5, 1.0, 2.0, 5.0]
    r = distributions(tiny_run, "The ", temps, top=5)
    entropies = [d["entropy"] for d in r["temperatures"]]
    assert all(a < b for a, b in zip(entropies, entropies[1:])), entropies
    assert entropies[-1] < math.log(256) + 1e-9
    tops = [d["top"][0][1] for d in r["temperatures"]]
    assert all(a > b for a, b in zip(tops, tops[1:])), tops       # the favourite flattens
    # the same favourite at every temperature: dividing logits by T keeps their order
    assert len({d["top"][0][0] for d in r["temperatures"]}) == 1
    for d in r["temperatures"]:
        probs = [p for _, p in d["top"]]
        assert probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-12


def test_cli_temperature(tiny_run, capsys):
    assert main(["temperature", "--run", str(tiny_run), "--prompt", "def ",
                 "--temperatures", "0.1,1,2"]) == 0
    out = capsys.readouterr().out
    assert "T = 0.1" in out and "T = 2" in out and "entropy" in out


@pytest.mark.parametrize("args,message", [
    (["--temperatures", "1,0"], "temperatures must be finite and > 0, got 0.0"),
    (["--temperatures", "-1"], "temperatures must be finite and > 0"),
    (["--top", "0"], "top must be >= 1"),
    (["--temperatures", ","], "give at least one temperature"),
])
def test_temperature_bad_arguments(tiny_run, args, message, capsys):
    assert main(["temperature", "--run", str(tiny_run), "--prompt", "x", *args]) == 2
    assert message in capsys.readouterr().err


def test_temperature_without_a_checkpoint(tmp_path, capsys):
    assert main(["temperature", "--run", str(tmp_path), "--prompt", "x"]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint" in err and "Traceback" not in err


# ----------------------------------------------------------------------------------------------
# learning-rate sweep on the real model, tiny

def test_too_low_and_too_high_are_worse_than_the_middle(corpus_file, tmp_path):
    results = sweep([1e-5, 1e-2, 3.0], 40, tiny(corpus_file), tmp_path, log=lambda msg: None)
    low, mid, high = (final_train_loss(r["losses"]) for r in results)
    vlow, vmid, vhigh = (r["val_loss"] for r in results)
    assert mid < low - 0.5 and mid < high - 0.5, (low, mid, high)
    assert vmid < vlow and (vmid < vhigh or math.isnan(vhigh)), (vlow, vmid, vhigh)
    assert all(len(r["losses"]) == 40 or r["diverged_at"] for r in results)


def test_cli_lr_sweep(corpus_file, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["lr-sweep", "--lrs", "1e-3,1e-2", "--steps", "10", "--out", str(out),
                 f"--data={corpus_file}", "--context=4", "--n_embd=8", "--hidden=16",
                 "--batch_size=32"]) == 0
    printed = capsys.readouterr().out
    assert "final train loss" in printed and "<- best" in printed
    import matplotlib.image

    img = matplotlib.image.imread(out / "lr_sweep.png")
    assert img.shape[0] >= 300 and img[..., :3].std() > 0.05


@pytest.mark.parametrize("args,message", [
    (["--lrs", "0.1,0"], "learning rates must be finite and > 0, got 0.0"),
    (["--steps", "0"], "steps must be >= 1"),
    (["--lrs", ","], "give at least one learning rate"),
    (["--hidden=0"], "hidden must be >= 1"),
])
def test_lr_sweep_bad_arguments(args, message, tmp_path, capsys):
    assert main(["lr-sweep", "--out", str(tmp_path / "s"), *args]) == 2
    assert message in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# the schedule, with the other schedules drawn beside the config's

def test_schedule_plot(tmp_path, capsys):
    import matplotlib.image

    path = tmp_path / "lr.png"
    assert main(["schedule", "--steps=300", "--warmup=30", "--schedule=linear",
                 "--plot", str(path)]) == 0
    assert f"wrote {path}" in capsys.readouterr().out
    img = matplotlib.image.imread(path)[..., :3]
    assert img.shape[0] >= 300 and img.std() > 0.05
    # three schedules, three line colours (matplotlib's first three: blue, orange, green)
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    for name, hue in (("blue", b > r + 0.2), ("orange", (r > b + 0.3) & (r > g + 0.1)),
                      ("green", (g > r + 0.1) & (g > b + 0.1))):
        assert hue.sum() > 50, name

"""Every figure fasttrain draws gets matplotlib from one helper, fasttrain.plot.pyplot (the Agg
backend and the shared style set in one place), and without matplotlib each says what needed it."""
import sys

import pytest

import fasttrain.plot


class Drawn(Exception):
    """Raised by the stand-in helper: proof that a figure went through it."""


@pytest.fixture
def helper_only(monkeypatch):
    def stand_in(*args, **kwargs):
        raise Drawn
    monkeypatch.setattr(fasttrain.plot, "pyplot", stand_in)


def _bench(path):
    from fasttrain import bench

    bench.plot({"results": []}, str(path))


def _schedule(path):
    from fasttrain.cli import main

    main(["schedule", "--plot", str(path), "--steps=10", "--warmup=2"])


def _lr_sweep(path):
    from fasttrain.dynamics import lrsweep

    lrsweep.plot([], str(path), "title")


def _landscape(path):
    from fasttrain.dynamics import landscape_plot

    landscape_plot.plot_losses("bowl", {}, str(path))


def _run(path):
    fasttrain.plot.plot_run(path.parent, path)


@pytest.mark.parametrize("draw", [_bench, _schedule, _lr_sweep, _landscape, _run],
                         ids=["bench", "schedule", "lr-sweep", "landscape", "run"])
def test_every_figure_goes_through_the_helper(draw, helper_only, tmp_path):
    with pytest.raises(Drawn):
        draw(tmp_path / "figure.png")


def test_the_helper_sets_agg_and_the_style():
    import matplotlib

    plt = fasttrain.plot.pyplot()
    assert matplotlib.get_backend().lower() == "agg"
    for key, value in fasttrain.plot.STYLE.items():
        assert plt.rcParams[key] == value


def test_without_matplotlib_the_caller_says_what_needed_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ValueError, match="the landscape needs matplotlib"):
        fasttrain.plot.pyplot(ValueError, "the landscape needs matplotlib")
    with pytest.raises(ImportError, match="pip install"):
        fasttrain.plot.pyplot()


# ----------------------------------------------------------------------------------------------
# the run's plot: train beside validation loss, the epoch on top

def test_smooth_is_the_centred_moving_mean():
    import numpy as np

    values = list(np.random.default_rng(0).standard_normal(50))
    got = fasttrain.plot.smooth(values, 3)
    inner = np.convolve(values, np.ones(7) / 7, mode="valid")   # the full windows
    np.testing.assert_allclose(got[3:-3], inner, rtol=1e-12)
    assert got[0] == pytest.approx(np.mean(values[:4]))           # cut at the ends
    assert got[-1] == pytest.approx(np.mean(values[-4:]))
    assert fasttrain.plot.smooth(values, 0) == pytest.approx(values)


def _write_metrics(run, epoch: bool):
    import json

    lines = [{"step": s, "split": "train", "loss": 5.0 / s, "lr": 1e-3, "grad_norm": 1.0,
              "tokens_per_s": 1e4, **({"epoch": s * 0.25} if epoch else {})} for s in range(1, 41)]
    lines += [{"step": s, "split": "val", "loss": 2.0 + s / 100, "perplexity": 9.0}
              for s in (0, 20, 40)]
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))


@pytest.mark.parametrize("epoch", [True, False], ids=["with-epoch", "before-epochs-were-logged"])
def test_run_plot_shows_train_beside_validation(tmp_path, monkeypatch, epoch):
    from matplotlib.figure import Figure

    _write_metrics(tmp_path / "run", epoch)
    saved = []
    original = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: (saved.append(fig),
                                                                  original(fig, *a, **k)))
    path = fasttrain.plot.plot_run(tmp_path / "run")
    png = tmp_path / "run" / "loss.png"
    assert path == str(png) and png.stat().st_size > 0
    ax_loss = saved[0].axes[0]
    labels = [line.get_label() for line in ax_loss.get_lines()]
    assert labels == ["train (batch)", "train (mean of 3 steps)", "validation"]
    tops = [ax for ax in ax_loss.child_axes if "epoch" in ax.get_xlabel()]
    assert len(tops) == (1 if epoch else 0)
    if epoch:  # the top axis is the epoch of the step below it: 0.25 per step here
        assert tops[0].get_xlim() == pytest.approx([0.25 * x for x in ax_loss.get_xlim()])

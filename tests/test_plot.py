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

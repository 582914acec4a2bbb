"""The landscape's pictures: per surface, a PNG of the contour map with one panel per optimizer
and learning rate, and a PNG of loss against step. Colours: matplotlib's RdYlGn_r (green low,
red high) over contour levels spaced in log(loss), the same bands the HTML page draws."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fasttrain.dynamics.landscape import SURFACES, Trajectory, loss_bands

CMAP = "RdYlGn_r"
STATUS_COLOURS = {"reached": "#1a7f37", "diverged": "#cf222e", "overshoots": "#bc4c00",
                  "on its way": "#57606a"}


def _pyplot():
    from fasttrain.plot import pyplot

    return pyplot(ValueError, 'the landscape needs matplotlib: pip install "fasttrain[plot]"')


def _margins(fig, *, left, right, bottom, top, wspace, hspace) -> None:
    """Fixed margins in inches (and gaps in inches between panels): tight_layout measures every
    tick label of every panel and took most of the time of a 9-panel figure."""
    w, h = fig.get_size_inches()
    gs = fig.axes[0].get_subplotspec().get_gridspec()
    rows, cols = gs.get_geometry()
    panel_w = (w - left - right - wspace * (cols - 1)) / cols
    panel_h = (h - top - bottom - hspace * (rows - 1)) / rows
    fig.subplots_adjust(left=left / w, right=1 - right / w, bottom=bottom / h, top=1 - top / h,
                        wspace=wspace / panel_w, hspace=hspace / panel_h)


def band_colours(levels: np.ndarray) -> list[str]:
    """One colour per band between consecutive levels: the colormap sampled evenly, so every
    band is as distinct as the next whatever its width in loss."""
    import matplotlib

    cmap = matplotlib.colormaps[CMAP]
    n = len(levels) - 1
    return [matplotlib.colors.to_hex(cmap(i / (n - 1))) for i in range(n)]


def band_image(surface: str, nx: int = 360, ny: int = 240) -> np.ndarray:
    """(ny, nx, 3) uint8, row 0 the lowest y: each cell in its band's colour, cells on a
    band's edge darkened into contour lines; what the HTML page draws, in numpy. An image
    is much cheaper to draw than matplotlib's contourf paths, panel after panel."""
    from matplotlib.colors import to_rgb

    levels, bands = loss_bands(surface, nx, ny)
    rgb = np.array([to_rgb(c) for c in band_colours(levels)]) * 255      # (n, 3)
    edge = np.zeros(bands.shape, dtype=bool)
    edge[:, :-1] |= bands[:, :-1] != bands[:, 1:]
    edge[:-1, :] |= bands[:-1, :] != bands[1:, :]
    return (rgb[bands] * np.where(edge, 0.7, 1.0)[..., None]).astype(np.uint8)


def plot_contours(surface: str, runs: dict[str, dict[float, Trajectory]], path) -> str:
    """Contour map of `surface`, rows = optimizers, columns = learning rates, one trajectory
    each, its outcome in the panel's title."""
    plt = _pyplot()
    s = SURFACES[surface]
    image = band_image(surface)
    optimizers = list(runs)
    lrs = list(next(iter(runs.values())))
    fig, axes = plt.subplots(len(optimizers), len(lrs), squeeze=False,
                             figsize=(3.6 * len(lrs) + 0.6, 2.7 * len(optimizers) + 0.6),
                             sharex=True, sharey=True)
    for i, opt in enumerate(optimizers):
        for j, lr in enumerate(lrs):
            ax, t = axes[i][j], runs[opt][lr]
            ax.imshow(image, origin="lower", extent=s.extent, aspect="auto",
                      interpolation="nearest")
            for mx, my in s.minima:
                ax.plot(mx, my, "*", color="white", mec="k", ms=11, zorder=4)
            p = t.points[np.isfinite(t.points).all(axis=1)]
            ax.plot(p[:, 0], p[:, 1], "-", color="k", lw=1.3, zorder=5)
            ax.plot(p[:, 0], p[:, 1], ".", color="white", ms=1.5, zorder=6)
            ax.plot(*s.start, "o", color="white", mec="k", ms=6, zorder=7)
            ax.plot(*p[-1], "X" if t.status == "diverged" else "o", color="#0969da", mec="white",
                    ms=7, zorder=7)
            ax.set_xlim(s.extent[0], s.extent[1])
            ax.set_ylim(s.extent[2], s.extent[3])
            ax.set_title(f"{opt}, lr {lr:g}\n{t.summary}", fontsize=8.5,
                         color=STATUS_COLOURS[t.status])
            if j == 0:
                ax.set_ylabel("y")
            if i == len(optimizers) - 1:
                ax.set_xlabel("x")
    fig.suptitle(f"{surface}: f = {s.formula}, {t.steps} steps from ({s.start[0]:g}, "
                 f"{s.start[1]:g}); green low, red high (log scale)", fontsize=10)
    _margins(fig, left=0.65, right=0.15, bottom=0.5, top=0.85, wspace=0.35, hspace=0.6)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return str(path)


def plot_losses(surface: str, runs: dict[str, dict[float, Trajectory]], path) -> str:
    """Loss against step, one panel per optimizer, one line per learning rate (log scale)."""
    plt = _pyplot()
    s = SURFACES[surface]
    optimizers = list(runs)
    fig, axes = plt.subplots(1, len(optimizers), squeeze=False, sharey=True,
                             figsize=(4.2 * len(optimizers) + 0.4, 3.4))
    floor = 1e-12  # the minima are at loss 0: a log axis needs a floor
    for ax, opt in zip(axes[0], optimizers):
        for lr, t in runs[opt].items():
            loss = np.clip(t.losses, floor, None)
            (line,) = ax.plot(np.arange(len(loss)), loss, lw=1.3, label=f"lr {lr:g}: {t.status}")
            if t.status == "diverged":
                ax.plot(len(loss) - 1, loss[-1] if np.isfinite(loss[-1]) else ax.get_ylim()[1],
                        "X", color=line.get_color())
        ax.set_yscale("log")
        ax.set_title(opt)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("loss")
    fig.suptitle(f"{surface}: f = {s.formula}", fontsize=10)
    _margins(fig, left=0.75, right=0.15, bottom=0.5, top=0.65, wspace=0.2, hspace=0.3)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return str(path)


def write_pngs(results: dict, out_dir) -> list[str]:
    """Both PNGs for every surface in results ({surface: {optimizer: {lr: Trajectory}}})."""
    out = Path(out_dir)
    written = []
    for surface, runs in results.items():
        written.append(plot_contours(surface, runs, out / f"landscape_{surface}.png"))
        written.append(plot_losses(surface, runs, out / f"loss_{surface}.png"))
    return written

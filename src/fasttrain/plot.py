"""The picture of a run: training and validation loss, perplexity and learning rate against
steps, from its metrics.jsonl, as a PNG (matplotlib, Agg backend: no display needed).
matplotlib is an extra: pip install "fasttrain[plot]".

The training loss is drawn per batch (faint) and smoothed (`smooth`), on the same axes as the
validation loss: where the smoothed training loss keeps falling and the validation loss stops
or rises, the model is learning its training split by heart. The epoch (training tokens seen /
training tokens in the split) is the top axis, when the metrics carry it (runs before it was
logged plot against steps alone).

`pyplot()` is the one place where fasttrain sets matplotlib up (the Agg backend and the style
every figure shares): the run's plot, the schedule, the lr sweep, the landscape and the bench
chart all get matplotlib.pyplot from it."""
from __future__ import annotations

import json
from pathlib import Path


NO_MATPLOTLIB = 'matplotlib is not installed: pip install "fasttrain[plot]"'
STYLE = {"savefig.dpi": 110, "grid.alpha": 0.3}  # every figure's PNG resolution, faint grids


def pyplot(error: type[Exception] = ImportError, message: str = NO_MATPLOTLIB):
    """matplotlib.pyplot on the Agg backend (files, no display) with fasttrain's style; without
    matplotlib, raises `error(message)`: each caller says what needed it."""
    try:
        import matplotlib
    except ImportError:
        raise error(message) from None
    matplotlib.use("Agg")
    matplotlib.rcParams.update(STYLE)
    import matplotlib.pyplot as plt

    return plt


def read_metrics(run_dir) -> tuple[list[dict], list[dict]]:
    """(train records, val records) of a run, in step order."""
    train, val = [], []
    for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines():
        if line:
            record = json.loads(line)
            (train if record["split"] == "train" else val).append(record)
    return train, val


def smooth(values, half_width: int) -> list[float]:
    """The centred moving mean: entry i is the mean of values[i - h : i + h + 1], the window cut
    at both ends. Centred, so the curve does not lag the validation points it is compared with."""
    n = len(values)
    sums = [0.0]
    for v in values:
        sums.append(sums[-1] + v)
    out = []
    for i in range(n):
        lo, hi = max(0, i - half_width), min(n, i + half_width + 1)
        out.append((sums[hi] - sums[lo]) / (hi - lo))
    return out


def epochs_per_step(train: list[dict]) -> float | None:
    """Epochs per step (epoch = step x tokens per step / training tokens, so the ratio is one
    number for the whole run), from the last record that has it; None for runs without it."""
    for r in reversed(train):
        if r.get("epoch") is not None and r["step"] > 0:
            return r["epoch"] / r["step"]
    return None


def plot_run(run_dir, path=None) -> str | None:
    """Write the run's plot (default run_dir/loss.png); None, with a note, without matplotlib."""
    try:
        plt = pyplot()
    except ImportError:
        print(f"note: no plot ({NO_MATPLOTLIB})")
        return None
    train, val = read_metrics(run_dir)
    path = Path(path) if path else Path(run_dir) / "loss.png"
    fig, (ax_loss, ax_ppl, ax_lr) = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
    if train:
        steps, losses = [r["step"] for r in train], [r["loss"] for r in train]
        half = max(1, len(losses) // 100)  # windows of ~2% of the run, 3 steps at least
        ax_loss.plot(steps, losses, lw=0.5, alpha=0.3, color="tab:blue", label="train (batch)")
        ax_loss.plot(steps, smooth(losses, half), lw=1.5, color="tab:blue",
                     label=f"train (mean of {2 * half + 1} steps)")
        ax_lr.plot(steps, [r["lr"] for r in train], color="tab:green")
        per_step = epochs_per_step(train)
        if per_step:
            top = ax_loss.secondary_xaxis("top", functions=(lambda s: s * per_step,
                                                            lambda e: e / per_step))
            top.set_xlabel("epoch (training tokens seen / tokens in the train split)")
    if val:
        steps = [r["step"] for r in val]
        ax_loss.plot(steps, [r["loss"] for r in val], "o-", color="tab:red", label="validation")
        ax_ppl.plot(steps, [r["perplexity"] for r in val], "o-", color="tab:red")
        ax_ppl.set_yscale("log")
    ax_loss.set_ylabel("loss (nats per token)")
    ax_loss.legend()
    ax_ppl.set_ylabel("validation perplexity")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("step")
    for ax in (ax_loss, ax_ppl, ax_lr):
        ax.grid(alpha=0.3)
    fig.suptitle(f"{Path(run_dir).name}: train and validation loss, perplexity, learning rate")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)

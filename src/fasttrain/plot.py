"""The picture of a run: training and validation loss, perplexity and learning rate against
steps, from its metrics.jsonl, as a PNG (matplotlib, Agg backend: no display needed).
matplotlib is an extra: pip install "fasttrain[plot]"."""
from __future__ import annotations

import json
from pathlib import Path


def read_metrics(run_dir) -> tuple[list[dict], list[dict]]:
    """(train records, val records) of a run, in step order."""
    train, val = [], []
    for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines():
        if line:
            record = json.loads(line)
            (train if record["split"] == "train" else val).append(record)
    return train, val


def plot_run(run_dir, path=None) -> str | None:
    """Write the run's plot (default run_dir/loss.png); None, with a note, without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print('note: no plot (matplotlib is not installed: pip install "fasttrain[plot]")')
        return None
    train, val = read_metrics(run_dir)
    path = Path(path) if path else Path(run_dir) / "loss.png"
    fig, (ax_loss, ax_ppl, ax_lr) = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
    if train:
        steps = [r["step"] for r in train]
        ax_loss.plot(steps, [r["loss"] for r in train], lw=0.6, alpha=0.6, label="train (batch)")
        ax_lr.plot(steps, [r["lr"] for r in train], color="tab:green")
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
    fig.suptitle(f"{Path(run_dir).name}: loss, perplexity and learning rate")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)

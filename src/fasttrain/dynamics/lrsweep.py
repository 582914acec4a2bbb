"""A learning-rate sweep on the real language model: the same short run (same initial weights,
same batches) at several constant learning rates, with train.py's own pieces (build,
train_step, evaluate). Too low a rate barely lowers the loss in the steps given, too high a
rate makes it jump around or blow up, and the best sits between (Smith 2017, "Cyclical
learning rates", section 3.3, sweeps the same way to pick a range).

The default is a shorter run of the default model (steps 300) so that a sweep of five rates
takes about a minute on a 2-core machine.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

DEFAULT_LRS = (1e-4, 1e-3, 3e-3, 1e-2, 1e-1)
DEFAULT_STEPS = 300


def sweep(lrs, steps: int, cfg, out_dir, *, log=print) -> list[dict]:
    """One run per learning rate from cfg (a TrainConfig: model, batch, data, seed), constant
    rate, no warmup; each from the same initial weights: the seed's, or a Hugging Face GPT-2
    folder's when cfg.init_from names one (a sweep of fine-tuning rates, on its tokenizer).
    Returns [{"lr", "losses" (per step), "val_loss", "diverged_at"}]."""
    from fasttrain.data import Batches, Corpus
    from fasttrain.sample import evaluate
    from fasttrain.train import build, train_step

    lrs = [float(lr) for lr in lrs]
    if not lrs:
        raise ValueError("give at least one learning rate")
    for lr in lrs:
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"learning rates must be finite and > 0, got {lr}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    cfg = cfg.override({"steps": steps, "warmup": 0, "schedule": "constant"}, "lr-sweep")
    cfg.validate()
    init = None
    if cfg.init_from:  # as train() starts a fine-tuning run (fasttrain/hf.py)
        from fasttrain import hf

        init = hf.open_folder(cfg.init_from)
        cfg = hf.configure(cfg, init)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if init is not None:
        hf.prepare_run(init, out)
    corpus = Corpus.prepare(out, cfg.data, cfg.tokenizer, cfg.bpe_vocab_size, cfg.val_fraction,
                            cfg.window)
    micro = cfg.batch_size // cfg.grad_accum
    results = []
    for lr in lrs:
        model, opt = build(cfg, corpus)                      # the same initial weights each time
        if init is not None:
            init.load_into(model)
        batches = Batches(corpus.train, cfg.window, micro, seed=cfg.seed + 1,  # same batches
                          sequence=model.sequence)
        losses, diverged_at = [], None
        for step in range(1, steps + 1):
            loss, norm = train_step(model, opt, (batches.next() for _ in range(cfg.grad_accum)),
                                    lr, cfg.grad_clip)
            losses.append(loss)
            if not (math.isfinite(loss) and math.isfinite(norm)):
                diverged_at = step
                break
        val = evaluate(model, corpus.val, cfg.window, micro) if diverged_at is None else math.nan
        results.append({"lr": lr, "losses": losses, "val_loss": val, "diverged_at": diverged_at})
        log(f"lr {lr:g}: " + (f"diverged at step {diverged_at}" if diverged_at else
                              f"train loss {final_train_loss(losses):.3f}, val loss {val:.3f}"))
    return results


def final_train_loss(losses) -> float:
    """The mean over the last tenth of the steps: one batch's loss is noisy."""
    tail = losses[-max(1, len(losses) // 10):]
    return float(np.mean(tail))


def format_table(results) -> str:
    finite = [r["val_loss"] for r in results if math.isfinite(r["val_loss"])]
    best = min(finite) if finite else None
    lines = ["      lr   final train loss   val loss", "-------- ------------------ ----------"]
    for r in results:
        if r["diverged_at"]:
            lines.append(f"{r['lr']:8g}   diverged at step {r['diverged_at']}")
            continue
        mark = "   <- best" if r["val_loss"] == best else ""
        lines.append(f"{r['lr']:8g} {final_train_loss(r['losses']):18.4f} "
                     f"{r['val_loss']:10.4f}{mark}")
    return "\n".join(lines)


def plot(results, path, title: str) -> str:
    from fasttrain.plot import pyplot

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in results:
        y = np.asarray(r["losses"], dtype=float)
        x = np.arange(1, len(y) + 1)
        # a running mean over ~2% of the steps shows the trend through the batch noise
        k = max(1, len(y) // 50)
        smooth = np.convolve(y, np.ones(k) / k, mode="valid") if len(y) >= k else y
        label = f"lr {r['lr']:g}: " + (f"diverged at step {r['diverged_at']}" if r["diverged_at"]
                                       else f"val {r['val_loss']:.3f}")
        ax.plot(x[k - 1:] if len(y) >= k else x, smooth, lw=1.4, label=label)
    ax.set_xlabel("step")
    ax.set_yscale("log")   # a too-high rate's early spike would flatten the others on a linear axis
    ax.set_ylabel("training loss (nats per token, log scale)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def page_data(results, title: str, points: int = 1000) -> dict:
    """What lr_sweep.html embeds: each rate's training losses, thinned to at most `points`
    means over consecutive steps, its validation loss and where it diverged."""
    from fasttrain.dynamics.html import finite
    from fasttrain.dynamics.report import thin

    runs = []
    for r in results:
        losses = np.asarray(r["losses"], dtype=np.float64)
        ok = np.isfinite(losses)
        kept = losses[: np.argmin(ok) if not ok.all() else len(losses)]   # up to the first NaN
        steps = thin(np.arange(1, len(kept) + 1), points)
        runs.append({"lr": r["lr"], "steps": [finite(s, 7) for s in steps],
                     "losses": [finite(v) for v in thin(kept, points)],
                     "val_loss": finite(r["val_loss"]), "diverged_at": r["diverged_at"],
                     "final": finite(final_train_loss(r["losses"]))})
    return {"title": title, "runs": runs,
            "steps": max((len(r["losses"]) for r in results), default=0)}


def write_page(results, path, title: str) -> str:
    """lr_sweep.html: the loss curves (log scale, one colour per rate) and the table."""
    from fasttrain.dynamics import html

    return html.write_page(path, title="fasttrain lr sweep", heading="A learning-rate sweep",
                           intro=f'<div class="note">{html.html.escape(title)}. The same weights '
                           "and batches at each constant rate: too low barely moves, too high "
                           "jumps or blows up. Click a row to pick out its curve.</div>",
                           body=SWEEP_BODY, data=page_data(results, title), script=SWEEP_SCRIPT,
                           css="  #runs tr { cursor: pointer; } #runs tr.selected { background: #ddf4ff; }\n")


SWEEP_BODY = """
<canvas id="curves" width="960" height="380"></canvas>
<table id="runs"></table>
"""

SWEEP_SCRIPT = r"""
const sweep = window.sweep = {selected: null, draws: 0};
const best = Math.min(...DATA.runs.map(r => r.val_loss === null ? Infinity : r.val_loss));

function drawCurves() {
  const all = [].concat(...DATA.runs.map(r => r.losses)).filter(v => v !== null && v > 0);
  const lo = Math.min(...all), hi = Math.max(...all);
  const f = frame(document.getElementById("curves"),
                  {x: [0, DATA.steps], y: [lo * 0.95, hi * 1.05], ylog: true, xlabel: "step",
                   ylabel: "training loss (log scale, running mean)"});
  DATA.runs.forEach((r, i) => {
    const k = 2 * Math.floor(Math.max(1, r.losses.length / 50) / 2) + 1;
    const pts = [];
    runningMean(r.losses, k).forEach((v, j) => { if (v !== null && v > 0) pts.push([f.X(r.steps[j]), f.Y(v)]); });
    const on = sweep.selected === null || sweep.selected === i;
    polyline(f.ctx, pts, COLOURS.series[i % COLOURS.series.length], on ? 2 : 1, on ? [] : [3, 3]);
  });
  sweep.draws += 1;
}

function table() {
  const t = document.getElementById("runs");
  t.innerHTML = "<tr><th></th><th class='num'>lr</th><th class='num'>final train loss</th>" +
                "<th class='num'>val loss</th><th></th></tr>";
  DATA.runs.forEach((r, i) => {
    const tr = t.insertRow();
    const key = document.createElement("span");
    key.className = "key"; key.style.background = COLOURS.series[i % COLOURS.series.length];
    tr.insertCell().appendChild(key);
    const cells = [fmt(r.lr), r.diverged_at ? "diverged at step " + r.diverged_at : r.final.toFixed(4),
                   r.val_loss === null ? "" : r.val_loss.toFixed(4), r.val_loss === best ? "best" : ""];
    cells.forEach((c, j) => { const td = tr.insertCell(); td.textContent = c; if (j < 3) td.className = "num"; });
    tr.addEventListener("click", () => {
      sweep.selected = sweep.selected === i ? null : i;
      t.querySelectorAll("tr").forEach((row, k) => row.classList.toggle("selected", k - 1 === sweep.selected));
      drawCurves();
    });
  });
}
table();
drawCurves();
"""

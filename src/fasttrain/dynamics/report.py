"""One page per training run: `report.html` in the run directory, written at the end of
`fasttrain train` and by `fasttrain report --run DIR`.

It shows how random weights become a language model: the training and validation loss against
steps, tokens seen or epochs (perplexity = e^loss on a second axis) with the learning rate under
them; the sample written at every evaluation, beside its step and validation perplexity, with a
slider through training; the configuration, the speed and the compute (6ND, as `fasttrain
estimate` counts it) beside GPT-3's and Chinchilla's; and a schedule explorer that redraws
warmup + cosine / linear / constant for other settings.

The data come from the run's config.json and metrics.jsonl (and its token files for the
parameter count and epochs). The training loss is thinned to at most THIN points (means over
consecutive steps), so a run of 100k steps and 200 evaluations still gives a page of a few
hundred kB. The page keeps its state in `window.report` for tests and the curious.
"""
from __future__ import annotations

import html
import json
import math
from pathlib import Path
from statistics import median

import numpy as np

from fasttrain.config import TrainConfig
from fasttrain.dynamics import estimate
from fasttrain.dynamics import html as pages
from fasttrain.dynamics.html import finite

REPORT = "report.html"  # in the run directory

THIN = 2000   # at most this many training-loss points on the page


def thin(values: np.ndarray, n: int = THIN) -> np.ndarray:
    """Means of `values` over at most n runs of consecutive entries (all of them if fewer)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) <= n:
        return values
    edges = np.linspace(0, len(values), n + 1).astype(np.int64)   # n runs of 1-2 sizes
    return np.add.reduceat(values, edges[:-1]) / np.diff(edges)


def _model_size(run: Path, cfg: TrainConfig) -> tuple[int | None, int | None]:
    """(parameters, training tokens) of a run; None where its files do not tell."""
    from fasttrain.data import Corpus
    from fasttrain.models import from_config

    try:
        corpus = Corpus.open(run)
    except Exception:  # noqa: BLE001 - a page without the counts beats no page
        return None, None
    model = from_config(cfg.override({"backend": "numpy"}, "report"), corpus.tokenizer.vocab_size)
    return model.num_params, len(corpus.train)


def report_data(run_dir) -> dict:
    """What the page embeds."""
    from fasttrain.plot import read_metrics

    run = Path(run_dir)
    if not (run / "config.json").exists() or not (run / "metrics.jsonl").exists():
        raise ValueError(f"{run}: not a run directory (no config.json and metrics.jsonl)")
    cfg = TrainConfig.from_dict(json.loads((run / "config.json").read_text()), str(run))
    train, val = read_metrics(run)
    params, train_tokens = _model_size(run, cfg)
    steps = np.array([r["step"] for r in train], dtype=np.float64)
    tok_s = [r["tokens_per_s"] for r in train if r.get("tokens_per_s")]
    last = max([r["step"] for r in train + val], default=0)
    tokens_per_step = cfg.batch_size * cfg.targets_per_window  # the global batch's targets
    tokens = last * tokens_per_step
    compute = None
    if params:
        flops = estimate.training_flops(params, tokens)
        compute = [{"name": "this run", "params": params, "tokens": tokens, "flops": flops,
                    "source": str(run)}]
        compute += [{"name": name, "params": n, "tokens": d,
                     "flops": estimate.training_flops(n, d), "source": source}
                    for name, (n, d, source) in estimate.LANDMARKS.items()]
    return {
        "name": run.name,
        "config": cfg.to_dict(),
        "defaults": TrainConfig.defaults(cfg.model).to_dict(),
        "params": params,
        "train_tokens": train_tokens,
        "tokens_per_step": tokens_per_step,
        "last_step": last,
        "tokens": tokens,
        "tokens_per_s": median(tok_s) if tok_s else None,
        # time inside the steps: each step's batch over its rate (evaluations excluded)
        "step_seconds": sum(cfg.batch_size / r for r in tok_s),
        "train": {"step": [finite(v, 7) for v in thin(steps)],
                  "loss": [finite(v) for v in thin([r["loss"] for r in train])],
                  "lr": [finite(v) for v in thin([r["lr"] for r in train])],
                  "thinned": len(train) > THIN, "n": len(train)},
        "val": [{"step": r["step"], "loss": finite(r["loss"]),
                 "perplexity": finite(r["perplexity"]), "sample": r.get("sample")}
                for r in val],
        "schedule": {"lr": cfg.lr, "min_lr": cfg.min_lr, "warmup": cfg.warmup,
                     "steps": cfg.steps, "kind": cfg.schedule},
        "compute": compute,
    }


def _num(v, digits=3) -> str:
    """1,234,567 for counts below 1e7, else 1.23e+09 written 1.23e9."""
    if v is None:
        return "?"
    if abs(v) < 1e7 and v == int(v):
        return f"{v:,.0f}"
    return f"{v:.{digits}g}".replace("e+", "e")


def _config_table(data: dict) -> str:
    rows = []
    for key, value in data["config"].items():
        changed = data["defaults"].get(key) != value
        v = html.escape(json.dumps(value))
        rows.append(f"<tr><th>{html.escape(key)}</th><td>{f'<strong>{v}</strong>' if changed else v}"
                    f"</td></tr>")
    return ('<table id="config"><tr><th>key</th><th>value (bold: not the default)</th></tr>'
            + "".join(rows) + "</table>")


def _compute_table(data: dict) -> str:
    if not data["compute"]:
        return '<p class="note">The parameter count is unknown (the run\'s token files are missing).</p>'
    ours = data["compute"][0]["flops"]
    biggest = max(c["flops"] for c in data["compute"])
    floor = math.floor(math.log10(max(ours, 1.0))) - 1         # bars on a log scale from here
    rows = []
    for c in data["compute"]:
        width = 100 * (math.log10(c["flops"]) - floor) / (math.log10(biggest) - floor)
        times = c["flops"] / max(ours, 1.0)
        ratio = "" if c is data["compute"][0] else f"{_num(times, 2)} &times; this run"
        rows.append(
            f'<tr><th>{html.escape(c["name"])}</th><td class="num">{_num(c["params"])}</td>'
            f'<td class="num">{_num(c["tokens"])}</td><td class="num">{_num(c["flops"])}</td>'
            f'<td class="bar"><span class="key" style="width:{width:.1f}%;height:.8em;'
            f'background:#0969da"></span></td><td>{ratio}</td>'
            f'<td class="note">{html.escape(c["source"])}</td></tr>')
    return ('<table id="compute"><tr><th></th><th class="num">parameters N</th>'
            '<th class="num">tokens D</th><th class="num">FLOPs 6ND</th>'
            '<th style="width:30%">(log scale)</th><th></th><th>source</th></tr>'
            + "".join(rows) + "</table>")


def _summary(data: dict) -> str:
    cfg, val = data["config"], data["val"]
    parts = [f"{_num(data['params'])} parameters" if data["params"] else None,
             f"step {data['last_step']:,} of {cfg['steps']:,}",
             f"{_num(data['tokens'])} tokens seen"
             + (f" ({data['tokens'] / data['train_tokens']:.3g} epochs of "
                f"{data['train_tokens']:,} training tokens)" if data["train_tokens"] else "")]
    if val and val[-1]["loss"] is not None:
        parts.append(f"validation loss {val[0]['loss']:.3f} &rarr; {val[-1]['loss']:.3f} "
                     f"(perplexity {val[0]['perplexity']:.3g} &rarr; {val[-1]['perplexity']:.3g})")
    if data["tokens_per_s"]:
        parts.append(f"median {data['tokens_per_s'] / 1e3:.1f}k tokens/s, "
                     f"{data['step_seconds']:.0f} s in the training steps")
    return '<p id="summary">' + "; ".join(p for p in parts if p) + ".</p>"


def write_report(run_dir, path=None) -> str:
    """Write the run's report.html (or `path`); return its path."""
    run = Path(run_dir)
    data = report_data(run)
    cfg = data["config"]
    intro = _summary(data)
    body = BODY.replace("<!--CONFIG-->", _config_table(data)).replace(
        "<!--COMPUTE-->", _compute_table(data)).replace(
        "<!--SAMPLING-->", html.escape(
            f"prompt {cfg['sample_prompt']!r}, {cfg['sample_tokens']} tokens at temperature "
            f"{cfg['sample_temperature']:g}, seeded by (seed, step)"))
    return pages.write_page(Path(path) if path else run / REPORT,
                            title=f"fasttrain run {run.name}",
                            heading=f"Run {run.name}: from random weights to a language model",
                            intro=intro, body=body, data=data, script=SCRIPT, css=CSS)


CSS = """
  #sample { white-space: pre-wrap; word-break: break-word; background: #f6f8fa;
            border: 1px solid #d0d7de; padding: .6em; min-height: 6em; margin: .4em 0;
            font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
  #slider { width: 100%; }
  #sample-head { font-weight: 600; }
  #samples { max-height: 28em; overflow-y: auto; }
  #samples td.text { font: 12px/1.35 ui-monospace, SFMono-Regular, Menlo, monospace;
                     white-space: pre-wrap; word-break: break-word; }
  #samples td:first-child, #samples td.num { white-space: nowrap; }
  #samples tr { cursor: pointer; } #samples tr.selected { background: #ddf4ff; }
  #config th { font-weight: 500; }
  td.bar { min-width: 12em; }
"""

BODY = """
<h2>Loss, perplexity and learning rate</h2>
<div class="controls">
  <span><label for="xaxis">against</label>
    <select id="xaxis"><option value="step">steps</option><option value="tokens">tokens seen</option>
    <option value="epochs">epochs</option></select></span>
  <span class="note"><span class="key" style="background:#0969da"></span>training loss (batch, faint;
  running mean, solid) <span class="key" style="background:#cf222e"></span>validation loss
  (whole split) <span class="key" style="background:#1a7f37"></span>learning rate</span>
</div>
<canvas id="loss" width="960" height="340"></canvas>
<canvas id="lr" width="960" height="130"></canvas>
<div id="thinned" class="note"></div>

<h2>What the model writes as it learns</h2>
<div class="note">At every evaluation: <!--SAMPLING-->.</div>
<div class="controls"><span><label for="slider">evaluation</label></span>
  <button id="prev">&larr;</button><button id="next">&rarr;</button>
  <span id="sample-head"></span></div>
<input id="slider" type="range" min="0" max="0" value="0" step="1">
<div id="sample"></div>
<div id="samples"><table><tbody id="sample-rows"></tbody></table></div>

<h2>The run</h2>
<div class="panes">
<div><!--CONFIG--></div>
<div style="flex: 1; min-width: 420px">
<p><strong>Compute.</strong> Training costs about 6 FLOPs per parameter per token (2N forward, 4N
backward; Kaplan et al. 2020), counted as <code>fasttrain estimate</code> counts it:</p>
<!--COMPUTE-->
</div>
</div>

<h2>Learning-rate schedule explorer</h2>
<div class="note">Linear warmup from 0 to the peak, then cosine or linear decay to the minimum
(or constant). Change the settings to see what they do; the dashed grey curve is this run's
schedule.</div>
<div class="controls">
  <span><label for="s-warmup">warmup steps</label> <input id="s-warmup" type="number" min="0" step="1"></span>
  <span><label for="s-lr">peak lr</label> <input id="s-lr" type="number" min="0" step="any"></span>
  <span><label for="s-min">min lr</label> <input id="s-min" type="number" min="0" step="any"></span>
  <span><label for="s-kind">decay</label> <select id="s-kind"><option value="cosine">cosine</option>
    <option value="linear">linear</option><option value="constant">constant</option></select></span>
  <span><label for="s-steps">total steps</label> <input id="s-steps" type="number" min="1" step="1"></span>
  <button id="s-reset">this run's</button>
</div>
<canvas id="schedule" width="960" height="260"></canvas>
<div id="s-readout" class="note"></div>
"""

SCRIPT = r"""
const report = window.report = {state: {eval: Math.max(0, DATA.val.length - 1), xaxis: "step",
                                        schedule: Object.assign({}, DATA.schedule)},
                                drawn: {}, draws: 0};
const state = report.state;
const $ = id => document.getElementById(id);

// x in the chosen unit for a step
function xOf(step) {
  if (state.xaxis === "tokens") return step * DATA.tokens_per_step;
  if (state.xaxis === "epochs") return step * DATA.tokens_per_step / DATA.train_tokens;
  return step;
}
const XLABEL = {step: "step", tokens: "tokens seen", epochs: "epochs"};

// perplexity ticks on the right of a loss axis: perplexity = e^loss
function perplexityTicks(lo, hi, px) {
  const out = [];
  let lastY = -Infinity;
  for (const e of [0, 1, 2, 3, 4, 5]) for (const m of [1, 1.5, 2, 3, 5, 7]) {
    const p = m * Math.pow(10, e), v = Math.log(p);
    if (v < lo || v > hi) continue;
    const y = (v - lo) / (hi - lo) * px;
    if (y - lastY >= 18) { out.push([v, fmt(p)]); lastY = y; }
  }
  return out;
}

function drawLoss() {
  const canvas = $("loss"), T = DATA.train, V = DATA.val;
  const xs = T.step.map(xOf), vx = V.map(r => xOf(r.step));
  const all = T.loss.concat(V.map(r => r.loss)).filter(v => v !== null);
  let lo = Math.min(...all), hi = Math.max(...all);
  if (!(hi > lo)) { lo -= 1; hi += 1; }
  const pad = (hi - lo) * 0.04;
  lo -= pad; hi += pad;
  const xmax = Math.max(xOf(DATA.last_step), 1e-9);
  const f = frame(canvas, {x: [0, xmax], y: [lo, hi], xlabel: XLABEL[state.xaxis],
                           ylabel: "loss (nats per token)", rightLabel: "perplexity",
                           right: perplexityTicks(lo, hi, canvas.height - 44)});
  const raw = [], smooth = [];
  const k = 2 * Math.floor(Math.max(1, T.loss.length / 60) / 2) + 1;
  runningMean(T.loss, k).forEach((v, i) => {
    if (T.loss[i] !== null) raw.push([f.X(xs[i]), f.Y(T.loss[i])]);
    if (v !== null) smooth.push([f.X(xs[i]), f.Y(v)]);
  });
  polyline(f.ctx, raw, COLOURS.trainFaint, 1);
  polyline(f.ctx, smooth, COLOURS.train, 2);
  const vpts = V.filter(r => r.loss !== null).map(r => [f.X(xOf(r.step)), f.Y(r.loss)]);
  polyline(f.ctx, vpts, COLOURS.val, 2);
  vpts.forEach(p => marker(f.ctx, p, 3, COLOURS.val, COLOURS.val));
  const sel = V[state.eval];
  if (sel && sel.loss !== null) {          // the evaluation the slider shows
    const x = f.X(xOf(sel.step));
    polyline(f.ctx, [[x, f.box.top], [x, f.box.bottom]], COLOURS.muted, 1, [4, 3]);
    marker(f.ctx, [x, f.Y(sel.loss)], 6, "#fff", COLOURS.val);
  }
  report.drawn.loss = smooth;

  const lrs = T.lr.filter(v => v !== null);
  const g = frame($("lr"), {x: [0, xmax], y: [0, Math.max(...lrs, 1e-12) * 1.08],
                           ylabel: "learning rate", right: [], rightLabel: " ", pad: {b: 22}});
  polyline(g.ctx, T.lr.map((v, i) => [g.X(xs[i]), g.Y(v === null ? 0 : v)]), COLOURS.lr, 2);
  $("thinned").textContent = T.thinned ? "The training loss and learning rate of the " +
    T.n.toLocaleString() + " steps are shown as means over " + T.step.length +
    " runs of consecutive steps." : "";
}

function showSample(i) {
  const V = DATA.val;
  if (!V.length) { $("sample-head").textContent = "no evaluation yet"; return; }
  state.eval = Math.max(0, Math.min(V.length - 1, i));
  const r = V[state.eval];
  $("slider").value = state.eval;
  $("sample-head").textContent = "step " + r.step.toLocaleString() + " of " +
    DATA.last_step.toLocaleString() + " \u00b7 validation loss " +
    (r.loss === null ? "?" : r.loss.toFixed(3)) + " \u00b7 perplexity " +
    (r.perplexity === null ? "?" : r.perplexity.toFixed(2));
  $("sample").textContent = r.sample === null || r.sample === undefined
    ? "(no sample: sample_tokens = 0)" : r.sample;
  document.querySelectorAll("#sample-rows tr").forEach((tr, k) =>
    tr.classList.toggle("selected", k === state.eval));
  drawLoss();
  report.draws += 1;
}

function sampleRows() {
  const body = $("sample-rows");
  DATA.val.forEach((r, i) => {
    const tr = body.insertRow();
    tr.insertCell().textContent = "step " + r.step.toLocaleString();
    const p = tr.insertCell();
    p.className = "num";
    p.textContent = r.perplexity === null ? "?" : "ppl " + r.perplexity.toFixed(2);
    const t = tr.insertCell();
    t.className = "text";
    t.textContent = r.sample || "";
    tr.addEventListener("click", () => showSample(i));
  });
}

// the schedule, as fasttrain/schedule.py computes it (step counting from 0)
function learningRate(step, s) {
  if (step < s.warmup) return s.lr * (step + 1) / s.warmup;
  if (s.kind === "constant") return s.lr;
  const progress = Math.min(1, (step - s.warmup) / Math.max(1, s.steps - s.warmup));
  const c = s.kind === "cosine" ? 0.5 * (1 + Math.cos(Math.PI * progress)) : 1 - progress;
  return s.min_lr + c * (s.lr - s.min_lr);
}
report.learningRate = learningRate;

function curve(s, n, f) {
  const pts = [], count = Math.min(s.steps, n);
  for (let k = 0; k < count; k++) {
    const step = Math.round(k * (s.steps - 1) / Math.max(1, count - 1));
    pts.push([step, learningRate(step, s)]);
  }
  if (s.warmup > 0 && s.warmup < s.steps) {          // the corner at the peak, exactly
    pts.push([s.warmup - 1, learningRate(s.warmup - 1, s)], [s.warmup, learningRate(s.warmup, s)]);
    pts.sort((a, b) => a[0] - b[0]);
  }
  return pts;
}

function drawSchedule() {
  const s = state.schedule, run = DATA.schedule;
  const xmax = Math.max(s.steps, run.steps);
  const top = Math.max(s.lr, run.lr, 1e-12) * 1.08;
  const f = frame($("schedule"), {x: [0, xmax], y: [0, top], xlabel: "step", ylabel: "learning rate"});
  const mine = curve(s, 1200), theirs = curve(run, 1200);
  polyline(f.ctx, theirs.map(p => [f.X(p[0]), f.Y(p[1])]), COLOURS.muted, 1.5, [6, 4]);
  polyline(f.ctx, mine.map(p => [f.X(p[0]), f.Y(p[1])]), COLOURS.lr, 2.5);
  report.drawn.schedule = mine;
  const mid = Math.floor(s.steps / 2);
  $("s-readout").textContent = "peak " + fmt(s.lr) + " at step " + Math.max(0, s.warmup - 1) +
    "; step " + mid + ": " + fmt(learningRate(mid, s)) + "; last step " + (s.steps - 1) + ": " +
    fmt(learningRate(s.steps - 1, s)) + (s.warmup >= s.steps ? " (warmup never ends)" : "");
  report.draws += 1;
}

const INPUTS = {"s-warmup": "warmup", "s-lr": "lr", "s-min": "min_lr", "s-kind": "kind", "s-steps": "steps"};
function scheduleControls(s) {
  for (const [id, key] of Object.entries(INPUTS)) $(id).value = s[key];
}
for (const [id, key] of Object.entries(INPUTS)) {
  const read = () => {
    const el = $(id);
    if (key === "kind") { state.schedule.kind = el.value; drawSchedule(); return; }
    const v = Number(el.value);
    const ok = el.value !== "" && isFinite(v) && v >= (key === "steps" ? 1 : 0);
    el.setCustomValidity(ok ? "" : "not a valid value");
    if (!ok) return;
    state.schedule[key] = key === "warmup" || key === "steps" ? Math.round(v) : v;
    drawSchedule();
  };
  $(id).addEventListener("input", read);
  $(id).addEventListener("change", read);
}
$("s-reset").addEventListener("click", () => {
  state.schedule = Object.assign({}, DATA.schedule); scheduleControls(state.schedule); drawSchedule();
});

$("xaxis").addEventListener("change", () => { state.xaxis = $("xaxis").value; drawLoss(); });
if (!DATA.train_tokens) { $("xaxis").disabled = true; }
$("slider").max = Math.max(0, DATA.val.length - 1);
$("slider").addEventListener("input", () => showSample(Number($("slider").value)));
$("prev").addEventListener("click", () => showSample(state.eval - 1));
$("next").addEventListener("click", () => showSample(state.eval + 1));
sampleRows();
scheduleControls(state.schedule);
showSample(state.eval);
drawSchedule();
report.ready = performance.now();
"""

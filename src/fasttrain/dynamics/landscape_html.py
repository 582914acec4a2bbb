"""The landscape explorer: one self-contained HTML page (no server, no network, no external
script) in which a person picks a surface, an optimizer and a learning rate and watches the ball
roll along its trajectory.

Everything the page draws is computed here and embedded as JSON: each surface's loss on a grid,
already cut into the contour bands of the PNGs (one byte per cell, base64) with the bands'
colours, and every trajectory (points, losses, outcome). The script only draws them on a canvas,
so the page shows exactly what the kernels computed. For tests and the curious, the page keeps
its state in `window.explorer` (the selection, the frame, the points drawn last).
"""
from __future__ import annotations

import base64

from fasttrain.dynamics import html
from fasttrain.dynamics.landscape import SURFACES, loss_bands
from fasttrain.dynamics.landscape_plot import band_colours


def lr_key(lr: float) -> str:
    return f"{lr:g}"


def page_data(results: dict, default_surface: str | None = None) -> dict:
    """The JSON the page embeds, from {surface: {optimizer: {lr: Trajectory}}}."""
    surfaces = {}
    for name in results:
        s = SURFACES[name]
        levels, bands = loss_bands(name, 240, 160)    # (ny, nx), row 0 at the lowest y
        surfaces[name] = {"formula": s.formula, "about": s.about, "extent": list(s.extent),
                          "start": list(s.start), "minima": [list(m) for m in s.minima],
                          "nx": bands.shape[1], "ny": bands.shape[0],
                          "bands": base64.b64encode(bands.tobytes()).decode("ascii"),
                          "colours": band_colours(levels)}
    first = next(iter(results.values()))
    optimizers = list(first)
    lrs = list(next(iter(first.values())))
    runs = {name: {opt: {lr_key(lr): t.to_json() for lr, t in by_lr.items()}
                   for opt, by_lr in by_opt.items()} for name, by_opt in results.items()}
    steps = next(iter(next(iter(first.values())).values())).steps
    return {"surfaces": surfaces, "optimizers": optimizers, "lrs": [lr_key(lr) for lr in lrs],
            "steps": steps, "runs": runs,
            "default_surface": default_surface if default_surface in results else next(iter(results))}


def write_page(results: dict, path, default_surface: str | None = None) -> str:
    return html.write_page(
        path, title="fasttrain landscape",
        heading="A ball rolling downhill: optimizers on a loss surface",
        intro=INTRO, body=BODY, data=page_data(results, default_surface), script=SCRIPT, css=CSS)


INTRO = """<div class="note">Every trajectory was computed by fasttrain's fused kernels (sgd_step,
adamw_step) on a 2-element parameter. Green is low loss, red high (contours spaced in log loss).
White star: the minimum; white circle: the start.</div>"""

CSS = """
  #status { font-weight: 600; }
  #table td { cursor: pointer; } #table td.selected { outline: 2px solid #0969da; }
"""

BODY = r"""<div class="controls">
  <span><label for="surface">surface</label> <select id="surface"></select></span>
  <span><label for="optimizer">optimizer</label> <select id="optimizer"></select></span>
  <span><label for="lr">learning rate</label> <select id="lr"></select></span>
  <button id="play">play</button> <button id="step">step</button> <button id="reset">reset</button>
  <span><label for="speed">speed</label> <input id="speed" type="range" min="1" max="10" value="3"></span>
</div>
<div id="formula" class="note"></div>
<div class="panes">
  <canvas id="map" width="600" height="400"></canvas>
  <div>
    <canvas id="chart" width="340" height="220"></canvas>
    <div id="readout"></div>
    <div id="status"></div>
  </div>
</div>
<table id="table"></table>
"""

SCRIPT = r"""const explorer = window.explorer = {
  state: {surface: DATA.default_surface, optimizer: DATA.optimizers[0], lr: DATA.lrs[0],
          frame: DATA.steps, playing: false},
  drawn: [], draws: 0,
};
const state = explorer.state;
const map = document.getElementById("map"), chart = document.getElementById("chart");
const backgrounds = {};

function rgb(hex) { return [1, 3, 5].map(i => parseInt(hex.slice(i, i + 2), 16)); }

// the contour bands of a surface, drawn once into an offscreen canvas of nx x ny pixels
function background(name) {
  if (backgrounds[name]) return backgrounds[name];
  const s = DATA.surfaces[name], raw = atob(s.bands), colours = s.colours.map(rgb);
  const c = document.createElement("canvas");
  c.width = s.nx; c.height = s.ny;
  const ctx = c.getContext("2d"), img = ctx.createImageData(s.nx, s.ny);
  for (let j = 0; j < s.ny; j++) {
    for (let i = 0; i < s.nx; i++) {
      const b = raw.charCodeAt(j * s.nx + i);
      const edge = (i + 1 < s.nx && raw.charCodeAt(j * s.nx + i + 1) !== b) ||
                   (j + 1 < s.ny && raw.charCodeAt((j + 1) * s.nx + i) !== b);
      const k = edge ? 0.7 : 1.0, col = colours[b];
      const o = ((s.ny - 1 - j) * s.nx + i) * 4;   // grid row 0 is the lowest y: the bottom
      img.data[o] = col[0] * k; img.data[o + 1] = col[1] * k; img.data[o + 2] = col[2] * k;
      img.data[o + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
  return backgrounds[name] = c;
}

function current() { return DATA.runs[state.surface][state.optimizer][state.lr]; }

function finitePoints(points) {
  const out = [];
  for (const p of points) { if (p[0] === null || p[1] === null) break; out.push(p); }
  return out;
}

function toMap(s, p) {
  const [x0, x1, y0, y1] = s.extent;
  return [(p[0] - x0) / (x1 - x0) * map.width, (y1 - p[1]) / (y1 - y0) * map.height];
}

function star(ctx, p, r) {
  ctx.beginPath();
  for (let k = 0; k < 10; k++) {
    const a = -Math.PI / 2 + k * Math.PI / 5, rr = k % 2 ? r * 0.45 : r;
    ctx.lineTo(p[0] + rr * Math.cos(a), p[1] + rr * Math.sin(a));
  }
  ctx.closePath(); ctx.fillStyle = "#fff"; ctx.fill();
  ctx.strokeStyle = "#000"; ctx.lineWidth = 1; ctx.stroke();
}

function drawMap(s, run, last) {
  const [x0, x1, y0, y1] = s.extent;
  map.height = Math.round(map.width * (y1 - y0) / (x1 - x0));
  const ctx = map.getContext("2d");
  ctx.imageSmoothingEnabled = true;                         // the grid is coarser than the canvas
  ctx.drawImage(background(state.surface), 0, 0, map.width, map.height);
  s.minima.forEach(m => star(ctx, toMap(s, m), 9));
  const pts = finitePoints(run.points).map(p => toMap(s, p));
  polyline(ctx, pts, "rgba(0,0,0,0.22)", 1);               // the whole path, faint
  const shown = pts.slice(0, last + 1);
  polyline(ctx, shown, "#111", 2.2);                        // the path so far
  marker(ctx, pts[0], 5, "#fff", "#000");                   // the start
  const ball = shown[shown.length - 1];
  marker(ctx, ball, 7, "#0969da", "#fff");
  explorer.drawn = finitePoints(run.points).slice(0, last + 1);
}

function drawChart(run, last) {
  const losses = run.losses.map(v => v === null ? null : Math.max(v, 1e-12));
  const finite = losses.filter(v => v !== null);
  let lo = Math.min(...finite), hi = Math.max(...finite);
  if (hi < lo * 1.001) { lo /= 10; hi *= 10; }
  const f = frame(chart, {x: [0, DATA.steps], y: [lo, hi], ylog: true, xlabel: "step",
                          ylabel: "loss (log)", pad: {l: 46}});
  const pts = [];
  for (let i = 0; i < losses.length && losses[i] !== null; i++) pts.push([f.X(i), f.Y(losses[i])]);
  polyline(f.ctx, pts, COLOURS.trainFaint, 1);
  polyline(f.ctx, pts.slice(0, last + 1), COLOURS.train, 2);
}

function draw() {
  const s = DATA.surfaces[state.surface], run = current();
  const n = finitePoints(run.points).length - 1;              // steps taken and drawable
  const last = Math.min(state.frame, n);
  drawMap(s, run, last);
  drawChart(run, last);
  document.getElementById("formula").textContent =
    state.surface + ": f(x, y) = " + s.formula + " \u2014 " + s.about;
  const p = run.points[last], loss = run.losses[last];
  document.getElementById("readout").textContent =
    "step " + last + " / " + DATA.steps + "   x = " + p[0].toFixed(3) + ", y = " + p[1].toFixed(3) +
    ", loss = " + (loss === null ? "inf" : loss.toPrecision(3));
  const status = document.getElementById("status");
  status.textContent = state.frame >= n ? run.summary : "rolling\u2026";
  status.className = state.frame >= n ? run.status : "";
  document.querySelectorAll("#table td").forEach(td => td.classList.toggle("selected",
    td.dataset.optimizer === state.optimizer && td.dataset.lr === state.lr));
  explorer.draws += 1;
}

function fillSelect(id, values, value) {
  const el = document.getElementById(id);
  el.innerHTML = "";
  for (const v of values) el.add(new Option(v, v, false, v === value));
  el.addEventListener("change", () => { state[id] = el.value; table(); draw(); });
}

// one row per optimizer, one column per learning rate: the outcomes on this surface
function table() {
  const t = document.getElementById("table");
  let h = "<tr><th></th>" + DATA.lrs.map(lr => "<th>lr " + lr + "</th>").join("") + "</tr>";
  for (const o of DATA.optimizers) {
    h += "<tr><th>" + o + "</th>";
    for (const lr of DATA.lrs) {
      const r = DATA.runs[state.surface][o][lr];
      h += '<td class="' + r.status + '" data-optimizer="' + o + '" data-lr="' + lr + '">' + r.summary + "</td>";
    }
    h += "</tr>";
  }
  t.innerHTML = h;
  t.querySelectorAll("td").forEach(td => td.addEventListener("click", () => {
    select(state.surface, td.dataset.optimizer, td.dataset.lr);
  }));
}

function select(surface, optimizer, lr) {
  state.surface = surface; state.optimizer = optimizer; state.lr = lr;
  for (const id of ["surface", "optimizer", "lr"]) document.getElementById(id).value = state[id];
  table(); draw();
}
explorer.select = select;

let timer = null;
function setPlaying(on) {
  state.playing = on;
  document.getElementById("play").textContent = on ? "pause" : "play";
  if (timer) { clearInterval(timer); timer = null; }
  if (!on) return;
  if (state.frame >= DATA.steps) state.frame = 0;
  timer = setInterval(() => {
    state.frame = Math.min(DATA.steps, state.frame + Number(document.getElementById("speed").value));
    draw();
    if (state.frame >= DATA.steps) setPlaying(false);
  }, 40);
}

fillSelect("surface", Object.keys(DATA.surfaces), state.surface);
fillSelect("optimizer", DATA.optimizers, state.optimizer);
fillSelect("lr", DATA.lrs, state.lr);
document.getElementById("play").addEventListener("click", () => setPlaying(!state.playing));
document.getElementById("step").addEventListener("click", () => {
  setPlaying(false);
  state.frame = state.frame >= DATA.steps ? 1 : state.frame + 1;
  draw();
});
document.getElementById("reset").addEventListener("click", () => { setPlaying(false); state.frame = 0; draw(); });
table();
draw();
"""

"""What fasttrain's HTML pages share: one look, the links between them, the data they embed and
the few canvas helpers they draw with.

The pages are `report.html` (a training run, fasttrain/dynamics/report.py), `landscape.html`
(landscape_html.py) and `lr_sweep.html` (lrsweep.py). Each is one self-contained file that opens
from disk: no network, no external script, style or font; its data is JSON inside a
<script type="application/json"> element and small inline JS draws it on canvases.

Links: every page lists the pages of its folder's parent and of that parent's subfolders (the
default `runs/mlp/report.html`, `runs/landscape/landscape.html`, `runs/lr-sweep/lr_sweep.html`
find each other), and writing a page rewrites that list in the others, so the links are right
whichever page was written first.
"""
from __future__ import annotations

import html
import json
import math
import os
import re
from pathlib import Path
from urllib.parse import quote

# file name -> what its link says
PAGES = {"report.html": "run", "landscape.html": "landscape", "lr_sweep.html": "lr sweep"}
_DEFAULT_DIRS = {"landscape.html": "landscape", "lr_sweep.html": "lr-sweep"}
_NAV = re.compile(r"<!--pages-->.*?<!--/pages-->", re.S)


def finite(v: float, digits: int = 5) -> float | None:
    """v rounded to `digits` significant digits for the page; None (JSON null) if NaN or Inf,
    which JSON cannot hold."""
    v = float(v)
    return float(f"{v:.{digits}g}") if math.isfinite(v) else None


def embed(data) -> str:
    """JSON for a <script type="application/json"> element. Every "<" becomes its escape
    \\u003c (the same string to JSON.parse), so no text in the data ("</script>", "<!--") can
    end the element early."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")


def _label(page: Path) -> str:
    kind, folder = PAGES[page.name], page.parent.name
    if page.name == "report.html":
        return f"{kind} {folder}"
    return kind if folder == _DEFAULT_DIRS[page.name] else f"{kind} ({folder})"


def sibling_pages(page: Path) -> list[Path]:
    """The fasttrain pages in page's parent folder's parent and its subfolders, page included."""
    page = Path(page).resolve()
    top = page.parent.parent
    found = {page}
    try:
        folders = [top, *sorted(p for p in top.iterdir() if p.is_dir())]
    except OSError:
        folders = []
    for folder in folders:
        for name in PAGES:
            if (folder / name).is_file():
                found.add(folder / name)
    return sorted(found, key=lambda p: (list(PAGES).index(p.name), str(p)))


def nav(page: Path) -> str:
    """The links of `page` to the others (its own name, unlinked, among them)."""
    page = Path(page).resolve()
    items = []
    for other in sibling_pages(page):
        label = html.escape(_label(other))
        if other == page:
            items.append(f'<strong aria-current="page">{label}</strong>')
        else:
            href = quote(os.path.relpath(other, page.parent).replace(os.sep, "/"))
            items.append(f'<a href="{html.escape(href)}">{label}</a>')
    return " · ".join(items)


def _write(path: Path, text: str) -> None:
    """Write to a temporary name, then rename: a browser never reads half a page."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def refresh_links(page: Path) -> None:
    """Rewrite the links of the other pages around `page`, now that it exists."""
    page = Path(page).resolve()
    for other in sibling_pages(page):
        if other == page:
            continue
        try:
            text = other.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        new = _NAV.sub(lambda m: f"<!--pages-->{nav(other)}<!--/pages-->", text, count=1)
        if new != text:
            _write(other, new)


def write_page(path, *, title: str, heading: str, intro: str, body: str, data,
               script: str, css: str = "") -> str:
    """Write one page at `path` (the shared look, links, data and helpers around the page's
    own `body` HTML and `script`), then update the other pages' links to it. `intro` and `body`
    are HTML: escape what they quote."""
    path = Path(path)
    parts = {"/*CSS*/": CSS + css, "<!--TITLE-->": html.escape(title),
             "<!--NAV-->": f"<!--pages-->{nav(path)}<!--/pages-->",
             "<!--HEADING-->": html.escape(heading), "<!--INTRO-->": intro, "<!--BODY-->": body,
             "/*JS*/": JS, "/*SCRIPT*/": script, "/*DATA*/": embed(data)}
    # one pass over the template: nothing put in (a sample, a path) is searched for markers
    text = re.sub("|".join(map(re.escape, parts)), lambda m: parts[m.group(0)], TEMPLATE)
    _write(path, text)
    refresh_links(path)
    return str(path)


TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title><!--TITLE--></title>
<style>
/*CSS*/
</style>
</head>
<body>
<nav class="pages">fasttrain: <!--NAV--></nav>
<h1><!--HEADING--></h1>
<!--INTRO-->
<!--BODY-->
<script type="application/json" id="data">/*DATA*/</script>
<script>
"use strict";
/*JS*/
const DATA = JSON.parse(document.getElementById("data").textContent);
/*SCRIPT*/
</script>
</body>
</html>
"""

# one look: GitHub's Primer greys and accents; the plots use COLOURS (JS) from the same set
CSS = """
  body { font: 14px/1.45 system-ui, sans-serif; margin: 1.2em auto; max-width: 1000px;
         padding: 0 1em; color: #1f2328; }
  h1 { font-size: 1.3em; margin: .3em 0 .2em; }
  h2 { font-size: 1.1em; margin: 1.4em 0 .3em; border-bottom: 1px solid #d0d7de; }
  nav.pages { font-size: 12.5px; color: #57606a; }
  nav.pages a { color: #0969da; }
  .controls { display: flex; flex-wrap: wrap; gap: .6em 1.2em; align-items: center; margin: .6em 0; }
  .controls label { font-weight: 600; }
  select, button, input { font: inherit; padding: .15em .4em; }
  input[type=number] { width: 7em; }
  .panes { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
  canvas { border: 1px solid #d0d7de; max-width: 100%; }
  table { border-collapse: collapse; margin-top: .6em; }
  td, th { border: 1px solid #d0d7de; padding: .2em .5em; font-size: 12.5px; text-align: left; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  .note { color: #57606a; font-size: 12.5px; }
  .reached { color: #1a7f37; } .diverged { color: #cf222e; } .overshoots { color: #bc4c00; }
  .key { display: inline-block; width: 1.4em; height: .3em; vertical-align: middle; margin-right: .3em; }
"""

# the shared canvas helpers; each page's script comes after them
JS = r"""
const COLOURS = {train: "#0969da", trainFaint: "rgba(9,105,218,0.22)", val: "#cf222e",
                 lr: "#1a7f37", muted: "#8c959f", text: "#57606a", grid: "#eaeef2",
                 series: ["#0969da", "#cf222e", "#1a7f37", "#bc4c00", "#8250df", "#1b7c83",
                          "#bf3989", "#4d2d00"]};

function polyline(ctx, pts, colour, width, dash) {
  if (pts.length < 2) return;
  ctx.save();
  ctx.strokeStyle = colour; ctx.lineWidth = width; ctx.setLineDash(dash || []); ctx.beginPath();
  pts.forEach((p, i) => i ? ctx.lineTo(p[0], p[1]) : ctx.moveTo(p[0], p[1]));
  ctx.stroke(); ctx.restore();
}

function marker(ctx, p, r, fill, stroke) {
  ctx.beginPath(); ctx.arc(p[0], p[1], r, 0, 2 * Math.PI);
  ctx.fillStyle = fill; ctx.fill(); ctx.strokeStyle = stroke; ctx.lineWidth = 1.5; ctx.stroke();
}

// a number in few characters: 1.5k, 2M, 3e-4, 0.25
function fmt(v) {
  const a = Math.abs(v);
  if (v === 0) return "0";
  if (a >= 1e9 || a < 1e-3) return v.toExponential(1).replace("e+", "e");
  for (const [s, k] of [[1e6, "M"], [1e3, "k"]]) if (a >= s) return +(v / s).toPrecision(3) + k;
  return String(+v.toPrecision(3));
}

// about n round values from lo to hi: steps of 1, 2 or 5 times a power of ten
function niceTicks(lo, hi, n) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n, p = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map(m => m * p).find(s => s >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

// 1, 2, 5 times the powers of ten from lo to hi (lo > 0), for a log axis
function logTicks(lo, hi) {
  for (const ms of [[1, 2, 5], [1, 1.5, 2, 3, 4, 5, 7]]) {      // finer when a range is narrow
    const out = [];
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++)
      for (const m of ms) { const v = m * Math.pow(10, e); if (v >= lo && v <= hi) out.push(v); }
    if (out.length >= 3 || ms.length > 3) return out.length >= 2 ? out : [lo, hi];
  }
}

// Clear a canvas and draw a chart's frame: grid, ticks, labels. o.x, o.y: [lo, hi] ranges;
// o.ylog: y on a log scale; o.right: [[y, label], ...] ticks on a right-hand axis titled
// o.rightLabel. Returns {ctx, X, Y, box} with X, Y mapping data to pixels.
function frame(canvas, o) {
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height;
  const p = Object.assign({l: 54, r: o.right ? 54 : 14, t: 12, b: 32}, o.pad || {});
  ctx.clearRect(0, 0, W, H);
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
  const t = o.ylog ? Math.log10 : (v => v);
  const [x0, x1] = o.x, y0 = t(o.y[0]), y1 = t(o.y[1]);
  const X = v => p.l + (v - x0) / ((x1 - x0) || 1) * (W - p.l - p.r);
  const Y = v => H - p.b - (t(v) - y0) / ((y1 - y0) || 1) * (H - p.t - p.b);
  const box = {left: p.l, right: W - p.r, top: p.t, bottom: H - p.b};
  ctx.font = "11px system-ui, sans-serif"; ctx.lineWidth = 1;
  const xt = o.xticks || niceTicks(x0, x1, Math.max(2, Math.floor((W - p.l - p.r) / 90)));
  const yt = o.yticks || (o.ylog ? logTicks(o.y[0], o.y[1])
                                 : niceTicks(o.y[0], o.y[1], Math.max(2, Math.floor((H - p.t - p.b) / 40))));
  ctx.strokeStyle = COLOURS.grid; ctx.fillStyle = COLOURS.text;
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  for (const v of xt) {
    const x = X(v); if (x < box.left - 0.5 || x > box.right + 0.5) continue;
    ctx.beginPath(); ctx.moveTo(x, box.top); ctx.lineTo(x, box.bottom); ctx.stroke();
    ctx.fillText((o.xfmt || fmt)(v), x, box.bottom + 4);
  }
  ctx.textAlign = "right"; ctx.textBaseline = "middle";
  for (const v of yt) {
    const y = Y(v); if (y < box.top - 0.5 || y > box.bottom + 0.5) continue;
    ctx.beginPath(); ctx.moveTo(box.left, y); ctx.lineTo(box.right, y); ctx.stroke();
    ctx.fillText((o.yfmt || fmt)(v), box.left - 4, y);
  }
  ctx.textAlign = "left";
  for (const [v, label] of o.right || []) {
    const y = Y(v); if (y < box.top - 0.5 || y > box.bottom + 0.5) continue;
    ctx.fillText(label, box.right + 4, y);
  }
  ctx.strokeStyle = COLOURS.muted;
  ctx.strokeRect(box.left + 0.5, box.top + 0.5, box.right - box.left, box.bottom - box.top);
  ctx.textBaseline = "alphabetic";
  if (o.xlabel) { ctx.textAlign = "right"; ctx.fillText(o.xlabel, box.right, H - 3); }
  ctx.textAlign = "left";
  if (o.ylabel) {
    ctx.save(); ctx.translate(11, box.top); ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "right"; ctx.fillText(o.ylabel, 0, 0); ctx.restore();
  }
  if (o.rightLabel) {
    ctx.save(); ctx.translate(W - 4, box.top); ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "right"; ctx.fillText(o.rightLabel, 0, 0); ctx.restore();
  }
  return {ctx, X, Y, box};
}

// the mean over a window of k values around each (k odd); nulls are skipped
function runningMean(values, k) {
  const h = Math.floor(k / 2), out = [];
  for (let i = 0; i < values.length; i++) {
    let s = 0, n = 0;
    for (let j = Math.max(0, i - h); j <= Math.min(values.length - 1, i + h); j++)
      if (values[j] !== null) { s += values[j]; n++; }
    out.push(n ? s / n : null);
  }
  return out;
}
"""

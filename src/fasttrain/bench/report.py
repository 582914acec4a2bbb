"""The report of `fasttrain bench`: the header (machine, libraries, limits), one table, the
comparison with an earlier run (--compare), the plot (--plot), and reading a saved run."""
from __future__ import annotations

import json

from fasttrain.bench._case import FASTTRAIN_BACKENDS, REFERENCE, BenchError, base
from fasttrain.bench.harness import SCHEMA, blas_warning


def _fmt_time(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms" if s < 0.1 else f"{s * 1e3:.0f} ms"
    return f"{s * 1e6:.3g} µs"


def _fmt_range(lo: float, hi: float) -> str:
    unit, scale = ("s", 1) if hi >= 1 else ("ms", 1e3) if hi >= 1e-3 else ("µs", 1e6)
    return f"{lo * scale:.3g}-{hi * scale:.3g} {unit}"


def _fmt_ratio(r: float | None) -> str:
    if r is None:
        return "-"
    return f"{r:.2f}×" if r < 10 else f"{r:.1f}×"


def _fmt_rate(row: dict) -> str:
    if row["rate"] is None:
        return "-"
    if row["rate_unit"] == "tokens/s" and row["rate"] >= 1e3:
        return f"{row['rate'] / 1e3:.1f}k tok/s"
    if row["rate_unit"] == "tokens/s":  # a GPT-2 124M step: tens of tokens/s
        return f"{row['rate']:.3g} tok/s"
    return f"{row['rate']:.3g} {row['rate_unit']}"


def header(result: dict) -> str:
    """The lines above the table: machine, libraries, limits, what is missing."""
    lim = result["limits"]
    v = result["versions"]
    libs = ", ".join(f"{k} {v[k]}" for k in ("fasttrain", "numpy", "scipy", "numba", "torch")
                     if v.get(k))
    blas = "; ".join(f"{b.get('internal_api')} {b.get('version')} {b.get('architecture')}"
                     for b in result["blas"]) or "none loaded"
    lines = []
    warning = blas_warning(result)
    if warning:
        lines.append(warning)
    lines.append(f"{result['date']}  {result['cpu']}, {result['cores']} cores, "
                 f"{result['threads']} threads, SIMD {result['simd']}; {libs}")
    lines.append(f"BLAS: {blas}")
    if lim.get("bandwidth_gbps"):
        per = ", ".join(f"{k}T {g:.1f}" for k, g in lim["bandwidth_per_threads"].items())
        end = (f"; {lim['bandwidth_end_gbps']:.1f} GB/s at the end"
               if lim.get("bandwidth_end_gbps") else "")
        lines.append(f"limits: bandwidth {lim['bandwidth_gbps']:.1f} GB/s (in-place read+write, "
                     f"{lim['bandwidth_bytes'] >> 20} MiB, best of {per}{end}); GEMM "
                     f"{lim['gemm_gflops']:.3g} GFLOP/s (float32 sgemm {lim['gemm_n']}^3)")
    else:
        lines.append(f"limits: bandwidth not measured ({lim.get('bandwidth_why')}); GEMM "
                     f"{lim['gemm_gflops']:.3g} GFLOP/s (float32 sgemm {lim['gemm_n']}^3)")
    for name, why in result["missing"].items():
        lines.append(f"missing: {name}: {why}")
    for what, why in result.get("failed", {}).items():
        lines.append(f"failed: {what}: {why}")
    lines.append(f"{result['mode']} run, {result['rounds']} interleaved rounds, medians; ratios "
                 f"are medians of per-round time ratios (numpy's or torch's time / this one's); "
                 f"'vs torch' is against the faster torch variant")
    return "\n".join(lines)


def _fmt_mb(mb) -> str:
    return "-" if mb is None else f"{mb:.1f}"


def table(result: dict) -> str:
    """One Markdown table: kernel, shape, backend, median, min-max, ratios, rate, share (and
    the extra peak memory, resident and numpy's traced, when the run measured it). A row slower
    than the reference in this run whose backend says it is so by design (its `slow_by_design`)
    gets a mark [k] after its backend, and the reason is written once under the table; a row
    without a numpy time to compare (numpy not run) gets no mark."""
    head = ["kernel", "shape", "backend", "median", "min-max", "vs numpy", "vs torch", "rate",
            "of limit"]
    memory = any("extra_mb" in r for r in result["results"])
    if memory:
        head += ["extra MB", "traced MB"]
    body = []
    notes: dict[str, int] = {}  # reason: its mark
    for r in result["results"]:
        share = "-" if r["of_limit"] is None else (
            f"{r['of_limit']:.0%} {'BW' if r['limit'] == 'bandwidth' else 'GEMM'}")
        backend = r["backend"]
        slow = r["vs_numpy"] is not None and r["vs_numpy"] < 1  # measured slower, this run
        if slow and r.get("slow_by_design"):  # (absent from the JSON of older runs)
            backend += f" [{notes.setdefault(r['slow_by_design'], len(notes) + 1)}]"
        cells = [f"{r['kernel']} {r['op']}", r["shape"], backend, _fmt_time(r["median_s"]),
                 _fmt_range(r["min_s"], r["max_s"]), _fmt_ratio(r["vs_numpy"]),
                 _fmt_ratio(r["vs_torch"]), _fmt_rate(r), share]
        if memory:
            cells += [_fmt_mb(r.get("extra_mb")), _fmt_mb(r.get("traced_mb"))]
        body.append(cells)
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h)
              for i, h in enumerate(head)]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    under = [f"[{k}] slower than the numpy reference by design: {why}"
             for why, k in notes.items()]
    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *map(line, body), *(["", *under] if under else [])])


RATIOS = ("vs_numpy", "vs_torch", "of_limit")


def compare(old: dict, new: dict, threshold: float) -> tuple[str, list[str]]:
    """The change of every within-run ratio of fasttrain's backends (speedup against numpy and
    torch, share of the machine's limit) from `old` to `new`; a drop by more than `threshold`
    (0.1: 10%) is a regression. Absolute times are not compared: they move with the machine.
    Returns (the report, the regressions)."""
    def key(r):
        return (r["kernel"], r["op"], r["shape"], r["backend"])

    before = {key(r): r for r in old.get("results", [])}
    lines, regressions = [], []
    for k in ("cpu", "threads", "blas_forced", "simd"):
        if old.get(k) != new.get(k):
            lines.append(f"note: {k} differs: {old.get(k)!r} then, {new.get(k)!r} now")
    lines.append(f"compared with the run of {old.get('date')} (threshold {threshold:.0%}):")
    matched = 0
    for r in new.get("results", []):
        o = before.get(key(r))
        if o is None or r["backend"] == REFERENCE or r["backend"].startswith("torch"):
            continue
        matched += 1
        changes = []
        for ratio in RATIOS:
            a, b = o.get(ratio), r.get(ratio)
            if not a or b is None:
                continue
            change = b / a - 1
            flag = change < -threshold
            moved = f"{ratio} {a:.3g} -> {b:.3g} ({change:+.0%})"
            changes.append(moved + (" REGRESSION" if flag else ""))
            if flag:
                regressions.append(f"{' '.join(key(r))}: {moved}")
        lines.append(f"  {r['kernel']} {r['op']} {r['shape']} {r['backend']}: "
                     + ("; ".join(changes) or "no ratios"))
    if not matched:
        lines.append("  no rows in common (different kernels or shapes?)")
    lines.append(f"{len(regressions)} regression(s) beyond {threshold:.0%}" if regressions
                 else f"no regression beyond {threshold:.0%}")
    return "\n".join(lines), regressions


def _pyplot():
    from fasttrain.plot import pyplot

    return pyplot(BenchError, "--plot needs matplotlib: pip install 'fasttrain[plot]'")


def plot(result: dict, path: str) -> None:
    """A PNG of fasttrain's speedups per case: against the numpy reference and against torch."""
    plt = _pyplot()
    rows = [r for r in result["results"] if base(r["backend"]) in FASTTRAIN_BACKENDS
            and r["backend"] != REFERENCE]
    labels = list(dict.fromkeys(f"{r['kernel']} {r['op']} {r['shape']}" for r in rows))
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.35 * max(len(labels), 4) + 1.5), sharey=True)
    height = 0.8 / max(len(backends), 1)
    for ax, ratio, title in zip(axes, ("vs_numpy", "vs_torch"),
                                ("speedup vs the numpy reference", "speedup vs PyTorch")):
        for j, b in enumerate(backends):
            ys, xs = [], []
            for r in rows:
                if r["backend"] == b and r[ratio]:
                    ys.append(labels.index(f"{r['kernel']} {r['op']} {r['shape']}") + j * height)
                    xs.append(r[ratio])
            ax.barh(ys, xs, height=height, label=b)
        ax.axvline(1, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_title(title)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks([i + 0.4 - height / 2 for i in range(len(labels))], labels, fontsize=8)
    axes[0].invert_yaxis()
    axes[1].legend()
    fig.suptitle(f"fasttrain bench {result['date']}: {result['cpu']}, {result['threads']} threads",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _load(path: str) -> dict:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise BenchError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or "results" not in data:
        raise BenchError(f"{path} is not a fasttrain bench JSON (schema {SCHEMA})")
    return data

"""The command line of `fasttrain bench` (fasttrain/cli.py registers the subcommand).

    fasttrain bench [--kernels crossentropy,linear,...] [--backends c,numba,numpy,torch]
                    [--shapes S,...] [--rounds R] [--memory] [--quick] [--threads N]
                    [--json FILE] [--compare OLD.json] [--threshold 0.1] [--plot FILE.png]
                    [--results FILE]
    fasttrain bench --profile [--shapes "L4 H4 C256 T128 B16 V256"] [--rounds STEPS]
"""
from __future__ import annotations

import json
import sys

import fasttrain.bench as bench
from fasttrain.bench._case import (
    CONTENDERS,
    BenchError,
    aliases,
    extras,
    kernel_names,
    parse_shape,
)
from fasttrain.bench.report import _load, _pyplot, compare, header, plot, table


def _parse_list(text: str, choices: tuple[str, ...], what: str, alias=None) -> list[str]:
    alias = alias or {}
    names = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in names if k not in choices and k not in alias]
    if unknown or not names:
        raise ValueError(f"unknown {what} {', '.join(map(repr, unknown)) or repr(text)}; "
                         f"choose from {','.join(choices)}")
    return list(dict.fromkeys(alias.get(k, k) for k in names))


def parse_kernels(text: str) -> list[str]:
    """'crossentropy,linear' -> ['crossentropy', 'linear']; the public and C names of a kernel
    ('softmax_cross_entropy', 'ft_crossentropy') mean its case module; an unknown name is a
    ValueError."""
    return _parse_list(text, kernel_names(every=True), "kernel", aliases())


def parse_backends(text: str) -> list[str]:
    """'c,torch' -> ['c', 'torch'] ("torch" covers every torch variant; an extra contender,
    such as sgemm, runs only when named; "torch-foreach" means "torch foreach", which a shell
    needs no quotes for); unknown: ValueError."""
    choices = (*CONTENDERS, *extras())
    return _parse_list(text, choices, "backend", {c.replace(" ", "-"): c for c in choices})


def main(args) -> int:
    """The command. Exit status: 0, or 1 when --compare flags a regression (so a script or CI
    job can fail on it), 2 on an error."""
    if args.threshold is not None and not (0 <= args.threshold < 1):
        raise BenchError(f"--threshold must be in [0, 1), got {args.threshold}")
    old = _load(args.compare) if args.compare else None
    if args.plot:
        _pyplot()  # fail before minutes of measuring, not after
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()] if args.shapes else None
    if args.profile:
        return _profile(args, shapes)
    if shapes:  # before minutes of measuring, as --plot
        kernels = parse_kernels(args.kernels)
        if len(kernels) != 1:
            raise BenchError("--shapes needs exactly one kernel in --kernels")
        for text in shapes:
            parse_shape(kernels[0], text)
    if args.results:
        result = _load(args.results)
    else:
        mode = "tiny" if args.tiny else "quick" if args.quick else "full"
        result = bench.run(parse_kernels(args.kernels), mode, args.threads,
                           log=lambda s: print(s, file=sys.stderr),
                           backends=parse_backends(args.backends), shapes=shapes,
                           rounds=args.rounds, memory=args.memory)
    print(header(result))
    print(table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        print(f"wrote {args.json}")
    if args.plot:
        plot(result, args.plot)
        print(f"wrote {args.plot}")
    if old is not None:
        report, regressions = compare(old, result, args.threshold)
        print(report)
        return 1 if regressions else 0
    return 0


def _profile(args, shapes) -> int:
    """--profile: one GPT step's time per kernel (fasttrain.bench.profile), printed as a table
    (and written with --json)."""
    from fasttrain.bench import gpt_step, harness, profile

    if shapes and len(shapes) > 1:
        raise BenchError("--profile takes one shape in --shapes")
    if shapes:
        shape = parse_shape("gpt_step", shapes[0])
    else:
        shape = gpt_step.TINY[0] if args.tiny else gpt_step.SMALL
    harness.prepare(args.threads)  # the C backend before torch, one thread count for all
    result = profile.profile(shape, steps=args.rounds or 3,
                             gemm_n=harness.MODES["tiny" if args.tiny else "quick"]["gemm_n"])
    print(profile.table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        print(f"wrote {args.json}")
    return 0


def _positive_int(text: str) -> int:
    import argparse

    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def _checked_by(parse):
    """An argparse type that keeps the text once `parse` accepts it, and turns its ValueError
    into argparse's usage error."""
    def check(text: str) -> str:
        import argparse

        try:
            parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        return text
    return check


def add_arguments(p) -> None:
    """The options of `fasttrain bench` (cli.py registers the subcommand)."""
    import argparse

    p.description = (
        "Times each kernel at a few standard shapes on every fasttrain backend and PyTorch "
        "(when installed), interleaved, and prints one table: median, min-max, speedup against "
        "the numpy reference and against PyTorch from the same rounds, and the share of this "
        "machine's limits (memory bandwidth, GEMM FLOP/s) measured at the start. Exit status: "
        "0; 1 when --compare finds a regression; 2 on an error.")
    names, every = kernel_names(), kernel_names(every=True)
    p.add_argument("--kernels", type=_checked_by(parse_kernels), default=",".join(names),
                   help=f"comma-separated, of {','.join(every)} (default: "
                   f"{','.join(names)}; the public names work too: softmax_cross_entropy, "
                   "linear_forward, tanh, ...)")
    # With Numba's OpenMP threading layer started in the same process, torch's per-tensor
    # AdamW ran ~8x slower here (README, AdamW step); --backends c,numpy,torch leaves numba out.
    p.add_argument("--backends", type=_checked_by(parse_backends), default=",".join(CONTENDERS),
                   help=f"comma-separated, of {','.join(CONTENDERS)} (default: all that load; "
                   "numpy is fasttrain's reference backend, fasttrain.kernels.ref: without it "
                   "there is no 'vs numpy'), and contenders run only when named: "
                   f"{','.join(e.replace(' ', '-') for e in extras())}")
    p.add_argument("--quick", action="store_true",
                   help="one shape per kernel, 3 rounds (under a minute on 2 cores)")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="threads for fasttrain, BLAS and torch (default: fasttrain's count)")
    p.add_argument("--json", metavar="FILE", help="write the full results (and environment) here")
    p.add_argument("--compare", metavar="OLD.json",
                   help="print each ratio's change since that run; exit 1 on a regression")
    p.add_argument("--threshold", type=float, default=0.1,
                   help="a ratio that drops by more than this fraction is a regression (0.1)")
    p.add_argument("--plot", metavar="FILE.png",
                   help="bar chart of the speedups (needs matplotlib)")
    p.add_argument("--results", metavar="FILE.json",
                   help="report (and compare, plot) a saved run instead of measuring")
    p.add_argument("--shapes", metavar="S,...",
                   help="these shapes instead of the run's, for one kernel: as the table writes "
                   "them with x between the sizes (crossentropy 4096x256, linear 64x64x64, "
                   "embedding 256x64x8192 for V x E x N, adamw 1M or 100M, gpt_step "
                   "'L12 H12 C768 T64 B4 V50304' or 12x12x768x64x4x50304)")
    p.add_argument("--rounds", type=_positive_int, default=None,
                   help="interleaved rounds (default 5; 3 with --quick)")
    p.add_argument("--memory", action="store_true",
                   help="also each contender's extra peak memory in one call (resident, Linux; "
                   "and numpy's traced)")
    p.add_argument("--profile", action="store_true",
                   help="instead of the table: where one GPT training step's time goes, per "
                   "kernel (calls, ms and share of the step, GEMM kernels' GFLOP/s and share of "
                   "the GEMM probe), on the c backend, at gpt_step's small shape or the one "
                   "--shapes names; --rounds: the steps profiled (3)")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # tests: tiny shapes

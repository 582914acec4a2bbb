"""The training-dynamics subcommands of `fasttrain`, registered by cli.build_parser:

    fasttrain landscape [--surface S,..] [--optimizer sgd,momentum,adam] [--lr 0.005,0.03,0.1]
                        [--steps N] [--out DIR]
    fasttrain lr-sweep [--lrs 1e-4,...] [--steps N] [--out DIR] [--key=value ...]
    fasttrain step [--lr LR]
    fasttrain temperature --run DIR --prompt TEXT [--temperatures 0.1,1,2] [--top K]
    fasttrain estimate --params N --tokens D [--flops-per-second F] [--price-per-hour P] [--run DIR]
"""
from __future__ import annotations

import argparse
from pathlib import Path


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _number(text: str) -> float:
    """175e9, 1.4e12 or 70_000_000."""
    try:
        return float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _landscape(args, rest) -> int:
    from fasttrain.dynamics import landscape
    from fasttrain.dynamics.landscape_html import write_page
    from fasttrain.dynamics.landscape_plot import write_pngs

    surfaces = list(landscape.SURFACES) if args.surface == ["all"] else args.surface
    landscape.check_arguments(surfaces, args.optimizer, args.lr, args.steps)
    results = landscape.run_all(surfaces, args.optimizer, args.lr, args.steps)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for surface, by_opt in results.items():
        print(f"{surface}: f = {landscape.SURFACES[surface].formula}, {args.steps} steps")
        for opt, by_lr in by_opt.items():
            for lr, t in by_lr.items():
                print(f"  {opt:<8s} lr {lr:<7g} {t.summary}")
    written = write_pngs(results, out)
    page = write_page(results, out / "landscape.html", landscape.DEFAULT_SURFACE)
    print("wrote " + ", ".join(written + [page]))
    return 0


def _lr_sweep(args, rest) -> int:
    from fasttrain.config import parse_overrides
    from fasttrain.dynamics.lrsweep import format_table, plot, sweep, write_page
    from fasttrain.train import resolve_config

    cfg = resolve_config(parse_overrides(rest), args.config, resume=False)
    results = sweep(args.lrs, args.steps, cfg, args.out)
    print(format_table(results))
    title = (f"learning-rate sweep: {args.steps} steps at constant lr, {cfg.optimizer}, "
             f"batch {cfg.batch_size}, {cfg.model_summary}")
    path = plot(results, Path(args.out) / "lr_sweep.png", title)
    page = write_page(results, Path(args.out) / "lr_sweep.html", title)
    print(f"wrote {path}, {page}")
    return 0


def _step(args, rest) -> int:
    from fasttrain.dynamics.onestep import format_step, one_step

    print(format_step(one_step(lr=args.lr)))
    return 0


def _temperature(args, rest) -> int:
    from fasttrain.dynamics.temperature import distributions, format_distributions

    print(format_distributions(distributions(args.run, args.prompt, args.temperatures, args.top)))
    return 0


def _estimate(args, rest) -> int:
    from fasttrain.dynamics import estimate as est

    if args.flops_per_second is not None:
        rate, source = args.flops_per_second, "given"
    elif args.run is not None or (Path("runs/mlp") / "metrics.jsonl").exists():
        rate, source = est.throughput_from_run(args.run or "runs/mlp")
    else:
        rate, source = est.measured_gemm_throughput()
    print(est.format_estimate(est.estimate(args.params, args.tokens, rate, args.price_per_hour),
                              source))
    return 0


def add_parsers(sub) -> None:
    from fasttrain.dynamics import landscape, lrsweep

    p = sub.add_parser("landscape", help="optimizers rolling down 2-D loss surfaces: PNGs and an "
                                         "interactive HTML page")
    p.add_argument("--surface", type=_names, default=["all"],
                   help=f"comma-separated, from {', '.join(landscape.SURFACES)}; default all")
    p.add_argument("--optimizer", type=_names, default=list(landscape.OPTIMIZERS),
                   help="comma-separated, from sgd, momentum (0.9), adam")
    p.add_argument("--lr", type=_floats, default=list(landscape.DEFAULT_LRS),
                   help="comma-separated learning rates (default 0.005,0.03,0.1)")
    p.add_argument("--steps", type=int, default=landscape.DEFAULT_STEPS)
    p.add_argument("--out", default="runs/landscape", metavar="DIR")
    p.set_defaults(handler=_landscape)

    p = sub.add_parser("lr-sweep", help="short runs of the language model at several learning "
                                        "rates: loss curves and a table")
    p.add_argument("--lrs", type=_floats, default=list(lrsweep.DEFAULT_LRS),
                   help="comma-separated (default 1e-4,1e-3,3e-3,1e-2,1e-1)")
    p.add_argument("--steps", type=int, default=lrsweep.DEFAULT_STEPS)
    p.add_argument("--out", default="runs/lr-sweep", metavar="DIR")
    p.add_argument("--config", metavar="FILE", help="TOML file of model/data overrides")
    p.set_defaults(handler=_lr_sweep, free=True)

    p = sub.add_parser("step", help="one training step in numbers on a five-word vocabulary")
    p.add_argument("--lr", type=float, default=0.1)
    p.set_defaults(handler=_step)

    p = sub.add_parser("temperature", help="a trained run's next-token distribution at several "
                                           "temperatures")
    p.add_argument("--run", required=True, metavar="DIR")
    p.add_argument("--prompt", required=True)
    p.add_argument("--temperatures", type=_floats, default=[0.1, 1.0, 2.0])
    p.add_argument("--top", type=int, default=5, help="how many of the likeliest tokens to show")
    p.set_defaults(handler=_temperature)

    p = sub.add_parser("estimate", help="training compute (6ND), compute-optimal tokens, time "
                                        "and cost")
    p.add_argument("--params", type=_number, required=True, metavar="N")
    p.add_argument("--tokens", type=_number, required=True, metavar="D")
    p.add_argument("--flops-per-second", type=_number, default=None, metavar="F",
                   help="default: the throughput of --run (or runs/mlp if trained), else a "
                        "GEMM timed now")
    p.add_argument("--price-per-hour", type=_number, default=None, metavar="P")
    p.add_argument("--run", default=None, metavar="DIR",
                   help="take the throughput from this run's metrics")
    p.set_defaults(handler=_estimate)

"""The `fasttrain` command: one subcommand per job.

    fasttrain train [--config FILE.toml] [--resume] [--keep_checkpoints] [--key=value ...]
    fasttrain sample --run DIR [--step N] [--prompt TEXT] [--temperature T] [--top-k K] [--tokens N] [--seed S]
    fasttrain report --run DIR           (report.html: loss, samples, schedule, compute)
    fasttrain eval --run DIR [--data PATH] | --init_from HF_DIR --data PATH
    fasttrain export --run DIR --hf OUT   (a GPT run as a Hugging Face GPT-2 folder)
    fasttrain schedule [--config FILE.toml] [--key=value ...] [--plot FILE.png]
    fasttrain info
    fasttrain landscape | lr-sweep | step | temperature | estimate   (fasttrain/dynamics)
    fasttrain bench [--kernels K,...] [--quick] [--threads N] [--json F] [--compare OLD.json] [--plot F]
"""
from __future__ import annotations

import argparse
import sys


def _train(args, rest) -> int:
    from fasttrain.config import describe, parse_overrides
    from fasttrain.train import resolve_config, train

    if args.keys:
        print("fasttrain train --key=value ...; keys, defaults and meanings:\n" + describe())
        return 0
    cfg = resolve_config(parse_overrides(rest), args.config, args.resume)
    summary = train(cfg, resume=args.resume)
    if summary["rank"]:  # under MPI, rank 0 speaks for every rank
        return 130 if summary["interrupted"] else 0
    state = "interrupted" if summary["interrupted"] else "done"
    print(f"{state}: step {summary['step']}, val loss {summary['val_loss']:.4f}, "
          f"perplexity {summary['val_perplexity']:.2f}, {summary['seconds']:.0f} s, "
          f"{summary['tokens_per_s'] / 1e3:.1f}k tokens/s; run in {summary['run_dir']}"
          + (f", plot {summary['plot']}" if summary.get("plot") else "")
          + (f", report {summary['report']}" if summary.get("report") else ""))
    return 130 if summary["interrupted"] else 0


def _sample(args, rest) -> int:
    from fasttrain.sample import generate, load_run

    _, model, tokenizer = load_run(args.run, args.step)
    print(generate(model, tokenizer, args.prompt, args.tokens, temperature=args.temperature,
                   top_k=args.top_k, seed=args.seed))
    return 0


def _report(args, rest) -> int:
    from fasttrain.dynamics.report import write_report

    print(f"wrote {write_report(args.run)}")
    return 0


def _eval(args, rest) -> int:
    from fasttrain.sample import evaluate_text

    if (args.run is None) == (args.init_from is None):
        raise ValueError("give --run DIR or --init_from HF_DIR (one of them)")
    if args.init_from is not None:
        from fasttrain.hf import evaluate_folder

        if args.data is None:
            raise ValueError("--init_from needs --data PATH: the text to evaluate on")
        r = evaluate_folder(args.init_from, args.data)
    else:
        r = evaluate_text(args.run, args.data)
    print(f"{r['source']}: {r['tokens']:,} tokens, loss {r['loss']:.4f}, "
          f"perplexity {r['perplexity']:.2f}")
    return 0


def _export(args, rest) -> int:
    from fasttrain.hf import export_run

    print(f"wrote {export_run(args.run, args.hf)}")
    return 0


def _schedule(args, rest) -> int:
    from fasttrain.config import parse_overrides
    from fasttrain.schedule import from_config
    from fasttrain.train import resolve_config

    cfg = resolve_config(parse_overrides(rest), args.config, resume=False)
    lrs = from_config(cfg)
    if args.plot:
        from fasttrain.plot import pyplot
        from fasttrain.schedule import learning_rate

        plt = pyplot()

        fig, ax = plt.subplots(figsize=(7, 3.5))
        # the config's schedule, and the others with the same lr, min_lr and warmup to compare
        for kind in ("cosine", "linear", "constant"):
            ys = lrs if kind == cfg.schedule else [
                learning_rate(s, lr=cfg.lr, min_lr=cfg.min_lr, warmup=cfg.warmup, steps=cfg.steps,
                              schedule=kind) for s in range(cfg.steps)]
            mine = kind == cfg.schedule
            ax.plot(range(len(ys)), ys, lw=2 if mine else 1, ls="-" if mine else "--",
                    alpha=1 if mine else 0.6, label=kind + (" (this config)" if mine else ""))
        ax.legend()
        ax.set_xlabel("step")
        ax.set_ylabel("learning rate")
        ax.set_title(f"{cfg.schedule}: warmup {cfg.warmup}, lr {cfg.lr:g} -> min_lr {cfg.min_lr:g}")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        print(f"wrote {args.plot}")
        return 0
    marks = sorted({0, cfg.warmup - 1, cfg.warmup, *range(0, cfg.steps, max(1, cfg.steps // 10)),
                    cfg.steps - 1} & set(range(cfg.steps)))
    for s in marks:
        print(f"step {s:>7d}  lr {lrs[s]:.3e}")
    return 0


def _info(args, rest) -> int:
    from fasttrain.info import report

    print(report())
    return 0


def _bench(args, rest) -> int:
    from fasttrain.bench import BenchError, main

    try:
        return main(args)
    except BenchError as e:
        print(f"fasttrain bench: error: {e}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fasttrain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a language model (defaults: the built-in corpus)")
    p.add_argument("--config", metavar="FILE", help="TOML file of flat key = value overrides")
    p.add_argument("--resume", action="store_true", help="continue the run in out_dir")
    p.add_argument("--keys", action="store_true", help="list every --key=value with its default")
    p.set_defaults(handler=_train, free=True)

    p = sub.add_parser("sample", help="generate text from a trained run")
    p.add_argument("--run", required=True, metavar="DIR")
    p.add_argument("--prompt", default="")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--tokens", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--step", type=int, default=None, metavar="N",
                   help="the checkpoint of step N (kept by --keep_checkpoints); default the last")
    p.set_defaults(handler=_sample)

    p = sub.add_parser("report", help="write a run's report.html: loss, samples through "
                                      "training, compute, a schedule explorer")
    p.add_argument("--run", required=True, metavar="DIR")
    p.set_defaults(handler=_report)

    p = sub.add_parser("eval", help="loss and perplexity of a run on its validation split or a "
                                    "text, or of a Hugging Face GPT-2 folder on a text")
    p.add_argument("--run", default=None, metavar="DIR")
    p.add_argument("--init_from", "--init-from", default=None, metavar="HF_DIR")
    p.add_argument("--data", default=None, metavar="PATH")
    p.set_defaults(handler=_eval)

    p = sub.add_parser("export", help="write a GPT run as a Hugging Face GPT-2 folder")
    p.add_argument("--run", required=True, metavar="DIR")
    p.add_argument("--hf", required=True, metavar="OUT", help="the folder to write (new or empty)")
    p.set_defaults(handler=_export)

    p = sub.add_parser("schedule", help="the learning rate over the steps of a config")
    p.add_argument("--config", metavar="FILE")
    p.add_argument("--plot", metavar="FILE.png")
    p.set_defaults(handler=_schedule, free=True)

    p = sub.add_parser("info", help="version, backends, SIMD level, threads and BLAS")
    p.set_defaults(handler=_info)

    from fasttrain.dynamics.commands import add_parsers

    add_parsers(sub)

    p = sub.add_parser("bench", help="kernel speed against numpy, PyTorch and this machine's limits")
    from fasttrain.bench import add_arguments

    add_arguments(p)
    p.set_defaults(handler=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    from fasttrain.checkpoint import CheckpointError
    from fasttrain.config import ConfigError
    from fasttrain.data import DataError
    from fasttrain.train import TrainingError

    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "free", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return args.handler(args, rest)
    except (ConfigError, DataError, CheckpointError, TrainingError, ValueError) as e:
        print(f"fasttrain {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fasttrain {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

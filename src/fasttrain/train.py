"""The training loop, top to bottom: data, model, optimizer, then for every step
forward + fused loss + backward, clip, AdamW, schedule; validation every so often; metrics,
checkpoints and a plot. Everything that computes runs through fasttrain's kernels.

    from fasttrain.config import TrainConfig
    from fasttrain.train import train
    summary = train(TrainConfig(steps=2000, out_dir="runs/quick"))
"""
from __future__ import annotations

import json
import math
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import fasttrain
from fasttrain import checkpoint, distributed
from fasttrain.config import ConfigError, TrainConfig
from fasttrain.data import Batches, Corpus
from fasttrain.kernels import clip_coef, sum_of_squares
from fasttrain.models import from_config
from fasttrain.optim import SGD, AdamW
from fasttrain.checkpoint import CHECKPOINT, kept_checkpoint
from fasttrain.sample import evaluate, training_sample
from fasttrain.schedule import learning_rate

METRICS = "metrics.jsonl"
# the keys that fix a model's shape and its data: a checkpoint is only valid for the same ones
MODEL_KEYS = ("data", "tokenizer", "bpe_vocab_size", "val_fraction", "model", "context",
              "n_embd", "hidden", "activation", "n_layer", "n_head", "block_size", "optimizer")


class TrainingError(RuntimeError):
    """The run had to stop: a NaN/Inf loss or gradient, with the step named."""


# ----------------------------------------------------------------------------------------------
# pieces the loop is made of

def build(cfg: TrainConfig, corpus: Corpus):
    """The model (initialised from cfg.seed) and its optimizer."""
    model = from_config(cfg, corpus.tokenizer.vocab_size)
    model.init(cfg.seed)
    if cfg.optimizer == "adamw":
        opt = AdamW(model.arena, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                    weight_decay=cfg.weight_decay, backend=cfg.backend)
    else:
        opt = SGD(model.arena, lr=cfg.lr, momentum=cfg.beta1, weight_decay=cfg.weight_decay,
                  backend=cfg.backend)
    return model, opt


def save_checkpoint(run: Path, step: int, model, opt, batches: Batches, cfg: TrainConfig,
                    extra: dict, world=distributed.SOLO, name: str = CHECKPOINT) -> None:
    world.check_replicas(model.arena.params)  # rank 0's copy stands for every rank's
    if not world.is_root:
        return
    arrays = {"params": model.arena.params, **opt.state_arrays()}
    meta = {"step": step, "optimizer_steps": opt.step_count, "config": cfg.to_dict(),
            "data_rng": batches.state(), "layout": model.arena.layout(),
            "fasttrain": fasttrain.__version__, "threads": fasttrain.get_num_threads(),
            "ranks": world.size, **extra}
    checkpoint.save(run / name, arrays, meta)


def load_checkpoint(run: Path, model, opt, batches: Batches, cfg: TrainConfig) -> tuple[int, dict]:
    """Restore params, optimizer state and data position; return (step, meta)."""
    arrays, meta = checkpoint.load(run / CHECKPOINT)
    saved = meta.get("config", {})
    differ = [k for k in MODEL_KEYS if saved.get(k) != getattr(cfg, k)]
    if differ or meta.get("layout") != model.arena.layout():
        what = ", ".join(f"{k}={saved.get(k)!r} (now {getattr(cfg, k)!r})" for k in differ)
        raise checkpoint.CheckpointError(
            f"{run / CHECKPOINT} was written for a different model: {what or 'parameter layout'}")
    params = arrays.pop("params")
    if params.shape != model.arena.params.shape or params.dtype != model.arena.params.dtype:
        raise checkpoint.CheckpointError(f"{run / CHECKPOINT}: params has shape {params.shape}, "
                                         f"the model needs {model.arena.params.shape}")
    model.arena.params[...] = params
    opt.load_state(arrays, meta["optimizer_steps"])
    batches.set_state(meta["data_rng"])
    return meta["step"], meta


def train_step(model, opt, micro_batches, lr: float, grad_clip: float,
               world=distributed.SOLO) -> tuple[float, float]:
    """One optimizer step: forward + backward over each (x, y) micro-batch, gradients summed in
    the arena (and over the ranks), then one AdamW (or SGD) pass that also averages and clips
    them (grad_scale). Returns (mean loss, gradient norm before clipping); the parameters
    change only when both are finite, so a NaN never reaches them."""
    model.arena.zero_grad()
    losses = [model.forward_backward(x, y) for x, y in micro_batches]
    world.allreduce_grads(model.arena.grads)
    (loss,) = world.sum(sum(losses))
    k = len(losses) * world.size
    # the arena holds the sum of the micro-batches' mean gradients; the gradient is that / k
    norm = math.sqrt(sum_of_squares(model.arena.grads, backend=model.backend)) / k
    loss = loss / k
    if math.isfinite(loss) and math.isfinite(norm):
        clip = clip_coef(norm, grad_clip) if grad_clip > 0 else 1.0
        opt.step(lr=lr, grad_scale=clip / k)
    return loss, norm


class _StopFlag:
    """Ctrl-C asks the loop to stop at the next step boundary (and save); a second Ctrl-C
    interrupts at once."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class _Quiet:
    """The log of every rank but 0: it writes and prints nothing."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def one_line(text: str, width: int) -> str:
    """text on one line of at most `width` characters: line breaks and tabs shown as ⏎ and
    spaces, other control characters dropped, and anything the console cannot print escaped."""
    text = text.replace("\r\n", "\n").replace("\n", "⏎").replace("\t", " ")
    text = "".join(c for c in text if c.isprintable())
    if len(text) > width:
        text = text[:max(1, width - 1)] + "…"
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    return text.encode(encoding, "backslashreplace").decode(encoding)


class _Log:
    """Metrics as JSON lines in the run directory; a progress bar on a terminal, plain lines
    otherwise."""

    def __init__(self, run: Path, cfg: TrainConfig, start: int, progress: bool | None):
        path = run / METRICS
        # on resume, drop what an interrupted run logged after its last checkpoint, and the
        # evaluation at the checkpoint's step if the resumed run evaluates there again
        redo = start % cfg.eval_interval == 0 or start >= cfg.steps
        kept = []
        if start > 0 and path.exists():
            records = [(line, json.loads(line)) for line in path.read_text().splitlines() if line]
            kept = [line for line, r in records if r["step"] < start or r["step"] == start
                    and (r["split"] == "train" or not redo)]
        path.write_text("".join(line + "\n" for line in kept))
        self.file = open(path, "a")
        self.cfg = cfg
        tty = sys.stderr.isatty() if progress is None else progress
        self.bar = None
        if tty:
            from tqdm import tqdm

            self.bar = tqdm(total=cfg.steps, initial=start, unit="step", dynamic_ncols=True)

    def write(self, **record) -> None:
        self.file.write(json.dumps(record) + "\n")

    def step(self, step: int, loss: float, lr: float, norm: float, tok_s: float,
             epoch: float) -> None:
        """epoch: training tokens seen after `step` over the tokens of the train split."""
        self.write(step=step, split="train", loss=loss, lr=lr, grad_norm=norm, tokens_per_s=tok_s,
                   epoch=epoch)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{tok_s / 1e3:.1f}k",
                                 epoch=f"{epoch:.3g}", refresh=False)
        elif step % self.cfg.log_interval == 0 or step == self.cfg.steps:
            print(f"step {step:>6d}/{self.cfg.steps} | loss {loss:.4f} | lr {lr:.2e} | "
                  f"grad norm {norm:.3f} | {tok_s / 1e3:.1f}k tok/s | epoch {epoch:.3g}",
                  flush=True)

    def eval(self, step: int, val_loss: float, sample: str | None = None) -> None:
        ppl = math.exp(val_loss)
        extra = {} if sample is None else {"sample": sample}
        self.write(step=step, split="val", loss=val_loss, perplexity=ppl, **extra)
        self.file.flush()
        msg = f"step {step:>6d}: val loss {val_loss:.4f}, perplexity {ppl:.2f}"
        if sample is not None:
            msg += "\n  " + one_line(sample, 100 if self.bar is None else
                                      shutil.get_terminal_size((104, 20)).columns - 4)
        if self.bar is not None:
            self.bar.write(msg)
        else:
            print(msg, flush=True)

    def flush(self) -> None:
        """To the OS, before a checkpoint: a run killed later keeps every line the checkpoint
        covers (a resume drops the lines after it)."""
        self.file.flush()

    def note(self, msg: str) -> None:
        (self.bar.write if self.bar is not None else print)(msg)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.file.close()


# ----------------------------------------------------------------------------------------------
# the loop

def train(cfg: TrainConfig, *, resume: bool = False, progress: bool | None = None) -> dict:
    """Train per cfg (resuming from its out_dir's checkpoint if asked); return a summary.
    Started by an MPI launcher with several ranks, data-parallel (fasttrain.distributed)."""
    world = distributed.world()
    with world.abort_on_error():
        return _train(cfg, world, resume, progress)


def _train(cfg: TrainConfig, world, resume: bool, progress: bool | None) -> dict:
    cfg.validate()
    init = None
    if cfg.init_from and not resume:  # (a resume reads its own checkpoint)
        from fasttrain import hf

        init = hf.open_folder(cfg.init_from)  # checked whole before anything is written
        cfg = hf.configure(cfg, init)
    run = Path(cfg.out_dir)
    run.mkdir(parents=True, exist_ok=True)
    if resume and world.is_root and not (run / CHECKPOINT).exists():
        raise checkpoint.CheckpointError(f"--resume: {run / CHECKPOINT} does not exist")
    if cfg.threads or world.size > 1:  # ranks on one machine share its cores
        fasttrain.set_num_threads(cfg.threads or world.default_threads())

    # 1. data: tokenised once into the run directory, memory-mapped from there
    with world.rank0_first():
        if init is not None and world.is_root:
            hf.prepare_run(init, run)
        corpus = Corpus.prepare(run, cfg.data, cfg.tokenizer, cfg.bpe_vocab_size,
                                cfg.val_fraction, cfg.window)
    # 2. model and optimizer, or their state at the last checkpoint (rank 0's, broadcast)
    model, opt = build(cfg, corpus)
    micro_batch = cfg.batch_size // cfg.grad_accum
    batches = Batches(corpus.train, cfg.window, micro_batch, seed=cfg.seed + 1,
                      shard=(world.rank, world.size), sequence=model.sequence)
    if init is not None and world.is_root:  # the other ranks receive it by broadcast_state
        init.load_into(model)
    start = 0
    if resume and world.is_root:
        start, _ = load_checkpoint(run, model, opt, batches, cfg)
    start = world.broadcast_state(model, opt, batches, start)
    if world.is_root:
        cfg.save(run / "config.json")
    log = _Log(run, cfg, start, progress) if world.is_root else _Quiet()
    log.note(f"fasttrain: {cfg.model_summary}: {model.num_params:,} parameters, "
             f"{len(corpus.train):,} train / "
             f"{len(corpus.val):,} val tokens, backend {cfg.backend}, "
             f"{fasttrain.get_num_threads()} threads"
             + (f" on each of {world.size} ranks" if world.size > 1 else "")
             + (f", resuming at step {start}" if start else ""))

    def evaluate_and_sample(step: int) -> float:
        """Validation loss, the step's sample (rank 0, its own RNG: see sample.py), the log
        line, and with keep_checkpoints the step's checkpoint."""
        val_loss = evaluate(model, corpus.val, cfg.window, micro_batch, world)
        text = None
        if cfg.sample_tokens and world.is_root:
            text = training_sample(model, corpus.tokenizer, cfg, step)
        log.eval(step, val_loss, text)
        if cfg.keep_checkpoints:
            save_checkpoint(run, step, model, opt, batches, cfg, {"val_loss": val_loss}, world,
                            name=kept_checkpoint(step))
        return val_loss

    summary = {"start_step": start, "skipped_steps": 0}
    step, val_loss, t_start, tokens = start, float("nan"), time.perf_counter(), 0
    try:
        with _StopFlag() as stop:
            stopped = False  # agreed by every rank, so all take the same path below
            while step < cfg.steps and not (stopped := world.any(stop.requested)):
                if step % cfg.eval_interval == 0:
                    val_loss = evaluate_and_sample(step)
                lr = learning_rate(step, lr=cfg.lr, min_lr=cfg.min_lr, warmup=cfg.warmup,
                                   steps=cfg.steps, schedule=cfg.schedule)
                t0 = time.perf_counter()

                micro = (batches.next() for _ in range(cfg.grad_accum))
                world.step = step + 1
                loss, norm = train_step(model, opt, micro, lr, cfg.grad_clip, world)
                if not (math.isfinite(loss) and math.isfinite(norm)):
                    what = f"step {step + 1}: loss {loss}, gradient norm {norm}"
                    if cfg.on_nonfinite == "stop":
                        raise TrainingError(f"{what}: stopping; the last good checkpoint is "
                                            f"{run / CHECKPOINT}" if step > 0 else what)
                    log.note(f"{what}: step skipped")
                    summary["skipped_steps"] += 1
                    step += 1
                    continue

                step += 1
                per_step = cfg.batch_size * cfg.targets_per_window  # tokens trained on
                tokens += per_step
                # from the step, so a resumed run counts on: every step reads batch_size windows
                # (the global batch, over all ranks) of targets_per_window tokens each
                epoch = step * per_step / len(corpus.train)
                log.step(step, loss, lr, norm, per_step / (time.perf_counter() - t0), epoch)
                if step % cfg.checkpoint_interval == 0:
                    log.flush()
                    save_checkpoint(run, step, model, opt, batches, cfg, {}, world)

            if stopped:
                log.note(f"interrupted: saving a checkpoint at step {step}")
            else:
                val_loss = evaluate_and_sample(step)
            save_checkpoint(run, step, model, opt, batches, cfg, {"val_loss": val_loss}, world)
    finally:
        log.close()

    seconds = time.perf_counter() - t_start
    summary.update(step=step, val_loss=val_loss, val_perplexity=math.exp(val_loss),
                   seconds=seconds, tokens_per_s=tokens / seconds if seconds else 0.0,
                   interrupted=step < cfg.steps, run_dir=str(run), rank=world.rank)
    if step >= cfg.steps and world.is_root:
        from fasttrain.plot import plot_run

        summary["plot"] = plot_run(run)
    if world.is_root:
        summary["report"] = _write_report(run)
    return summary


def _write_report(run: Path) -> str | None:
    """report.html, also after an interruption (it shows the steps so far). The checkpoint and
    metrics are safe by now, so a failure here is reported, not raised."""
    from fasttrain.dynamics.report import REPORT, write_report

    try:
        return write_report(run)
    except Exception as e:  # noqa: BLE001 - the run itself succeeded; say why there is no page
        print(f"note: no {REPORT}: {type(e).__name__}: {e}", file=sys.stderr)
        return None


def resolve_config(overrides: dict, config_file: str | None, resume: bool) -> TrainConfig:
    """The run's configuration: the model's defaults (TrainConfig.defaults, the model named by
    the command line or else the file; or, on resume, the run's saved config.json), then the
    TOML file, then --key=value overrides."""
    from_file = {}
    if config_file:
        from fasttrain.config import load_toml

        from_file = load_toml(config_file)
    model = overrides.get("model", from_file.get("model", "mlp"))
    cfg = TrainConfig.defaults(model).override(from_file, f"--config {config_file}")
    if resume:
        out_dir = overrides.get("out_dir", cfg.out_dir)
        saved = Path(out_dir) / "config.json"
        if not saved.exists():
            raise ConfigError(f"--resume: {saved} does not exist (no run to resume there)")
        # the file on top of the saved run, as the command line; a key that would change the
        # model is refused by load_checkpoint (MODEL_KEYS), naming it
        cfg = TrainConfig.from_dict(json.loads(saved.read_text()), str(saved)).override(
            from_file, f"--config {config_file}")
    return cfg.override(overrides, "command line").validate()

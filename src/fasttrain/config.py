"""The training configuration: one dataclass of flat, typed, commented fields.

Overrides come from a TOML file (`--config run.toml`, flat keys) and then `--key=value`
arguments, in that order; an unknown key or a value of the wrong type is an error that names
the key. The resolved configuration is saved as config.json in the run directory.
"""
import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(ValueError):
    """A configuration key or value that cannot be used."""


def _f(default, help):
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    # data
    data: str = _f("builtin", "corpus: 'builtin' (the Python language reference, 465 KB), 'stdlib' (the standard library's source, 10 MB, split by file), a file, or a folder")
    tokenizer: str = _f("bytes", "'bytes' (V = 256) or 'bpe' (trained on the corpus, needs fasttrain[bpe]); with init_from 'hf', the checkpoint's")
    bpe_vocab_size: int = _f(1024, "vocabulary size when tokenizer = 'bpe'")
    val_fraction: float = _f(0.1, "the share held out for validation: the corpus's last tokens (stdlib: whole files)")
    # model: 'mlp', a Bengio-style MLP language model, or 'gpt', the GPT-2 architecture
    model: str = _f("mlp", "'mlp' (reads `context` tokens, predicts the next) or 'gpt' (GPT-2: predicts each of `block_size` tokens)")
    context: int = _f(8, "mlp: tokens the model reads to predict the next one")
    n_embd: int = _f(64, "mlp: embedding width per context token; gpt: the model's width C")
    hidden: int = _f(512, "mlp: width of the hidden layer")
    activation: str = _f("tanh", "mlp: hidden activation, 'tanh' (Bengio et al. 2003) or 'gelu'")
    n_layer: int = _f(2, "gpt: transformer blocks")
    n_head: int = _f(4, "gpt: attention heads (n_embd must be a multiple)")
    block_size: int = _f(64, "gpt: the context, tokens per training sequence")
    layer_norm_epsilon: float = _f(1e-5, "gpt: LayerNorm's epsilon (with init_from, the checkpoint's)")
    init_from: str = _f("", "gpt: fine-tune a Hugging Face GPT-2 folder (config.json, model.safetensors, tokenizer.json): its shape, weights and tokenizer")
    fused_head: bool = _f(True, "head + loss in one linear_cross_entropy call (False: logits stored)")
    # optimisation
    batch_size: int = _f(1024, "windows per optimizer step (split over grad_accum micro-batches)")
    grad_accum: int = _f(1, "micro-batches per step; gradients are summed, then averaged")
    steps: int = _f(6000, "optimizer steps")
    lr: float = _f(3e-3, "peak learning rate")
    min_lr: float = _f(3e-4, "learning rate at the end of the decay")
    warmup: int = _f(100, "steps of linear warmup from 0 to lr")
    schedule: str = _f("cosine", "after warmup: 'cosine' to min_lr, 'linear' to min_lr, or 'constant'")
    optimizer: str = _f("adamw", "'adamw' or 'sgd' (momentum 0.9)")
    beta1: float = _f(0.9, "AdamW beta1 (SGD: the momentum)")
    beta2: float = _f(0.99, "AdamW beta2")
    weight_decay: float = _f(0.1, "decoupled weight decay, on weight matrices only (not biases)")
    grad_clip: float = _f(1.0, "clip the global gradient norm to this; 0 turns clipping off")
    on_nonfinite: str = _f("stop", "a NaN/Inf loss or gradient norm: 'stop' the run or 'skip' the step")
    # evaluation, logging, checkpoints
    eval_interval: int = _f(500, "evaluate on the whole validation split every this many steps")
    log_interval: int = _f(50, "print a progress line every this many steps (when not a terminal)")
    checkpoint_interval: int = _f(1000, "write a checkpoint every this many steps (and at the end)")
    keep_checkpoints: bool = _f(False, "also keep each evaluation's checkpoint as ckpt-STEP.safetensors (sample --step)")
    # a sample at every evaluation: its own RNG, seeded by (seed, step), so training is unchanged
    sample_tokens: int = _f(200, "tokens sampled at each evaluation (metrics, report.html); 0 turns samples off")
    sample_prompt: str = _f("The ", "the text each evaluation's sample continues")
    sample_temperature: float = _f(0.8, "temperature of the evaluation samples (0: argmax)")
    # runtime
    seed: int = _f(1337, "seeds the initial weights and the batch order")
    threads: int = _f(0, "kernel threads; 0 means OMP_NUM_THREADS, else the cores (shared by MPI ranks)")
    backend: str = _f("c", "kernel backend: 'c', 'numba' or 'numpy'")
    out_dir: str = _f("runs/mlp", "run directory: config, data, metrics, checkpoints, plots")

    @classmethod
    def defaults(cls, model: str = "mlp") -> "TrainConfig":
        """The defaults of `model`: the fields' own, with MODEL_DEFAULTS[model] on top (what
        `fasttrain train --model=gpt` starts from)."""
        if model not in MODEL_DEFAULTS:
            raise ConfigError(f"model must be one of {', '.join(MODEL_DEFAULTS)}; got {model!r}")
        return cls(model=model, **MODEL_DEFAULTS[model])

    def validate(self) -> "TrainConfig":
        """Check values that a type alone cannot; raise ConfigError naming the key."""
        choices = {"model": ("mlp", "gpt"), "tokenizer": ("bytes", "bpe", "hf"), "activation": ("tanh", "gelu"),
                   "schedule": ("cosine", "linear", "constant"), "optimizer": ("adamw", "sgd"),
                   "on_nonfinite": ("stop", "skip"), "backend": ("c", "numba", "numpy")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{key} must be one of {', '.join(allowed)}; got {getattr(self, key)!r}")
        positive = ("context", "n_embd", "hidden", "n_layer", "n_head", "block_size",
                    "batch_size", "grad_accum", "steps", "eval_interval", "log_interval",
                    "checkpoint_interval", "bpe_vocab_size")
        for key in positive:
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1; got {getattr(self, key)}")
        for key in ("warmup", "threads", "weight_decay", "grad_clip", "lr", "min_lr",
                    "sample_tokens", "sample_temperature"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must be >= 0; got {getattr(self, key)}")
        if self.tokenizer == "hf" and not self.init_from:
            raise ConfigError("tokenizer 'hf' is an init_from checkpoint's own: set init_from")
        if self.layer_norm_epsilon <= 0:
            raise ConfigError(f"layer_norm_epsilon must be > 0; got {self.layer_norm_epsilon}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in (0, 1); got {self.val_fraction}")
        if self.model == "gpt" and self.n_embd % self.n_head:
            raise ConfigError(f"n_embd ({self.n_embd}) must be a multiple of n_head "
                              f"({self.n_head}): each head gets n_embd / n_head channels")
        if self.batch_size % self.grad_accum:
            raise ConfigError(f"batch_size ({self.batch_size}) must be a multiple of "
                              f"grad_accum ({self.grad_accum})")
        for key in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ConfigError(f"{key} must be in [0, 1); got {getattr(self, key)}")
        return self

    @property
    def model_summary(self) -> str:
        """The model's shape in a few words, for titles and log lines."""
        if self.model == "gpt":
            return (f"GPT {self.n_layer} layers x {self.n_embd}, {self.n_head} heads, "
                    f"block {self.block_size}")
        return f"MLP context {self.context}, n_embd {self.n_embd}, hidden {self.hidden}"

    @property
    def window(self) -> int:
        """Tokens in one training window: the MLP's context, the GPT's block_size."""
        return self.block_size if self.model == "gpt" else self.context

    @property
    def targets_per_window(self) -> int:
        """Tokens predicted (and trained on) per window: the GPT predicts the one after each
        of its block_size tokens, the MLP only the one after its context."""
        return self.block_size if self.model == "gpt" else 1

    # ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> "TrainConfig":
        return cls().override(values, source)

    def override(self, values: dict, source: str) -> "TrainConfig":
        """A copy with `values` applied; each value checked against the field's type."""
        types = {f.name: f.type for f in dataclasses.fields(self)}
        changes = {}
        for key, value in values.items():
            if key not in types:
                raise ConfigError(f"{source}: unknown key {key!r}; known keys: {', '.join(types)}")
            changes[key] = _coerce(key, value, types[key], source)
        return dataclasses.replace(self, **changes)


# The keys both models read whose good values differ: the fields' defaults are the MLP's (the
# default model); the GPT's make the README's main job, `fasttrain train --model=gpt`, and not a
# GPT at the MLP's width and batch of 1024 windows (131k tokens a step) in the MLP's run
# directory. A key set in a --config file or on the command line wins over these, as over every
# default. Chosen on 2026-11-30 on a quiet 2-core AMD EPYC as the GPT that learns the most in
# the time the default MLP trains (of 2-4 layers of width 128-256, batches of 16-32 sequences,
# learning rates 2e-3 to 6e-3): val loss 1.2529 nats per byte in 81 s, the MLP's 1.2783 in 82 s.
MODEL_DEFAULTS = {
    "mlp": {},
    "gpt": dict(n_embd=128, batch_size=32, steps=1480, lr=4e-3, min_lr=1e-4, eval_interval=370,
                out_dir="runs/gpt"),
}


def _coerce(key, value, typ, source):
    """value as typ: strings from the command line are parsed, other values must already fit."""
    if isinstance(value, str) and typ is not str:
        try:
            if typ is bool:
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(value)
                return value.lower() in ("true", "1")
            return typ(value)
        except ValueError:
            raise ConfigError(f"{source}: {key} must be {typ.__name__}; got {value!r}") from None
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise ConfigError(f"{source}: {key} must be {typ.__name__}; got {value!r} "
                          f"({type(value).__name__})")
    return value


def load_toml(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"--config {path}: not valid TOML: {e}") from None


def parse_overrides(args: list[str]) -> dict:
    """['--lr=0.01', '--steps', '100'] -> {'lr': '0.01', 'steps': '100'} (values parsed later).
    A boolean key given alone (--keep_checkpoints) means true."""
    flags = {f.name for f in dataclasses.fields(TrainConfig) if f.type is bool}
    values, i = {}, 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or arg == "--":
            raise ConfigError(f"expected --key=value, got {arg!r}")
        key, eq, value = arg[2:].partition("=")
        if not eq and key.replace("-", "_") in flags and (i + 1 >= len(args)
                                                          or args[i + 1].startswith("--")):
            value = "true"
        elif not eq:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise ConfigError(f"--{key} needs a value (--{key}=VALUE)")
            value = args[i + 1]
            i += 1
        values[key.replace("-", "_")] = value
        i += 1
    return values


def describe() -> str:
    """Every key with its default (and the GPT's where it differs) and meaning, for
    `fasttrain train --keys`."""
    lines = []
    for f in dataclasses.fields(TrainConfig):
        line = f"  --{f.name}={f.default!s:<10} {f.metadata['help']}"
        if f.name in MODEL_DEFAULTS["gpt"]:
            line += f" [model gpt: {MODEL_DEFAULTS['gpt'][f.name]}]"
        lines.append(line)
    return "\n".join(lines)

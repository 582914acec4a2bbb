"""GPT-2 checkpoints in the Hugging Face layout, in and out.

A Hugging Face GPT-2 folder (what `save_pretrained` writes, or a snapshot in the hub's cache):

    config.json          n_layer, n_head, n_embd, n_positions, vocab_size, layer_norm_epsilon,
                         activation_function, ...
    model.safetensors    the tensors (or model.safetensors.index.json and its shards), named
                         "transformer.wte.weight" ... (GPT2LMHeadModel) or "wte.weight" ...
                         (GPT2Model, the released GPT-2), lm_head.weight tied to wte
    tokenizer.json       the `tokenizers` package's byte-level BPE

fasttrain's GPT keeps GPT-2's names without the "transformer." prefix. Two differences:
- GPT-2's four projections are Conv1D modules, whose weight is (in, out): the transpose of
  torch.nn.Linear's (out, in), which fasttrain's arena holds. So c_attn.weight is (C, 3C) in
  the folder and (3C, C) in the arena, and likewise c_proj (C, C), c_fc (C, 4C), mlp.c_proj
  (4C, C).
- wpe holds n_positions rows in the folder, block_size <= n_positions in the arena (its first
  rows); an export writes n_positions = block_size.

Reading uses json and safetensors only (no torch, no transformers, no network). Everything is
checked before anything is written: the architecture (each field fasttrain's GPT cannot run is
named), every tensor's name and shape from the safetensors headers, the tokenizer's size.
Writing (export) builds the folder under a temporary name beside it and renames it into place,
so an interrupted export leaves no half-written folder.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fasttrain.checkpoint import CheckpointError, write_atomic

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"  # a sharded checkpoint's tensor -> file map
TOKENIZER = "tokenizer.json"
# the activations that are GELU's tanh form, which fasttrain's kernels compute (all three are
# 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) in transformers' ACT2FN)
TANH_GELU = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")
# Conv1D weights: stored (in, out), the arena's transpose
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# tensors some GPT-2 files carry that are not parameters: the causal-mask buffers
BUFFER = re.compile(r"h\.\d+\.attn\.(masked_)?bias")
PREFIX = "transformer."


class HFError(CheckpointError):
    """A Hugging Face folder fasttrain cannot read (or an export it cannot write)."""


@dataclass
class HFCheckpoint:
    """A checked GPT-2 folder: its shape, and where each arena parameter's tensor is."""

    folder: Path
    n_layer: int
    n_head: int
    n_embd: int
    n_positions: int
    vocab_size: int
    eps: float                        # layer_norm_epsilon
    tensors: dict[str, tuple[Path, str]]  # arena name -> (safetensors file, key in it)
    lm_head: tuple[Path, str] | None  # a stored head, which must equal wte (tied)

    @property
    def tokenizer_path(self) -> Path:
        path = self.folder / TOKENIZER
        if not path.is_file():
            raise HFError(f"{path}: no such file (the checkpoint's tokenizer, which fasttrain "
                          f"reads with the tokenizers package)")
        return path

    def tokenizer(self):
        """The folder's tokenizer (a fasttrain BPETokenizer), checked against vocab_size."""
        from fasttrain.data import BPETokenizer

        try:
            from tokenizers import Tokenizer
        except ImportError as e:
            raise ImportError('a Hugging Face tokenizer needs the tokenizers package: '
                              'pip install "fasttrain[bpe]"') from e
        path = self.tokenizer_path
        try:
            tok = BPETokenizer(Tokenizer.from_file(str(path)))
        except Exception as e:  # noqa: BLE001 - tokenizers raises its own Exception type
            raise HFError(f"{path}: not a readable tokenizer: {e}") from None
        if tok.vocab_size != self.vocab_size:
            raise HFError(f"{path}: {tok.vocab_size} tokens, but {self.folder / CONFIG} has "
                          f"vocab_size {self.vocab_size}; fasttrain needs them equal")
        return tok

    def model(self, block_size: int | None = None, backend: str | None = None):
        """fasttrain's GPT with these weights, reading block_size (default n_positions)."""
        from fasttrain.models import GPT

        model = GPT(vocab_size=self.vocab_size, block_size=block_size or self.n_positions,
                    n_layer=self.n_layer, n_head=self.n_head, n_embd=self.n_embd, eps=self.eps,
                    backend=backend)
        self.load_into(model)
        return model

    def load_into(self, model) -> None:
        """Copy the weights into a GPT of this shape (block_size <= n_positions)."""
        from safetensors import safe_open

        want = (self.vocab_size, self.n_layer, self.n_head, self.n_embd, self.eps)
        have = (model.V, model.L, model.n_head, model.C, model.eps)
        if want != have or model.block_size > self.n_positions:
            raise HFError(f"{self.folder}: a GPT of (vocab_size, n_layer, n_head, n_embd, eps) "
                          f"= {want}, block_size <= {self.n_positions}; the model is {have}, "
                          f"block_size {model.block_size}")
        a = model.arena
        by_file: dict[Path, list[tuple[str, str]]] = {}
        for name, (path, key) in self.tensors.items():
            by_file.setdefault(path, []).append((name, key))
        for path, names in by_file.items():
            with safe_open(str(path), framework="numpy") as f:
                for name, key in names:
                    t = f.get_tensor(key)
                    if name.endswith(CONV1D):
                        t = t.T
                    elif name == "wpe.weight":
                        t = t[:model.block_size]
                    a[name][...] = t
        if self.lm_head is not None:
            path, key = self.lm_head
            with safe_open(str(path), framework="numpy") as f:
                head = f.get_tensor(key)
            if not np.array_equal(head.astype(a.dtype), a["wte.weight"]):
                raise HFError(f"{path}: {key} differs from wte.weight: an untied head, which "
                              f"fasttrain's GPT (head = wte) does not have")


def hf_shapes(n_layer: int, n_embd: int, vocab_size: int, n_positions: int) -> dict:
    """{arena name: the tensor's shape in a Hugging Face file} of a GPT-2."""
    C = n_embd
    shapes = {"wte.weight": (vocab_size, C), "wpe.weight": (n_positions, C)}
    for l in range(n_layer):
        p = f"h.{l}."
        shapes.update({p + "ln_1.weight": (C,), p + "ln_1.bias": (C,),
                       p + "attn.c_attn.weight": (C, 3 * C), p + "attn.c_attn.bias": (3 * C,),
                       p + "attn.c_proj.weight": (C, C), p + "attn.c_proj.bias": (C,),
                       p + "ln_2.weight": (C,), p + "ln_2.bias": (C,),
                       p + "mlp.c_fc.weight": (C, 4 * C), p + "mlp.c_fc.bias": (4 * C,),
                       p + "mlp.c_proj.weight": (4 * C, C), p + "mlp.c_proj.bias": (C,)})
    shapes.update({"ln_f.weight": (C,), "ln_f.bias": (C,)})
    return shapes


# ----------------------------------------------------------------------------------------------
# in

def read_config(folder: Path) -> dict:
    path = folder / CONFIG
    if not path.is_file():
        raise HFError(f"{path}: no such file (a Hugging Face GPT-2 folder holds config.json and "
                      f"model.safetensors)")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HFError(f"{path}: not JSON: {e}") from None
    if not isinstance(config, dict):
        raise HFError(f"{path}: not a JSON object")
    return config


def check_architecture(config: dict, path: Path) -> dict:
    """The shape of the GPT-2 that config.json describes, if fasttrain's GPT runs it; else an
    HFError naming the field that is not."""
    def need(ok: bool, key: str, what: str):
        if not ok:
            raise HFError(f"{path}: {key} is {config.get(key)!r}; {what}")

    need(config.get("model_type", "gpt2") == "gpt2", "model_type",
         "fasttrain runs GPT-2 ('gpt2')")
    shape = {}
    for key in ("n_layer", "n_head", "n_embd", "n_positions", "vocab_size"):
        v = config.get(key, config.get("n_ctx")) if key == "n_positions" else config.get(key)
        need(isinstance(v, int) and not isinstance(v, bool) and v >= 1, key,
             "an integer >= 1 is needed")
        shape[key] = v
    need(shape["n_embd"] % shape["n_head"] == 0, "n_embd", f"not a multiple of n_head "
         f"({shape['n_head']})")
    eps = config.get("layer_norm_epsilon", 1e-5)
    need(isinstance(eps, (int, float)) and not isinstance(eps, bool) and eps > 0,
         "layer_norm_epsilon", "a number > 0 is needed")
    shape["eps"] = float(eps)
    need(config.get("activation_function", "gelu_new") in TANH_GELU, "activation_function",
         f"fasttrain's GPT computes GELU in its tanh form ({', '.join(TANH_GELU)})")
    need(config.get("n_inner") in (None, 4 * shape["n_embd"]), "n_inner",
         f"fasttrain's GPT has an MLP of 4 * n_embd = {4 * shape['n_embd']}")
    need(config.get("scale_attn_weights", True) is True, "scale_attn_weights",
         "fasttrain's attention scales by 1/sqrt(head size)")
    need(not config.get("scale_attn_by_inverse_layer_idx", False),
         "scale_attn_by_inverse_layer_idx", "fasttrain's attention scales by 1/sqrt(head size) "
         "alone")
    need(not config.get("add_cross_attention", False), "add_cross_attention",
         "fasttrain's GPT is a decoder only")
    need(config.get("tie_word_embeddings", True) is True, "tie_word_embeddings",
         "fasttrain's head is wte (tied)")
    return shape


def _tensor_files(folder: Path) -> list[Path]:
    index = folder / INDEX
    if (folder / WEIGHTS).is_file():
        return [folder / WEIGHTS]
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
            files = sorted({folder / f for f in weight_map.values()})
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
            raise HFError(f"{index}: not a safetensors index (no weight_map): {e}") from None
        for f in files:
            if not f.is_file():
                raise HFError(f"{f}: no such file (named by {index})")
        return files
    other = [p.name for p in folder.glob("pytorch_model*.bin")]
    hint = (f" ({other[0]} is a pickle, which fasttrain does not read: save the model with "
            f"safe_serialization=True)" if other else "")
    raise HFError(f"{folder / WEIGHTS}: no such file{hint}")


def open_folder(folder) -> HFCheckpoint:
    """Read and check a GPT-2 folder's config.json and safetensors headers (the tensors' data
    is read by load_into)."""
    from safetensors import SafetensorError, safe_open

    folder = Path(folder)
    if not folder.is_dir():
        raise HFError(f"{folder}: no such folder")
    config_path = folder / CONFIG
    shape = check_architecture(read_config(folder), config_path)
    want = hf_shapes(shape["n_layer"], shape["n_embd"], shape["vocab_size"],
                     shape["n_positions"])
    found: dict[str, tuple[Path, str, tuple]] = {}
    lm_head = None
    for path in _tensor_files(folder):
        try:
            with safe_open(str(path), framework="numpy") as f:
                header = {key: (tuple(f.get_slice(key).get_shape()), f.get_slice(key).get_dtype())
                          for key in f.keys()}
        except (SafetensorError, OSError, ValueError) as e:
            raise HFError(f"{path}: not a readable safetensors file (corrupt or truncated): "
                          f"{e}") from None
        for key, (shp, dtype) in header.items():
            name = key[len(PREFIX):] if key.startswith(PREFIX) else key
            if BUFFER.fullmatch(name):
                continue
            if dtype not in ("F32", "F16", "F64"):
                raise HFError(f"{path}: {key} is {dtype}; fasttrain reads float32, float16 or "
                              f"float64 tensors")
            if name == "lm_head.weight":
                lm_head = (path, key)
                name_shape = (shape["vocab_size"], shape["n_embd"])
            elif name not in want:
                raise HFError(f"{path}: {key} is not a tensor of the GPT-2 {config_path} "
                              f"describes")
            else:
                if name in found:
                    raise HFError(f"{path}: {name} is stored twice ({found[name][1]}, {key})")
                found[name] = (path, key, shp)
                name_shape = want[name]
            if shp != name_shape:
                raise HFError(f"{path}: {key} has shape {shp}; the GPT-2 of {config_path} needs "
                              f"{name_shape}")
    missing = [name for name in want if name not in found]
    if missing:
        raise HFError(f"{folder}: no tensor {missing[0]} (nor {PREFIX}{missing[0]})"
                      + (f", and {len(missing) - 1} more missing" if len(missing) > 1 else ""))
    return HFCheckpoint(folder, shape["n_layer"], shape["n_head"], shape["n_embd"],
                        shape["n_positions"], shape["vocab_size"], shape["eps"],
                        {name: (p, k) for name, (p, k, _) in found.items()}, lm_head)


def configure(cfg, ckpt: HFCheckpoint):
    """The TrainConfig of a fine-tuning run from ckpt: its shape, epsilon and tokenizer ("hf"),
    the block_size asked for (at most n_positions)."""
    import dataclasses

    from fasttrain.config import ConfigError

    if cfg.model != "gpt":
        raise ConfigError(f"init_from ({ckpt.folder}) is a GPT-2: it needs model = 'gpt', "
                          f"got {cfg.model!r}")
    if cfg.block_size > ckpt.n_positions:
        raise ConfigError(f"block_size ({cfg.block_size}) is more than the n_positions "
                          f"({ckpt.n_positions}) of {ckpt.folder / CONFIG}")
    ckpt.tokenizer()  # there, readable, and of vocab_size tokens
    return dataclasses.replace(cfg, n_layer=ckpt.n_layer, n_head=ckpt.n_head,
                               n_embd=ckpt.n_embd, layer_norm_epsilon=ckpt.eps, tokenizer="hf")


def prepare_run(ckpt: HFCheckpoint, run: Path) -> None:
    """Copy the checkpoint's tokenizer.json into the run directory (atomically), where the
    corpus is tokenised with it and `sample`/`eval` find it. A run directory whose corpus was
    already tokenised (data.json) must have been tokenised with this same tokenizer."""
    from tokenizers import Tokenizer

    source = ckpt.tokenizer_path
    here = run / TOKENIZER
    if (run / "data.json").exists():
        meta = json.loads((run / "data.json").read_text())
        same = meta.get("tokenizer") == "hf" and here.is_file() and (
            Tokenizer.from_file(str(here)).to_str() == Tokenizer.from_file(str(source)).to_str())
        if not same:
            raise HFError(f"{run} holds a corpus tokenised with another tokenizer (data.json): "
                          f"fine-tune from {ckpt.folder} in a new out_dir")
        return
    write_atomic(here, source.read_bytes())


def evaluate_folder(folder, source: str, batch_size: int = 1, backend: str | None = None) -> dict:
    """Loss and perplexity of a GPT-2 folder's model as it is on a text (its own tokenizer),
    in windows of n_positions tokens (fewer for a shorter text)."""
    from fasttrain.data import DataError, load_text
    from fasttrain.sample import evaluate

    ckpt = open_folder(folder)
    tok = ckpt.tokenizer()
    tokens = tok.encode(load_text(source))
    if len(tokens) < 2:
        raise DataError(f"{source}: {len(tokens)} tokens; a loss needs at least 2")
    window = min(ckpt.n_positions, len(tokens) - 1)
    model = ckpt.model(window, backend)
    loss = evaluate(model, np.asarray(tokens), window, batch_size)
    return {"loss": loss, "perplexity": float(np.exp(loss)), "tokens": int(len(tokens)),
            "source": source, "window": window}


# ----------------------------------------------------------------------------------------------
# out

def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map of the 256 bytes to printable characters (its byte-level alphabet)."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
          + list(range(ord("®"), ord("ÿ") + 1)))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def byte_tokenizer():
    """A `tokenizers` Tokenizer equal to fasttrain's ByteTokenizer: token i is byte i (a
    byte-level BPE with GPT-2's alphabet and no merges)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {ch: b for b, ch in _bytes_to_unicode().items()}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok


def hf_config(model) -> dict:
    """config.json of a GPT2LMHeadModel equal to fasttrain's GPT `model`."""
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
            "vocab_size": model.V, "n_positions": model.block_size, "n_embd": model.C,
            "n_layer": model.L, "n_head": model.n_head, "n_inner": None,
            "activation_function": "gelu_new", "layer_norm_epsilon": model.eps,
            # fasttrain trains without dropout: the model as trained has none
            "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
            "initializer_range": 0.02, "scale_attn_weights": True, "use_cache": True,
            "tie_word_embeddings": True}


def hf_tensors(model) -> dict[str, np.ndarray]:
    """The arena as GPT2LMHeadModel's tensors: "transformer."-prefixed, Conv1D weights
    transposed to (in, out); no lm_head (tied to wte)."""
    a = model.arena
    return {PREFIX + name: np.ascontiguousarray(a[name].T if name.endswith(CONV1D) else a[name])
            for name in a.names}


def write_hf(model, tokenizer, out) -> Path:
    """Write a GPT and its tokenizer as a Hugging Face GPT-2 folder `out` (new, or empty):
    config.json, model.safetensors, tokenizer.json (the run's, or for bytes one that maps the
    256 bytes), tokenizer_config.json. Built as a temporary folder beside `out`, then renamed."""
    from safetensors.numpy import save_file

    from fasttrain.data import ByteTokenizer
    from fasttrain.models import GPT

    out = Path(out)
    if not isinstance(model, GPT):
        raise HFError(f"only a GPT exports to GPT-2's layout, not a {type(model).__name__}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise HFError(f"{out}: already exists and is not an empty folder; export writes a new one")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        (tmp / CONFIG).write_text(json.dumps(hf_config(model), indent=2) + "\n")
        save_file(hf_tensors(model), str(tmp / WEIGHTS), metadata={"format": "pt"})
        if isinstance(tokenizer, ByteTokenizer):
            byte_tokenizer().save(str(tmp / TOKENIZER))
        else:
            tokenizer.save(tmp)
        (tmp / "tokenizer_config.json").write_text(json.dumps(
            {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": model.block_size,
             "clean_up_tokenization_spaces": False}, indent=2) + "\n")
        for p in tmp.iterdir():  # the files on disk before the folder takes its name
            with open(p, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    dir_fd = os.open(out.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return out


def export_run(run_dir, out) -> Path:
    """`fasttrain export --run DIR --hf OUT`: a GPT run's last checkpoint as a GPT-2 folder."""
    from fasttrain.sample import load_run

    _, model, tokenizer = load_run(run_dir)
    return write_hf(model, tokenizer, out)

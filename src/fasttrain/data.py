"""Text in, token arrays out: corpora, tokenizers, the train/validation split, batches.

Tokens are bytes (V = 256) by default: no training, no files, nothing unknown. A byte-level BPE
trained locally with the `tokenizers` package is the option (pip install "fasttrain[bpe]").
A corpus is tokenised once into a flat uint8/uint16 array, written next to the run as
train.bin / val.bin and memory-mapped from there, so a corpus larger than memory still works.

Batches for a model that reads `context` tokens and predicts the next one: windows start at
positions drawn uniformly by a seeded numpy Generator, whose state is saved in checkpoints:
that state *is* the data position, so a resumed run draws exactly the batches it would have.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

BUILTIN = "builtin"  # the corpus name of the Python language reference that ships with CPython


class DataError(ValueError):
    """A corpus that cannot be used: missing, empty, or too short for the context."""


# ----------------------------------------------------------------------------------------------
# corpora

def builtin_corpus() -> str:
    """The Python language reference (pydoc_data.topics, ~465 KB of English in CPython 3.11):
    every CPython carries it, so training needs no download. Topics joined in sorted order."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


def load_text(source: str) -> str:
    """The built-in corpus, a text file, or every file under a folder (sorted, joined)."""
    if source == BUILTIN:
        return builtin_corpus()
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        if not files:
            raise DataError(f"--data {source}: the folder holds no files")
        text = "\n\n".join(p.read_text(encoding="utf-8", errors="replace") for p in files)
    elif path.is_file():
        text = path.read_text(encoding="utf-8", errors="replace")
    else:
        raise DataError(f"--data {source}: no such file or folder")
    if not text:
        raise DataError(f"--data {source}: the corpus is empty")
    return text


# ----------------------------------------------------------------------------------------------
# tokenizers: encode(str) -> int array, decode(int sequence) -> str, vocab_size, save(dir)

class ByteTokenizer:
    """UTF-8 bytes as tokens: V = 256, every string encodable, decoding lossless for whole text."""

    name = "bytes"
    vocab_size = 256

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()

    def decode(self, tokens) -> str:
        return bytes(np.asarray(tokens, dtype=np.uint8).tolist()).decode("utf-8", errors="replace")

    def save(self, run_dir: Path) -> None:
        pass  # nothing to save: bytes are bytes


class BPETokenizer:
    """Byte-level BPE from the `tokenizers` package, trained on the corpus, saved in the run."""

    name = "bpe"
    FILE = "tokenizer.json"

    def __init__(self, tokenizer):
        self._tok = tokenizer
        self.vocab_size = tokenizer.get_vocab_size()

    @classmethod
    def train(cls, text: str, vocab_size: int) -> "BPETokenizer":
        try:
            from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
        except ImportError as e:
            raise ImportError('tokenizer="bpe" needs the tokenizers package: '
                              'pip install "fasttrain[bpe]"') from e
        if not 257 <= vocab_size <= 65535:
            raise ValueError(f"bpe_vocab_size must be in [257, 65535], got {vocab_size}")
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(text.splitlines(keepends=True), trainer=trainer)
        return cls(tok)

    @classmethod
    def load(cls, run_dir: Path) -> "BPETokenizer":
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(str(Path(run_dir) / cls.FILE)))

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self._tok.encode(text).ids, dtype=np.uint16)

    def decode(self, tokens) -> str:
        return self._tok.decode([int(t) for t in tokens])

    def save(self, run_dir: Path) -> None:
        self._tok.save(str(Path(run_dir) / self.FILE))


def make_tokenizer(kind: str, text: str, vocab_size: int):
    if kind == "bytes":
        return ByteTokenizer()
    if kind == "bpe":
        return BPETokenizer.train(text, vocab_size)
    raise ValueError(f"tokenizer must be 'bytes' or 'bpe', got {kind!r}")


def load_tokenizer(kind: str, run_dir: Path):
    return ByteTokenizer() if kind == "bytes" else BPETokenizer.load(run_dir)


# ----------------------------------------------------------------------------------------------
# the token arrays of a run

class Corpus:
    """train and val token arrays (memory-mapped from the run directory) and their tokenizer."""

    def __init__(self, train: np.ndarray, val: np.ndarray, tokenizer):
        self.train, self.val, self.tokenizer = train, val, tokenizer

    @classmethod
    def prepare(cls, run_dir: Path, source: str, tokenizer: str, vocab_size: int,
                val_fraction: float, context: int) -> "Corpus":
        """Tokenise `source` once into run_dir/{train,val}.bin; later calls (a resume) reuse
        the files, so the split cannot drift if the source changes."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        meta_path = run_dir / "data.json"
        if not meta_path.exists():
            text = load_text(source)
            tok = make_tokenizer(tokenizer, text, vocab_size)
            tokens = tok.encode(text)
            n_val = int(len(tokens) * val_fraction)
            n_train = len(tokens) - n_val
            for name, part in (("train", tokens[:n_train]), ("val", tokens[n_train:])):
                if len(part) < context + 1:
                    raise DataError(
                        f"--data {source}: the {name} split has {len(part)} tokens, fewer than "
                        f"context + 1 = {context + 1}; use a longer corpus or a shorter context")
                part.tofile(run_dir / f"{name}.bin")
            tok.save(run_dir)
            meta = {"source": source, "tokenizer": tokenizer, "vocab_size": tok.vocab_size,
                    "dtype": tokens.dtype.name, "train_tokens": int(n_train),
                    "val_tokens": int(n_val)}
            meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        return cls.open(run_dir)

    @classmethod
    def open(cls, run_dir: Path) -> "Corpus":
        run_dir = Path(run_dir)
        meta = json.loads((run_dir / "data.json").read_text())
        dtype = np.dtype(meta["dtype"])
        train = np.memmap(run_dir / "train.bin", dtype=dtype, mode="r")
        val = np.memmap(run_dir / "val.bin", dtype=dtype, mode="r")
        if len(train) != meta["train_tokens"] or len(val) != meta["val_tokens"]:
            raise DataError(f"{run_dir}: train.bin/val.bin do not match data.json (truncated?)")
        return cls(train, val, load_tokenizer(meta["tokenizer"], run_dir))


IGNORE_INDEX = -100  # a target that counts for nothing: the evaluation's overlap (all_windows)


def windows(tokens: np.ndarray, starts: np.ndarray, context: int,
            x_out: np.ndarray, y_out: np.ndarray) -> None:
    """x_out (B, context) = tokens[s : s + context] for each start s, and the targets:
    y_out (B,) = tokens[s + context], the next token (the MLP), or
    y_out (B, context) = tokens[s + 1 : s + context + 1], the next token of every position (the
    GPT), chosen by y_out's shape."""
    x_out[...] = tokens[starts[:, None] + np.arange(context)]            # (B, context)
    if y_out.ndim == 2:
        y_out[...] = tokens[starts[:, None] + np.arange(1, context + 1)]  # (B, context)
    else:
        y_out[...] = tokens[starts + context]                            # (B,)


class Batches:
    """Training batches: `context` tokens in, the next token out (sequence=True: the next token
    of each of the context positions), from seeded random starts.

    shard=(rank, size): every rank draws the same `batch_size` starts (the generator advances
    identically everywhere) and keeps the rank-th of `size` equal slices, so the ranks' shares
    are disjoint and together exactly the batch that one process draws (fasttrain.distributed).
    """

    def __init__(self, tokens: np.ndarray, context: int, batch_size: int, seed: int,
                 shard: tuple[int, int] = (0, 1), sequence: bool = False):
        rank, size = shard
        if batch_size % size:
            raise ValueError(f"a batch of {batch_size} windows does not split evenly over {size} "
                             f"ranks: make batch_size / grad_accum a multiple of {size}")
        self.tokens, self.context, self.batch_size = tokens, context, batch_size
        self.rng = np.random.default_rng(seed)
        self.share = slice(rank * batch_size // size, (rank + 1) * batch_size // size)
        B = batch_size // size
        self.x = np.empty((B, context), dtype=np.int64)                         # (B, context)
        self.y = np.empty((B, context) if sequence else B, dtype=np.int64)  # (B, context) or (B,)

    def next(self) -> tuple[np.ndarray, np.ndarray]:
        """The next batch (this rank's share of it), written into buffers owned by this object
        (valid until next())."""
        starts = self.rng.integers(0, len(self.tokens) - self.context, size=self.batch_size)
        windows(self.tokens, starts[self.share], self.context, self.x, self.y)
        return self.x, self.y

    # the RNG state is the data position: saved in checkpoints, restored on resume
    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


def all_windows(tokens: np.ndarray, context: int, batch_size: int, sequence: bool = False):
    """Every target of a split once, in order, in batches of windows: for an exact validation
    loss. The MLP's windows start at every position (each predicts one token). With sequence=True
    (the GPT) they start every `context` tokens and each predicts its `context` next tokens; the
    last window ends at the split's end, and its targets that an earlier window already
    predicted are IGNORE_INDEX."""
    n = len(tokens) - context
    if not sequence:
        for lo in range(0, n, batch_size):
            starts = np.arange(lo, min(lo + batch_size, n))
            x = np.empty((len(starts), context), dtype=np.int64)
            y = np.empty(len(starts), dtype=np.int64)
            windows(tokens, starts, context, x, y)
            yield x, y
        return
    starts = np.arange(0, n, context)                # (W,) windows covering targets 1 .. n
    covered = starts[-1] + context                   # targets up to this position are predicted
    tail = None
    if covered < len(tokens) - 1:                    # one more window, ending at the last token
        tail = len(tokens) - 1 - context
        starts = np.append(starts, tail)
    for lo in range(0, len(starts), batch_size):
        s = starts[lo:lo + batch_size]
        x = np.empty((len(s), context), dtype=np.int64)
        y = np.empty((len(s), context), dtype=np.int64)
        windows(tokens, s, context, x, y)
        if tail is not None and lo + len(s) == len(starts):
            y[-1, :covered - tail] = IGNORE_INDEX   # targets tail+1 .. covered: already counted
        yield x, y

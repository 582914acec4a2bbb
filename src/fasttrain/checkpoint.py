"""Checkpoints: named float arrays in a safetensors file, JSON metadata in its header.

Written atomically: to a temporary file in the same folder, flushed and fsynced, renamed over
the old checkpoint, and the folder fsynced; a crash at any moment leaves either the old
checkpoint or the new one, never a torn file. Loading never unpickles: safetensors holds only
raw arrays and strings. A CRC-32 over the metadata and every array's name, dtype, shape and bytes
is stored with them and checked on load, so a flipped byte or a truncated file is refused with
a clear error instead of being trained on.
"""
from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import numpy as np

FORMAT = "fasttrain-checkpoint-1"
CHECKPOINT = "ckpt.safetensors"  # a run directory's last checkpoint


def kept_checkpoint(step: int) -> str:
    """The name of an evaluation step's checkpoint, kept with keep_checkpoints."""
    return f"ckpt-{step:06d}.safetensors"


def kept_steps(run: str | os.PathLike) -> list[int]:
    """The steps whose checkpoints a run kept, in order."""
    names = (p.name for p in Path(run).glob("ckpt-*.safetensors"))
    return sorted(int(n[5:-12]) for n in names if n[5:-12].isdigit())


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, truncated, or from another model."""


def _crc(meta_json: str, arrays: dict[str, np.ndarray]) -> str:
    crc = zlib.crc32(meta_json.encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        crc = zlib.crc32(f"{name}:{a.dtype.str}:{a.shape}".encode(), crc)
        crc = zlib.crc32(memoryview(a).cast("B"), crc)
    return f"{crc:08x}"


def save(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write `arrays` and JSON-serialisable `meta` to `path`, atomically."""
    from safetensors.numpy import save as st_save

    path = Path(path)
    meta_json = json.dumps({"format": FORMAT, **meta}, sort_keys=True)
    header = {"fasttrain": meta_json, "crc32": _crc(meta_json, arrays)}
    blob = st_save({k: np.ascontiguousarray(v) for k, v in arrays.items()}, metadata=header)
    write_atomic(path, blob)


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """`data` into `path` whole or not at all: a temporary file beside it, fsynced, renamed over
    it, the folder fsynced; a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    # a process killed inside a write leaves its temporary behind; one run writes at a time
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        stale.unlink(missing_ok=True)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, meta) from `path`, verified; CheckpointError if anything is off."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint there")
    try:
        with safe_open(str(path), framework="numpy") as f:
            header = f.metadata() or {}
            arrays = {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt or truncated): {e}") from None
    meta_json, stored = header.get("fasttrain"), header.get("crc32")
    if meta_json is None or stored is None:
        raise CheckpointError(f"{path}: not a fasttrain checkpoint (no fasttrain metadata)")
    if _crc(meta_json, arrays) != stored:
        raise CheckpointError(f"{path}: checksum mismatch: the file is corrupt; refusing to load it")
    try:
        meta = json.loads(meta_json)
    except json.JSONDecodeError as e:  # unreachable when the CRC matches, kept as a guard
        raise CheckpointError(f"{path}: metadata is not JSON: {e}") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    return arrays, meta

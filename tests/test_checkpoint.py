"""Checkpoints: atomic, verified, never unpickled; corruption is refused with a clear error."""
import os

import numpy as np
import pytest

from fasttrain import checkpoint
from fasttrain.checkpoint import CheckpointError


@pytest.fixture
def saved(tmp_path):
    arrays = {"params": np.arange(1000, dtype=np.float32), "m": np.ones((10, 3), np.float32)}
    meta = {"step": 7, "rng": {"state": 2**100 + 3}}
    path = tmp_path / "ckpt.safetensors"
    checkpoint.save(path, arrays, meta)
    return path, arrays, meta


def test_round_trip(saved):
    path, arrays, meta = saved
    loaded, got = checkpoint.load(path)
    assert got["step"] == 7 and got["rng"]["state"] == 2**100 + 3
    for k in arrays:
        assert np.array_equal(loaded[k], arrays[k]) and loaded[k].dtype == arrays[k].dtype
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left behind


def test_every_flipped_byte_is_refused(saved):
    path, _, _ = saved
    blob = path.read_bytes()
    rng = np.random.default_rng(0)
    for pos in sorted({8, 20, len(blob) // 2, len(blob) - 1, *rng.integers(0, len(blob), 40)}):
        bad = bytearray(blob)
        bad[pos] ^= 0x10
        path.write_bytes(bytes(bad))
        with pytest.raises(CheckpointError):
            checkpoint.load(path)


@pytest.mark.parametrize("keep", [0, 7, 100, -1])
def test_truncated_is_refused(saved, keep):
    path, _, _ = saved
    blob = path.read_bytes()
    path.write_bytes(blob[:keep] if keep >= 0 else blob[:-1])
    with pytest.raises(CheckpointError, match="corrupt or truncated|checksum"):
        checkpoint.load(path)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        checkpoint.load(tmp_path / "none.safetensors")
    from safetensors.numpy import save_file

    save_file({"x": np.zeros(3, np.float32)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="not a fasttrain checkpoint"):
        checkpoint.load(tmp_path / "other.safetensors")


def test_a_failed_write_keeps_the_previous_checkpoint(saved, monkeypatch):
    path, arrays, _ = saved
    before = path.read_bytes()

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(path, {"params": np.zeros(5, np.float32)}, {"step": 8})
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]

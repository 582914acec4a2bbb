"""Call fasttrain's fused cross-entropy from your own numpy code, and see what it is worth.

    python examples/crossentropy.py
"""
import time

import numpy as np

import fasttrain

# One training step's loss on a five-word vocabulary: "the cat sat" -> "on".
vocab = ["the", "cat", "sat", "on", "mat"]
p = np.array([[0.15, 0.10, 0.05, 0.20, 0.50]])  # (N=1, V=5) the model's probabilities
loss, dlogits = fasttrain.softmax_cross_entropy(np.log(p), np.array([3]))
print(f"loss = -log P('on') = -log 0.20 = {loss:.4f}")
print("dloss/dlogits = p - onehot:", {w: round(float(g), 2) for w, g in zip(vocab, dlogits[0])})

# The same kernel at a language model's size: (N, V) = (8192, 4096), float32.
rng = np.random.default_rng(0)
logits = rng.standard_normal((8192, 4096), dtype=np.float32)  # (N, V)
targets = rng.integers(0, 4096, size=8192)                     # (N,)
out = np.empty_like(logits)
for backend in fasttrain.available_backends():
    fasttrain.softmax_cross_entropy(logits, targets, out=out, backend=backend)  # warm-up
    t0 = time.perf_counter()
    loss, _ = fasttrain.softmax_cross_entropy(logits, targets, out=out, backend=backend)
    ms = (time.perf_counter() - t0) * 1e3
    print(f"{backend:6s} loss {loss:.6f}  {ms:7.1f} ms  {8 * logits.size / ms / 1e6:5.1f} GB/s")

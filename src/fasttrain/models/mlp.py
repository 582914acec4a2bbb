"""A Bengio-style MLP language model (Bengio, Ducharme, Vincent & Jauvin, "A Neural
Probabilistic Language Model", JMLR 2003), forward and backward on fasttrain's kernels.

    x (B, T) tokens ──wte──▶ (B, T, E) ──concat──▶ (B, T*E) ──fc──▶ (B, H) ──tanh|gelu──▶ (B, H)
      ──head──▶ logits (B, V) ──softmax cross-entropy with the next token y (B,)──▶ loss

B windows, T = context tokens each, E = n_embd, H = hidden, V = vocabulary. All parameters live
in one Arena (one float32 buffer, gradients in another); activations live in buffers made once
per batch size, so a training step allocates nothing after the first.

The first layer, two ways (same function, same gradients, rounding aside):
  "gemm":   pre = concat(wte[x]) @ W1.T + b1, as written above; 6·B·T·E·H flops forward and
            backward.
  "tables": the pre-computation trick of Devlin et al. 2014 ("Fast and Robust Neural Network
            Joint Models", ACL, sec. 3.2), used here for training as well. P[v, t] =
            W1[:, tE:(t+1)E] @ wte[v] is the contribution of token v at position t to the
            hidden layer; one GEMM makes all V·T rows of P, and a window's pre-activation is the
            sum of its T rows (an embedding bag). The backward scatters dpre into G, shaped like
            P, and gets dwte and dW1 from two GEMMs against G: 6·V·T·E·H flops. Cheaper when the
            vocabulary is smaller than the batch, as for bytes (V = 256, B = 1024: 4x fewer).
  first_layer="auto" takes "tables" when 2·V <= B, else "gemm".

The head and the loss, two ways (same values, rounding aside): fused_head=True (the default)
runs both, forward and backward, in one linear_cross_entropy call that computes the logits a
chunk of rows at a time and never stores all B x V of them; fused_head=False runs
linear_forward, softmax_cross_entropy and linear_backward over a (B, V) logits buffer.
"""
from __future__ import annotations

import numpy as np

from fasttrain import kernels as K
from fasttrain.arena import Arena


class _Buffers:
    """Activations and their gradients for one batch size B."""

    def __init__(self, B: int, T: int, E: int, H: int, V: int):
        self.emb = np.empty((B, T * E), dtype=np.float32)    # (B, T*E) concatenated embeddings
        self.demb = np.empty_like(self.emb)                  # (B, T*E)
        self.rows = np.empty((B, T), dtype=np.int64)         # (B, T) rows of P: v*T + t
        self.pre = np.empty((B, H), dtype=np.float32)        # (B, H) fc output, before activation
        self.h = np.empty((B, H), dtype=np.float32)          # (B, H) after activation
        self.dh = np.empty((B, H), dtype=np.float32)         # (B, H)
        self.logits = None                                   # (B, V), made when first needed


class _Tables:
    """The "tables" first layer's buffers, one set per model."""

    def __init__(self, T: int, E: int, H: int, V: int):
        self.W1T = np.empty((T * H, E), dtype=np.float32)    # (T*H, E): row t*H+h = W1[h, tE:(t+1)E]
        self.dW1T = np.empty_like(self.W1T)                  # (T*H, E)
        self.P = np.empty((V, T * H), dtype=np.float32)      # (V, T*H) = (V*T, H): row v*T+t = P[v, t]
        self.G = np.empty_like(self.P)                       # (V, T*H): dloss/dP
        self.dwte = np.empty((V, E), dtype=np.float32)       # (V, E)
        self.db = np.empty(H, dtype=np.float32)              # (H,)


class MLP:
    sequence = False  # y holds the next token of each window only: x (B, T) -> y (B,)

    def __init__(self, *, vocab_size: int, context: int, n_embd: int, hidden: int,
                 activation: str = "tanh", backend: str | None = None,
                 first_layer: str = "auto", fused_head: bool = True):
        if activation not in ("tanh", "gelu"):
            raise ValueError(f"activation must be 'tanh' or 'gelu', got {activation!r}")
        if first_layer not in ("auto", "gemm", "tables"):
            raise ValueError(f"first_layer must be 'auto', 'gemm' or 'tables', got {first_layer!r}")
        self.V, self.T, self.E, self.H = vocab_size, context, n_embd, hidden
        self.activation, self.backend, self.first_layer = activation, backend, first_layer
        self.fused_head = fused_head
        self.arena = Arena()
        # weight matrices are decayed; biases are not (as PyTorch users set with param groups)
        self.arena.add("wte.weight", (self.V, self.E))          # token embeddings
        self.arena.add("fc.weight", (self.H, self.T * self.E))  # (OC, C) as torch.nn.Linear
        self.arena.add("head.weight", (self.V, self.H))
        self.arena.add("fc.bias", (self.H,), decay=False)
        self.arena.add("head.bias", (self.V,), decay=False)
        self.arena.build()
        self._buffers: dict[int, _Buffers] = {}
        self._tables: _Tables | None = None

    @property
    def num_params(self) -> int:
        return self.arena.num_params

    def init(self, seed: int) -> None:
        """Initial weights, seeded. Embeddings N(0, 1); fc He/Kaiming-normal (He et al. 2015)
        with the activation's gain (5/3 for tanh, as torch.nn.init.calculate_gain; 1 for GELU);
        head N(0, 0.01^2) so the initial logits are near 0 and the loss starts at ln V; biases 0."""
        rng = np.random.default_rng(seed)
        a = self.arena
        a["wte.weight"][...] = rng.standard_normal(a["wte.weight"].shape)
        gain = 5 / 3 if self.activation == "tanh" else 1.0
        fan_in = self.T * self.E
        a["fc.weight"][...] = rng.standard_normal(a["fc.weight"].shape) * (gain / np.sqrt(fan_in))
        a["head.weight"][...] = rng.standard_normal(a["head.weight"].shape) * 0.01
        a["fc.bias"][...] = 0
        a["head.bias"][...] = 0

    def uses_tables(self, B: int) -> bool:
        """Whether a batch of B windows takes the "tables" first layer."""
        return self.first_layer == "tables" or (self.first_layer == "auto" and 2 * self.V <= B)

    def _buf(self, B: int) -> _Buffers:
        if B not in self._buffers:
            self._buffers[B] = _Buffers(B, self.T, self.E, self.H, self.V)
        return self._buffers[B]

    # ------------------------------------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        """logits (B, V) for windows x (B, T); the array is a buffer reused by the next call."""
        a, be, buf = self.arena, self.backend, self._hidden(x)
        if buf.logits is None:
            buf.logits = np.empty((len(x), self.V), dtype=np.float32)  # (B, V)
        K.linear_forward(buf.h, a["head.weight"], a["head.bias"], out=buf.logits, backend=be)
        return buf.logits

    def _hidden(self, x: np.ndarray) -> _Buffers:
        """The batch's buffers, with h (B, H) computed for windows x (B, T)."""
        a, be, buf = self.arena, self.backend, self._buf(len(x))
        if self.uses_tables(len(x)):
            self._fc_forward_tables(x, buf)
        else:
            K.embedding_forward(x, a["wte.weight"], out=buf.emb.reshape(len(x), self.T, self.E),
                                backend=be)
            K.linear_forward(buf.emb, a["fc.weight"], a["fc.bias"], out=buf.pre, backend=be)
        if self.activation == "tanh":
            K.tanh_forward(buf.pre, out=buf.h, backend=be)
        else:
            K.gelu_forward(buf.pre, out=buf.h, backend=be)
        return buf

    def loss(self, x: np.ndarray, y: np.ndarray) -> float:
        """Mean cross-entropy of predicting y (B,) from x (B, T); no gradients kept."""
        logits = self.forward(x)
        loss, _ = K.softmax_cross_entropy(logits, y, out=logits, backend=self.backend)
        return loss

    def forward_backward(self, x: np.ndarray, y: np.ndarray) -> float:
        """The mean loss of the batch; adds its gradient to arena.grads (+=), so micro-batches
        accumulate. The caller zeroes the gradients once per optimizer step."""
        a, be = self.arena, self.backend
        # head: logits = h @ W2.T + b2, loss; dh = dlogits @ W2; dW2 += dlogits.T @ h;
        # db2 += sum(dlogits)
        if self.fused_head:
            buf = self._hidden(x)
            loss, *_ = K.linear_cross_entropy(buf.h, a["head.weight"], y, a["head.bias"],
                                              dx=buf.dh, dW=a.grad("head.weight"),
                                              db=a.grad("head.bias"), accumulate=True,
                                              backend=be)
        else:
            logits = self.forward(x)
            buf = self._buf(len(x))
            loss, dlogits = K.softmax_cross_entropy(logits, y, out=logits, backend=be)  # (B, V)
            K.linear_backward(buf.h, a["head.weight"], dlogits, dx=buf.dh,
                              dW=a.grad("head.weight"), db=a.grad("head.bias"),
                              accumulate=True, backend=be)
        if self.activation == "tanh":  # tanh's gradient comes from its output
            K.tanh_backward(buf.h, buf.dh, out=buf.dh, backend=be)
        else:
            K.gelu_backward(buf.pre, buf.dh, out=buf.dh, backend=be)
        if self.uses_tables(len(x)):
            self._fc_backward_tables(x, buf)
        else:
            K.linear_backward(buf.emb, a["fc.weight"], buf.dh, dx=buf.demb,
                              dW=a.grad("fc.weight"), db=a.grad("fc.bias"), accumulate=True,
                              backend=be)
            K.embedding_backward(x, buf.demb.reshape(len(x), self.T, self.E),
                                 a.grad("wte.weight"), accumulate=True, backend=be)
        return loss

    # ------------------------------------------------------------------------------------------
    # the "tables" first layer (see the module docstring)

    def _fc_forward_tables(self, x: np.ndarray, buf: _Buffers) -> None:
        a, be, T, H, E = self.arena, self.backend, self.T, self.H, self.E
        if self._tables is None:
            self._tables = _Tables(T, E, H, self.V)
        tb = self._tables
        # W1 (H, T*E) -> W1T (T*H, E), so that one GEMM makes every P[v, t] = W1_t @ wte[v]
        np.copyto(tb.W1T.reshape(T, H, E), a["fc.weight"].reshape(H, T, E).transpose(1, 0, 2))
        K.linear_forward(a["wte.weight"], tb.W1T, out=tb.P, backend=be)       # (V, T*H)
        np.multiply(x, T, out=buf.rows)
        buf.rows += np.arange(T)                                               # (B, T): v*T + t
        K.embedding_bag_forward(buf.rows, tb.P.reshape(self.V * T, H), out=buf.pre, backend=be)
        buf.pre += a["fc.bias"]

    def _fc_backward_tables(self, x: np.ndarray, buf: _Buffers) -> None:
        a, be, T, H, E, tb = self.arena, self.backend, self.T, self.H, self.E, self._tables
        dpre = buf.dh                                                          # (B, H)
        K.embedding_bag_backward(buf.rows, dpre, tb.G.reshape(self.V * T, H), backend=be)
        # dwte = G @ W1T (V, E); dW1T = G.T @ wte (T*H, E): the linear layer's two GEMMs
        K.linear_backward(a["wte.weight"], tb.W1T, tb.G, dx=tb.dwte, dW=tb.dW1T, db=False,
                          backend=be)
        a.grad("wte.weight")[...] += tb.dwte
        dW1 = a.grad("fc.weight").reshape(H, T, E)
        dW1 += tb.dW1T.reshape(T, H, E).transpose(1, 0, 2)
        a.grad("fc.bias")[...] += np.sum(dpre, axis=0, out=tb.db)

    # ------------------------------------------------------------------------------------------
    # generation

    def decoder(self, pad: int = 0) -> "WindowDecoder":
        """Generation: the model reads the last T tokens, a short text padded on the left with
        `pad` (sample.py pads with a newline, as text starts)."""
        return WindowDecoder(self, pad)


class WindowDecoder:
    """feed(tokens) appends tokens and returns the (V,) logits of the next one: one forward over
    the window of the last T tokens (the MLP has no state to carry between steps)."""

    def __init__(self, model: MLP, pad: int):
        self.model, self.window = model, [int(pad)] * model.T

    def feed(self, tokens) -> np.ndarray:
        self.window = (self.window + [int(t) for t in tokens])[-self.model.T:]
        return self.model.forward(np.array([self.window], dtype=np.int64))[0]

"""GPT: the GPT-2 architecture (Radford et al. 2019, as nanoGPT and llm.c write it), forward and
backward on fasttrain's kernels.

    x (B, T) tokens ──wte + wpe──▶ res_0 (N, C)                          N = B*T rows, C = n_embd
    for each of n_layer blocks l (pre-LayerNorm):
        ln1  = layernorm(res_l)                          (N, C)   + mean1, rstd1 (N,)
        qkv  = ln1 @ c_attn.W.T + c_attn.b               (N, 3C)  q | k | v, each n_head heads of hs
        att  = causal softmax(q k^T / sqrt(hs)) v        (N, C)   + lse (B, n_head, T)
        res2 = res_l + att @ attn.c_proj.W.T + b         (N, C)   the residual stream, mid-block
        ln2  = layernorm(res2)                           (N, C)   + mean2, rstd2 (N,)
        fc   = ln2 @ c_fc.W.T + c_fc.b                   (N, 4C)
        g    = gelu(fc)  (tanh form)                     (N, 4C)
        res_{l+1} = res2 + g @ mlp.c_proj.W.T + b        (N, C)
    lnf  = layernorm(res_L)                              (N, C)
    loss = cross_entropy(lnf @ wte.T, y)                 the head tied to wte; (N, V) never stored

The backward runs the same list upwards: each linear_backward gives dx and adds dW, db into the
arena's gradients (+=), each layernorm_backward writes its dx over its dy, and the residual
stream's gradient dres (N, C) collects what each branch sends back (dres += dx of ln1, ln2).
The head's gradient and the token embedding's scatter add into the same wte gradient.

All parameters live in one Arena (GPT-2's names, as in nanoGPT and Hugging Face's layout), the
activations of a (B, T) batch in buffers made on its first step: a training step allocates
nothing after the first. Initialisation as GPT-2: N(0, 0.02) for every matrix and embedding, the
two projections into the residual stream scaled by 1/sqrt(2 n_layer), biases 0, LN weights 1.

`decoder()` generates with a key/value cache: one new token costs one row of each layer.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.linalg.blas import get_blas_funcs

from fasttrain import kernels as K
from fasttrain.arena import Arena
from fasttrain.kernels.linear_crossentropy import default_chunk_rows

IGNORE_INDEX = -100  # a target that counts for nothing (evaluation pads with it)


class _Layer:
    """One block's activations for a (B, T) batch: what its backward reads."""

    def __init__(self, B: int, T: int, C: int, n_head: int, dtype):
        N = B * T
        self.ln1 = np.empty((N, C), dtype)          # (N, C)   layernorm 1's output
        self.mean1 = np.empty(N, dtype)             # (N,)
        self.rstd1 = np.empty(N, dtype)             # (N,)
        self.qkv = np.empty((B, T, 3 * C), dtype)   # (B, T, 3C)
        self.att = np.empty((B, T, C), dtype)       # (B, T, C) heads concatenated
        self.lse = np.empty((B, n_head, T), dtype)  # (B, n_head, T) log-sum-exp per query
        self.res2 = np.empty((N, C), dtype)         # (N, C)   residual after attention
        self.ln2 = np.empty((N, C), dtype)          # (N, C)
        self.mean2 = np.empty(N, dtype)             # (N,)
        self.rstd2 = np.empty(N, dtype)             # (N,)
        self.fc = np.empty((N, 4 * C), dtype)       # (N, 4C)  before GELU
        self.g = np.empty((N, 4 * C), dtype)        # (N, 4C)  after GELU


class _Buffers:
    """Activations and gradient scratch for one (B, T): made on first use, then reused."""

    def __init__(self, B: int, T: int, C: int, n_layer: int, n_head: int, dtype):
        N = B * T
        self.res = np.empty((n_layer + 1, N, C), dtype)  # (L+1, N, C) residual stream per block
        self.layers = [_Layer(B, T, C, n_head, dtype) for _ in range(n_layer)]
        self.lnf = np.empty((N, C), dtype)                # (N, C) final layernorm's output
        self.meanf = np.empty(N, dtype)                   # (N,)
        self.rstdf = np.empty(N, dtype)                   # (N,)
        self.branch = np.empty((N, C), dtype)             # (N, C) a projection's output
        # gradients, shared by the blocks (the backward visits one at a time)
        self.dres = np.empty((N, C), dtype)               # (N, C) d loss / d residual stream
        self.dln = np.empty((N, C), dtype)                # (N, C) d of a layernorm's output
        self.datt = np.empty((B, T, C), dtype)            # (B, T, C)
        self.dqkv = np.empty((B, T, 3 * C), dtype)        # (B, T, 3C)
        self.dg = np.empty((N, 4 * C), dtype)             # (N, 4C) d gelu out, then d fc
        self.dwpe = np.empty((T, C), dtype)               # (T, C) wpe's gradient, summed over B


class GPT:
    """The GPT-2 model over an Arena. Shapes: B sequences of T <= block_size tokens, C = n_embd,
    n_head heads of hs = C / n_head, V = vocab_size, L = n_layer."""

    sequence = True  # y holds the next token of every position: x (B, T) -> y (B, T)

    def __init__(self, *, vocab_size: int, block_size: int, n_layer: int, n_head: int,
                 n_embd: int, eps: float = 1e-5, backend: str | None = None,
                 dtype=np.float32):
        for name, v in (("vocab_size", vocab_size), ("block_size", block_size),
                        ("n_layer", n_layer), ("n_head", n_head), ("n_embd", n_embd)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if n_embd % n_head:
            raise ValueError(f"n_embd ({n_embd}) must be a multiple of n_head ({n_head})")
        self.V, self.block_size, self.L = int(vocab_size), int(block_size), int(n_layer)
        self.n_head, self.C, self.eps, self.backend = int(n_head), int(n_embd), eps, backend
        self.dtype = np.dtype(dtype)
        V, C = self.V, self.C
        a = self.arena = Arena(self.dtype)
        # matrices and embeddings are weight-decayed, biases and LN parameters not (nanoGPT)
        a.add("wte.weight", (V, C))                 # token embeddings, also the head (tied)
        a.add("wpe.weight", (self.block_size, C))   # learned positions
        for l in range(self.L):
            p = f"h.{l}."
            a.add(p + "attn.c_attn.weight", (3 * C, C))   # (OC, C), as torch.nn.Linear
            a.add(p + "attn.c_proj.weight", (C, C))
            a.add(p + "mlp.c_fc.weight", (4 * C, C))
            a.add(p + "mlp.c_proj.weight", (C, 4 * C))
            for name, size in (("ln_1.weight", C), ("ln_1.bias", C), ("attn.c_attn.bias", 3 * C),
                               ("attn.c_proj.bias", C), ("ln_2.weight", C), ("ln_2.bias", C),
                               ("mlp.c_fc.bias", 4 * C), ("mlp.c_proj.bias", C)):
                a.add(p + name, (size,), decay=False)
        a.add("ln_f.weight", (C,), decay=False)
        a.add("ln_f.bias", (C,), decay=False)
        a.build()
        self._buffers: dict[tuple[int, int], _Buffers] = {}

    @property
    def num_params(self) -> int:
        return self.arena.num_params

    @property
    def T(self) -> int:
        """The context the model reads (for code written for any model)."""
        return self.block_size

    def init(self, seed: int) -> None:
        """GPT-2's initialisation (nanoGPT's _init_weights), seeded."""
        rng = np.random.default_rng(seed)
        a = self.arena
        for name in a.names:
            view = a[name]
            if name.endswith("c_proj.weight"):
                view[...] = rng.standard_normal(view.shape) * (0.02 / math.sqrt(2 * self.L))
            elif name.endswith(".weight") and view.ndim == 2:
                view[...] = rng.standard_normal(view.shape) * 0.02
            elif name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name == "ln_f.weight":
                view[...] = 1
            else:
                view[...] = 0

    def _buf(self, B: int, T: int) -> _Buffers:
        key = (B, T)
        if key not in self._buffers:
            self._buffers[key] = _Buffers(B, T, self.C, self.L, self.n_head, self.dtype)
        return self._buffers[key]

    def _check(self, x: np.ndarray) -> tuple[int, int]:
        if x.ndim != 2:
            raise ValueError(f"x must be (B, T) token ids, got shape {x.shape}")
        B, T = x.shape
        if not 1 <= T <= self.block_size:
            raise ValueError(f"sequences of {T} tokens: the GPT reads 1 to block_size = "
                             f"{self.block_size}")
        return B, T

    # ------------------------------------------------------------------------------------------
    # forward

    def _forward(self, x: np.ndarray) -> _Buffers:
        """Every activation of the batch x (B, T), up to the final layernorm's output lnf."""
        B, T = self._check(x)
        a, be, C, buf = self.arena, self.backend, self.C, self._buf(*x.shape)
        res = buf.res
        K.embedding_forward(x, a["wte.weight"], out=res[0].reshape(B, T, C), backend=be)
        res[0].reshape(B, T, C)[...] += a["wpe.weight"][:T]
        for l, act in enumerate(buf.layers):
            p = f"h.{l}."
            K.layernorm_forward(res[l], a[p + "ln_1.weight"], a[p + "ln_1.bias"], eps=self.eps,
                                out=act.ln1, mean=act.mean1, rstd=act.rstd1, backend=be)
            K.linear_forward(act.ln1, a[p + "attn.c_attn.weight"], a[p + "attn.c_attn.bias"],
                             out=act.qkv.reshape(B * T, 3 * C), backend=be)
            K.attention_forward(act.qkv, self.n_head, out=act.att, lse=act.lse, backend=be)
            K.linear_forward(act.att.reshape(B * T, C), a[p + "attn.c_proj.weight"],
                             a[p + "attn.c_proj.bias"], out=buf.branch, backend=be)
            np.add(res[l], buf.branch, out=act.res2)
            K.layernorm_forward(act.res2, a[p + "ln_2.weight"], a[p + "ln_2.bias"], eps=self.eps,
                                out=act.ln2, mean=act.mean2, rstd=act.rstd2, backend=be)
            K.linear_forward(act.ln2, a[p + "mlp.c_fc.weight"], a[p + "mlp.c_fc.bias"],
                             out=act.fc, backend=be)
            K.gelu_forward(act.fc, out=act.g, backend=be)
            K.linear_forward(act.g, a[p + "mlp.c_proj.weight"], a[p + "mlp.c_proj.bias"],
                             out=buf.branch, backend=be)
            np.add(act.res2, buf.branch, out=res[l + 1])
        K.layernorm_forward(res[self.L], a["ln_f.weight"], a["ln_f.bias"], eps=self.eps,
                            out=buf.lnf, mean=buf.meanf, rstd=buf.rstdf, backend=be)
        return buf

    def logits(self, x: np.ndarray) -> np.ndarray:
        """(B, T, V) logits of every position of x (B, T): a new array, for inspection and
        tests (training and evaluation never store them whole)."""
        buf = self._forward(x)
        B, T = x.shape
        return K.linear_forward(buf.lnf, self.arena["wte.weight"],
                                backend=self.backend).reshape(B, T, self.V)

    def loss(self, x: np.ndarray, y: np.ndarray) -> float:
        """Mean cross-entropy over the targets y (B, T) (IGNORE_INDEX ones excluded) of the
        batch x (B, T); no gradients. The logits are made chunk by chunk of rows."""
        buf = self._forward(x)
        y = y.reshape(-1)
        W, N = self.arena["wte.weight"], len(y)
        rows = default_chunk_rows(self.V, self.dtype.itemsize, N)
        logits = np.empty((min(rows, N), self.V), self.dtype)  # (rows, V)
        total, count = 0.0, int(np.count_nonzero(y != IGNORE_INDEX))
        for lo in range(0, N, rows):
            hi = min(lo + rows, N)
            chunk = K.linear_forward(buf.lnf[lo:hi], W, out=logits[:hi - lo],
                                     backend=self.backend)
            s, _ = K.softmax_cross_entropy(chunk, y[lo:hi], reduction="sum", out=chunk,
                                           backend=self.backend)
            total += s
        return total / count if count else float("nan")

    # ------------------------------------------------------------------------------------------
    # forward and backward

    def forward_backward(self, x: np.ndarray, y: np.ndarray) -> float:
        """The mean loss over the targets y (B, T) of the batch x (B, T); adds its gradient to
        arena.grads (+=), so micro-batches accumulate. The caller zeroes the gradients once
        per optimizer step."""
        a, be, C = self.arena, self.backend, self.C
        buf = self._forward(x)
        B, T = x.shape
        N = B * T
        res, dres, dln = buf.res, buf.dres, buf.dln
        # head + loss: logits = lnf @ wte.T; dlnf = dlogits @ wte; dwte += dlogits.T @ lnf
        loss, *_ = K.linear_cross_entropy(buf.lnf, a["wte.weight"], y.reshape(N),
                                          ignore_index=IGNORE_INDEX, dx=dln,
                                          dW=a.grad("wte.weight"), accumulate=True, backend=be)
        K.layernorm_backward(res[self.L], a["ln_f.weight"], buf.meanf, buf.rstdf, dln, dx=dres,
                             dweight=a.grad("ln_f.weight"), dbias=a.grad("ln_f.bias"),
                             accumulate=True, backend=be)
        for l in reversed(range(self.L)):
            act, p = buf.layers[l], f"h.{l}."
            # MLP branch: res_{l+1} = res2 + mlp(ln2(res2)); dres is d res_{l+1}
            K.linear_backward(act.g, a[p + "mlp.c_proj.weight"], dres, dx=buf.dg,
                              dW=a.grad(p + "mlp.c_proj.weight"), db=a.grad(p + "mlp.c_proj.bias"),
                              accumulate=True, backend=be)
            K.gelu_backward(act.fc, buf.dg, out=buf.dg, backend=be)
            K.linear_backward(act.ln2, a[p + "mlp.c_fc.weight"], buf.dg, dx=dln,
                              dW=a.grad(p + "mlp.c_fc.weight"), db=a.grad(p + "mlp.c_fc.bias"),
                              accumulate=True, backend=be)
            K.layernorm_backward(act.res2, a[p + "ln_2.weight"], act.mean2, act.rstd2, dln, dx=dln,
                                 dweight=a.grad(p + "ln_2.weight"), dbias=a.grad(p + "ln_2.bias"),
                                 accumulate=True, backend=be)
            dres += dln                                      # now d res2
            # attention branch: res2 = res_l + proj(attention(qkv(ln1(res_l))))
            K.linear_backward(act.att.reshape(N, C), a[p + "attn.c_proj.weight"], dres,
                              dx=buf.datt.reshape(N, C), dW=a.grad(p + "attn.c_proj.weight"),
                              db=a.grad(p + "attn.c_proj.bias"), accumulate=True, backend=be)
            K.attention_backward(act.qkv, act.att, act.lse, buf.datt, self.n_head, dqkv=buf.dqkv,
                                 backend=be)
            K.linear_backward(act.ln1, a[p + "attn.c_attn.weight"], buf.dqkv.reshape(N, 3 * C),
                              dx=dln, dW=a.grad(p + "attn.c_attn.weight"),
                              db=a.grad(p + "attn.c_attn.bias"), accumulate=True, backend=be)
            K.layernorm_backward(res[l], a[p + "ln_1.weight"], act.mean1, act.rstd1, dln, dx=dln,
                                 dweight=a.grad(p + "ln_1.weight"), dbias=a.grad(p + "ln_1.bias"),
                                 accumulate=True, backend=be)
            dres += dln                                      # now d res_l
        # embeddings: res_0 = wte[x] + wpe[:T]
        K.embedding_backward(x, dres.reshape(B, T, C), a.grad("wte.weight"), accumulate=True,
                             backend=be)
        a.grad("wpe.weight")[:T] += np.sum(dres.reshape(B, T, C), axis=0, out=buf.dwpe)
        return loss

    # ------------------------------------------------------------------------------------------
    # generation

    def decoder(self, pad: int = 0) -> "Decoder":
        """A key/value-cache decoder for one sequence (see Decoder). `pad` is not used: the
        GPT reads contexts of any length from 1 token (the MLP's decoder pads)."""
        return Decoder(self)


class Decoder:
    """Generation with a key/value cache, one sequence at a time.

        dec = model.decoder()
        logits = dec.feed(prompt_tokens)   # (V,) the next token's logits after the prompt
        logits = dec.feed([token])         # after one more token: costs one row per layer

    feed() reads its tokens through the cache: a first call (or one with several tokens) runs
    the full forward over them (the kernels, as in training) and keeps every layer's keys and
    values (n_layer, n_head, block_size, hs); a single token then runs each layer on one row,
    its query attending to the cached keys. When the context is full (block_size tokens), the
    window slides: the last block_size // 2 tokens are read again from scratch (positions are
    absolute, so cached keys cannot be shifted), and decoding goes on from there.
    """

    def __init__(self, model: GPT):
        self.m = model
        m = model
        hs = m.C // m.n_head
        self.k = np.zeros((m.L, m.n_head, m.block_size, hs), m.dtype)  # (L, n_head, T, hs)
        self.v = np.zeros_like(self.k)                                  # (L, n_head, T, hs)
        self.tokens: list[int] = []  # the tokens in the cache, in order
        self.scale = 1.0 / math.sqrt(hs)
        gemv = get_blas_funcs("gemv", dtype=m.dtype)
        # W (OC, C) C-ordered is W.T (C, OC) Fortran-ordered: BLAS reads it in place, trans=1
        self._gemv = lambda W, x, b: gemv(1.0, W.T, x, beta=1.0, y=b, trans=1)  # W @ x + b

    def feed(self, tokens) -> np.ndarray:
        """Append tokens (at least one); return the (V,) logits of the token after them."""
        tokens = [int(t) for t in tokens]
        if not tokens:
            raise ValueError("feed() needs at least one token")
        if any(not 0 <= t < self.m.V for t in tokens):
            raise ValueError(f"token ids must be in [0, {self.m.V})")
        if len(tokens) == 1 and 0 < len(self.tokens) < self.m.block_size:
            return self._step(tokens[0])
        window = self.tokens + tokens
        if len(window) > self.m.block_size:
            keep = self.m.block_size // 2 if len(tokens) == 1 else self.m.block_size
            window = window[-keep:]
        return self._prefill(window)

    def _prefill(self, window: list[int]) -> np.ndarray:
        m, T = self.m, len(window)
        buf = m._forward(np.asarray([window], dtype=np.int64))
        C, hs = m.C, m.C // m.n_head
        for l, act in enumerate(buf.layers):
            qkv = act.qkv[0]                                          # (T, 3C)
            self.k[l, :, :T] = qkv[:, C:2 * C].reshape(T, m.n_head, hs).transpose(1, 0, 2)
            self.v[l, :, :T] = qkv[:, 2 * C:].reshape(T, m.n_head, hs).transpose(1, 0, 2)
        self.tokens = list(window)
        return K.linear_forward(buf.lnf[T - 1:T], m.arena["wte.weight"], backend=m.backend)[0]

    def _step(self, token: int) -> np.ndarray:
        """One token at position t = len(self.tokens): one row through every layer.

        At one row the work is a few matrix-vector products, and a BLAS GEMV beats a GEMM call:
        linear_forward at (1, 256) x (1024, 256) takes ~200 us in OpenBLAS's sgemm, which packs
        W first, against ~35 us in its sgemv. So this row runs on the GEMV of the same BLAS as
        the kernels' GEMMs (scipy's: a second BLAS, numpy's, would bring a second thread pool
        to spin against the first) and numpy, with the kernels' formulas (layernorm's
        statistics in float64, GELU's tanh form); _prefill runs the kernels, and the tests hold
        the two to 1e-5."""
        m, a, C = self.m, self.m.arena, self.m.C
        mv = self._gemv
        t, H, hs = len(self.tokens), m.n_head, C // m.n_head
        x = a["wte.weight"][token] + a["wpe.weight"][t]                # (C,)
        for l in range(m.L):
            p = f"h.{l}."
            h = _layernorm(x, a[p + "ln_1.weight"], a[p + "ln_1.bias"], m.eps)
            qkv = mv(a[p + "attn.c_attn.weight"], h, a[p + "attn.c_attn.bias"])  # (3C,)
            self.k[l, :, t] = qkv[C:2 * C].reshape(H, hs)
            self.v[l, :, t] = qkv[2 * C:].reshape(H, hs)
            q = qkv[:C].reshape(H, 1, hs)                              # (H, 1, hs)
            s = (q @ self.k[l, :, :t + 1].transpose(0, 2, 1))[:, 0] * self.scale  # (H, t+1)
            s = np.exp(s - s.max(axis=1, keepdims=True))
            s /= s.sum(axis=1, keepdims=True)
            att = (s[:, None, :] @ self.v[l, :, :t + 1]).reshape(C)   # (C,) heads concatenated
            x = x + mv(a[p + "attn.c_proj.weight"], att, a[p + "attn.c_proj.bias"])
            h = _layernorm(x, a[p + "ln_2.weight"], a[p + "ln_2.bias"], m.eps)
            f = _gelu(mv(a[p + "mlp.c_fc.weight"], h, a[p + "mlp.c_fc.bias"]))  # (4C,)
            x = x + mv(a[p + "mlp.c_proj.weight"], f, a[p + "mlp.c_proj.bias"])
        h = _layernorm(x, a["ln_f.weight"], a["ln_f.bias"], m.eps)
        self.tokens.append(token)
        return mv(a["wte.weight"], h, np.zeros(m.V, m.dtype))         # (V,)


def _layernorm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    """One row (C,), as layernorm_forward computes it: statistics in float64, rounded once."""
    x64 = x.astype(np.float64)
    mean = x64.mean()
    rstd = 1.0 / math.sqrt(((x64 - mean) ** 2).mean() + eps)
    return ((x64 - mean) * rstd * w + b).astype(x.dtype)


def _gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh form (as gelu_forward)."""
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi).astype(x.dtype) * (x + 0.044715 * x ** 3)))

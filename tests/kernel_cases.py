"""One valid call of every kernel in kernels.KERNELS, built from sizes, a dtype and an RNG, shared by
the tests that treat the kernels alike (test_canary, test_properties, test_threads).

A Case holds the call's arrays by name, the names of those the kernel writes (`written`: its
output buffers and the arrays it updates in place), the keyword hyper-parameters, and how to call
the kernel. Outputs start filled with NaN, so a backend that leaves an element unwritten differs
from the reference. Shape letters: N rows, V vocabulary, C in and OC out channels, E embedding
width, K indices per bag, P parameters.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from fasttrain import kernels as fk
from fasttrain.kernels import KERNELS


@dataclasses.dataclass
class Case:
    kernel: str
    arrays: dict[str, np.ndarray]
    written: tuple[str, ...]
    call: object  # (backend, arrays) -> the kernel's return value
    hyper: dict = dataclasses.field(default_factory=dict)

    def copy(self) -> "Case":
        return dataclasses.replace(self, arrays={k: a.copy() for k, a in self.arrays.items()})

    def run(self, backend: str, arrays: dict[str, np.ndarray] | None = None):
        return self.call(backend, self.arrays if arrays is None else arrays, **self.hyper)


def _nan(shape, dtype):
    return np.full(shape, np.nan, dtype=dtype)


def make_case(kernel: str, rng: np.random.Generator, dtype, n: int, m: int, k: int = 3,
              **hyper) -> Case:
    """A valid call of `kernel` with sizes n (rows), m (columns: V, C or E) and k (OC, V of an
    embedding table, or K per bag)."""
    dtype = np.dtype(dtype)

    def real(*shape):
        return rng.standard_normal(shape).astype(dtype)

    if kernel == "softmax_cross_entropy":
        targets = rng.integers(0, m, n)
        targets[rng.random(n) < 0.2] = -100  # some rows ignored
        return Case(kernel, {"logits": real(n, m), "targets": targets, "out": _nan((n, m), dtype)},
                    ("out",), lambda b, a, **h: fk.softmax_cross_entropy(
                        a["logits"], a["targets"], out=a["out"], backend=b, **h), hyper)
    if kernel == "linear_forward":
        return Case(kernel, {"x": real(n, m), "W": real(k, m), "b": real(k), "out": _nan((n, k), dtype)},
                    ("out",), lambda b, a, **h: fk.linear_forward(
                        a["x"], a["W"], a["b"], out=a["out"], backend=b), hyper)
    if kernel == "linear_backward":
        acc = hyper.pop("accumulate", False)
        init = real if acc else (lambda *shape: _nan(shape, dtype))
        arrays = {"x": real(n, m), "W": real(k, m), "dy": real(n, k), "dx": _nan((n, m), dtype),
                  "dW": init(k, m), "db": init(k)}
        return Case(kernel, arrays, ("dx", "dW", "db"), lambda b, a, **h: fk.linear_backward(
            a["x"], a["W"], a["dy"], dx=a["dx"], dW=a["dW"], db=a["db"], accumulate=acc,
            backend=b), hyper)
    if kernel == "linear_cross_entropy":  # x (n, m), W (V, m) with V = max(k, 1); chunks of 2 rows
        acc = hyper.pop("accumulate", False)
        V = max(k, 1)
        init = real if acc else (lambda *shape: _nan(shape, dtype))
        targets = rng.integers(0, V, n)
        targets[rng.random(n) < 0.2] = -100
        arrays = {"x": real(n, m), "W": real(V, m), "b": real(V), "targets": targets,
                  "dx": _nan((n, m), dtype), "dW": init(V, m), "db": init(V)}
        return Case(kernel, arrays, ("dx", "dW", "db"), lambda b, a, **h: fk.linear_cross_entropy(
            a["x"], a["W"], a["targets"], a["b"], dx=a["dx"], dW=a["dW"], db=a["db"],
            accumulate=acc, chunk_rows=2, backend=b, **h), hyper)
    if kernel in ("embedding_forward", "embedding_bag_forward"):
        bag = kernel == "embedding_bag_forward"
        V = max(k, 1)
        idx = rng.integers(0, V, (n, 3) if bag else (n,))
        fn = getattr(fk, kernel)
        return Case(kernel, {"idx": idx, "W": real(V, m), "out": _nan((n, m), dtype)}, ("out",),
                    lambda b, a, **h: fn(a["idx"], a["W"], out=a["out"], backend=b), hyper)
    if kernel in ("embedding_backward", "embedding_bag_backward"):
        bag = kernel == "embedding_bag_backward"
        acc = hyper.pop("accumulate", False)
        V = max(k, 1)
        idx = rng.integers(0, V, (n, 3) if bag else (n,))
        fn = getattr(fk, kernel)
        dW = real(V, m) if acc else _nan((V, m), dtype)
        return Case(kernel, {"idx": idx, "dout": real(n, m), "dW": dW}, ("dW",),
                    lambda b, a, **h: fn(a["idx"], a["dout"], a["dW"], accumulate=acc, backend=b),
                    hyper)
    if kernel in ("tanh_forward", "gelu_forward"):
        fn = getattr(fk, kernel)
        return Case(kernel, {"x": 3 * real(n, m), "out": _nan((n, m), dtype)}, ("out",),
                    lambda b, a, **h: fn(a["x"], out=a["out"], backend=b), hyper)
    if kernel in ("tanh_backward", "gelu_backward"):
        fn = getattr(fk, kernel)
        first = np.tanh(real(n, m)) if kernel == "tanh_backward" else 3 * real(n, m)
        return Case(kernel, {"x": first, "dy": real(n, m), "out": _nan((n, m), dtype)}, ("out",),
                    lambda b, a, **h: fn(a["x"], a["dy"], out=a["out"], backend=b), hyper)
    if kernel == "layernorm_forward":  # x (n, m): n rows of C = m channels
        hyper = {"eps": 1e-5, **hyper}
        arrays = {"x": real(n, m), "weight": real(m), "bias": real(m), "out": _nan((n, m), dtype),
                  "mean": _nan((n,), dtype), "rstd": _nan((n,), dtype)}
        return Case(kernel, arrays, ("out", "mean", "rstd"), lambda b, a, **h: fk.layernorm_forward(
            a["x"], a["weight"], a["bias"], out=a["out"], mean=a["mean"], rstd=a["rstd"],
            backend=b, **h), hyper)
    if kernel == "layernorm_backward":  # mean and rstd those of x, as the forward saves them
        acc = hyper.pop("accumulate", False)
        init = real if acc else (lambda *shape: _nan(shape, dtype))
        x = real(n, m)
        _, mean, rstd = fk.layernorm_forward(x, real(m), real(m), backend="numpy")
        arrays = {"x": x, "weight": real(m), "mean": mean, "rstd": rstd, "dy": real(n, m),
                  "dx": _nan((n, m), dtype), "dweight": init(m), "dbias": init(m)}
        return Case(kernel, arrays, ("dx", "dweight", "dbias"), lambda b, a, **h: fk.layernorm_backward(
            a["x"], a["weight"], a["mean"], a["rstd"], a["dy"], dx=a["dx"], dweight=a["dweight"],
            dbias=a["dbias"], accumulate=acc, backend=b), hyper)
    if kernel == "adamw_step":
        hyper = {"step": 3, "lr": 1e-2, "weight_decay": 0.1, **hyper}
        arrays = {"param": real(n, m), "grad": real(n, m), "m": 0.1 * real(n, m),
                  "v": np.abs(0.1 * real(n, m))}
        return Case(kernel, arrays, ("param", "m", "v"), lambda b, a, **h: fk.adamw_step(
            a["param"], a["grad"], a["m"], a["v"], backend=b, **h), hyper)
    if kernel == "sgd_step":
        hyper = {"lr": 1e-2, "momentum": 0.9, "weight_decay": 0.1, **hyper}
        arrays = {"param": real(n, m), "grad": real(n, m), "buf": real(n, m)}
        # with momentum 0, buf is neither read nor written (sgd_step's docstring)
        return Case(kernel, arrays, ("param", "buf") if hyper["momentum"] else ("param",), lambda b, a, **h: fk.sgd_step(
            a["param"], a["grad"], a["buf"], backend=b, **h), hyper)
    if kernel == "sum_of_squares":
        return Case(kernel, {"x": real(n, m)}, (), lambda b, a, **h: fk.sum_of_squares(
            a["x"], backend=b), hyper)
    if kernel in ("attention_forward", "attention_backward"):
        # B = 2 sequences of T = n tokens, 1 + k % 3 heads of m channels; the backward's out and
        # lse come from the same backend's forward, as in a model
        hyper.pop("accumulate", None)  # dqkv is overwritten; test_canary offers it to every *_backward
        hyper = {"causal": True, "scale": None, **hyper}
        B, T, nh = 2, n, 1 + k % 3
        C = nh * m
        if kernel == "attention_forward":
            arrays = {"qkv": real(B, T, 3 * C), "out": _nan((B, T, C), dtype),
                      "lse": _nan((B, nh, T), dtype)}
            return Case(kernel, arrays, ("out", "lse"), lambda b, a, **h: fk.attention_forward(
                a["qkv"], nh, out=a["out"], lse=a["lse"], backend=b, **h), hyper)

        def backward(b, a, **h):
            out, lse = fk.attention_forward(a["qkv"], nh, backend=b, **h)
            return fk.attention_backward(a["qkv"], out, lse, a["dout"], nh, dqkv=a["dqkv"],
                                         backend=b, **h)
        arrays = {"qkv": real(B, T, 3 * C), "dout": real(B, T, C), "dqkv": _nan((B, T, 3 * C), dtype)}
        return Case(kernel, arrays, ("dqkv",), backward, hyper)
    raise KeyError(f"no case for kernel {kernel!r}")


missing = set(KERNELS) - {
    "softmax_cross_entropy", "linear_forward", "linear_backward", "linear_cross_entropy",
    "embedding_forward",
    "embedding_bag_forward", "embedding_backward", "embedding_bag_backward", "tanh_forward",
    "gelu_forward", "tanh_backward", "gelu_backward", "adamw_step", "sgd_step", "sum_of_squares",
    "layernorm_forward", "layernorm_backward", "attention_forward", "attention_backward"}
assert not missing, f"kernel_cases.py has no case for {sorted(missing)}: add one"

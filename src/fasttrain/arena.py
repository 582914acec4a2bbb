"""The parameter arena: every parameter of a model in one contiguous buffer, each a named view.

    arena = Arena()
    arena.add("wte", (V, C))                  # weight-decayed (the default: matrices)
    arena.add("ln_f.bias", (C,), decay=False)  # not decayed (biases, norms)
    arena.build()
    W = arena["wte"]            # (V, C) view into arena.params: writing one writes the other
    dW = arena.grad("wte")      # (V, C) view into arena.grads, the same layout
    arena.zero_grad()           # one fill of one buffer

Then one kernel call updates the whole model (fasttrain.optim), the gradient norm is one pass
over one buffer (fasttrain.clip_grad_norm(arena.grads, ...)), and a checkpoint is a few arrays.

Layout: the decayed parameters first, in the order they were added, then the others; so weight
decay applies to one range, ``params[arena.decay]`` (torch users get the same effect with two
parameter groups). Each parameter starts at a multiple of 64 bytes (a cache line), the buffer
too; the gaps between parameters are zeros in params and grads, belong to no view, and stay
zero under AdamW and SGD (zero gradient, zero state).
"""
from __future__ import annotations

import math

import numpy as np

ALIGN_BYTES = 64  # each view starts on a cache line: aligned SIMD loads, no line shared by two


class Arena:
    """Named parameter views over one contiguous buffer, and gradient views of the same layout.

    Declare with add(), allocate with build() (zeros), then index by name. Shapes are the
    parameter's own, e.g. (OC, C) for a linear layer's weight as in torch.nn.Linear.
    """

    def __init__(self, dtype=np.float32):
        dtype = np.dtype(dtype)
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"Arena dtype must be float32 or float64, got {dtype}")
        self.dtype = dtype
        self._declared: dict[str, tuple[tuple[int, ...], bool]] = {}  # name -> (shape, decay)
        self._spans: dict[str, slice] | None = None  # name -> span of the flat buffers, once built
        self._params: np.ndarray | None = None
        self._grads: np.ndarray | None = None
        self._decay_size = 0

    # -- declaring ------------------------------------------------------------------------------
    def add(self, name: str, shape, *, decay: bool = True) -> None:
        """Declare parameter `name` of `shape` (an int or a tuple of ints >= 0). decay=False keeps
        it out of weight decay (biases, LayerNorm gains). Only before build()."""
        if self._spans is not None:
            raise RuntimeError(f"cannot add {name!r}: the arena is already built")
        if not isinstance(name, str) or not name:
            raise TypeError(f"parameter name must be a non-empty str, got {name!r}")
        if name in self._declared:
            raise ValueError(f"parameter {name!r} is already in the arena")
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0
                   for d in shape):
            raise ValueError(f"shape of {name!r} must be integers >= 0, got {shape}")
        if not isinstance(decay, (bool, np.bool_)):
            raise TypeError(f"decay must be True or False, got {decay!r}")
        self._declared[name] = (tuple(int(d) for d in shape), bool(decay))

    def build(self) -> Arena:
        """Allocate params and grads (zeros) and lay the views out; returns the arena."""
        if self._spans is not None:
            raise RuntimeError("the arena is already built")
        align = ALIGN_BYTES // self.dtype.itemsize  # in elements
        spans, offset = {}, 0
        for decayed in (True, False):
            for name, (shape, decay) in self._declared.items():
                if decay is decayed:
                    size = math.prod(shape)
                    spans[name] = slice(offset, offset + size)
                    offset = -(-(offset + size) // align) * align
            if decayed:
                self._decay_size = offset
        self._params = _aligned_zeros(offset, self.dtype)  # (P,)
        self._grads = _aligned_zeros(offset, self.dtype)   # (P,)
        self._spans = spans
        return self

    # -- using ----------------------------------------------------------------------------------
    @property
    def params(self) -> np.ndarray:
        """(P,) every parameter, contiguous, 64-byte aligned."""
        self._require_built()
        return self._params

    @property
    def grads(self) -> np.ndarray:
        """(P,) every gradient, in the layout of params."""
        self._require_built()
        return self._grads

    def __getitem__(self, name: str) -> np.ndarray:
        """The parameter's view into params, in its shape."""
        return self.params[self.span(name)].reshape(self.shape(name))

    def grad(self, name: str) -> np.ndarray:
        """The parameter's gradient: a view into grads, in its shape."""
        return self.grads[self.span(name)].reshape(self.shape(name))

    def span(self, name: str) -> slice:
        """Where parameter `name` lives in the flat buffers: params[span] is it, flattened."""
        self._require_built()
        self._entry(name)
        return self._spans[name]

    def shape(self, name: str) -> tuple[int, ...]:
        return self._entry(name)[0]

    def decays(self, name: str) -> bool:
        """Whether parameter `name` is in the weight-decayed range."""
        return self._entry(name)[1]

    @property
    def names(self) -> tuple[str, ...]:
        """The parameter names, in the order they were added."""
        return tuple(self._declared)

    @property
    def size(self) -> int:
        """P: the length of the flat buffers, gaps included."""
        return self.params.shape[0]

    @property
    def num_params(self) -> int:
        """The number of parameters, gaps excluded."""
        return sum(math.prod(shape) for shape, _ in self._declared.values())

    @property
    def decay_size(self) -> int:
        """params[:decay_size] holds every decayed parameter, and no other."""
        self._require_built()
        return self._decay_size

    @property
    def decay(self) -> slice:
        """The weight-decayed range: slice(0, decay_size)."""
        return slice(0, self.decay_size)

    @property
    def built(self) -> bool:
        return self._spans is not None

    def layout(self) -> list[list]:
        """[name, shape, decay] of every parameter, in order: JSON-ready, what a checkpoint
        records and must match to be loaded into this arena."""
        return [[name, list(shape), decay] for name, (shape, decay) in self._declared.items()]

    def zero_grad(self) -> None:
        """grads = 0, in one pass over one buffer."""
        self.grads.fill(0)

    def __contains__(self, name: object) -> bool:
        return name in self._declared

    def __len__(self) -> int:
        return len(self._declared)

    def __repr__(self) -> str:
        state = f"P={self.size}, decay_size={self.decay_size}" if self.built else "not built"
        return f"Arena({len(self)} parameters, {self.num_params} values, {self.dtype}, {state})"

    def _entry(self, name: str) -> tuple[tuple[int, ...], bool]:
        try:
            return self._declared[name]
        except KeyError:
            raise KeyError(f"no parameter {name!r} in the arena") from None

    def _require_built(self) -> None:
        if self._spans is None:
            raise RuntimeError("the arena is not built yet: call build() after the add()s")


def _aligned_zeros(n: int, dtype: np.dtype) -> np.ndarray:
    """(n,) zeros whose first element sits on an ALIGN_BYTES boundary."""
    raw = np.zeros(n * dtype.itemsize + ALIGN_BYTES, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGN_BYTES
    return raw[start:start + n * dtype.itemsize].view(dtype)

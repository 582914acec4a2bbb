"""Validation and dispatch shared by the elementwise kernels' fronts (tanh.py, gelu.py):
x of any shape; a backward takes the saved forward tensor and dy of the same shape and dtype;
out may be the input (forward) or dy (backward) exactly, for in-place use."""
from __future__ import annotations

from fasttrain.kernels import _checks
from fasttrain.kernels._backends import implementation


def forward(kernel: str, x, out, backend):
    x = _checks.float_input("x", x)
    out = _checks.output("out", out, x.shape, x.dtype, {"x": x}, may_be=x)
    return implementation(kernel, backend)(x, out)


def backward(kernel: str, saved_name: str, saved, dy, out, backend):
    saved = _checks.float_input(saved_name, saved)
    dy = _checks.float_input("dy", dy)
    _checks.same_layout("dy", dy, saved_name, saved)
    out = _checks.output("out", out, dy.shape, dy.dtype, {saved_name: saved, "dy": dy}, may_be=dy)
    return implementation(kernel, backend)(saved, dy, out)

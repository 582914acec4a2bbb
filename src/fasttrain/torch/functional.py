"""fasttrain's fused kernels as PyTorch operators with autograd.

Each kernel is a ``torch.library.custom_op`` (namespace ``fasttrain``) with its backward
registered by ``register_autograd`` and its shapes by ``register_fake``. A custom op rather than a
bare ``torch.autograd.Function``: ``torch.compile`` then keeps each one as a single opaque node of
its graph (Dynamo does not trace into the numpy code, which it could not compile), and the rest of
the model around it is still compiled (tests/test_torch_face.py compiles a model that calls them).

Memory: a contiguous CPU float32/float64 tensor and ``tensor.numpy()`` share their storage, so the
kernels read the inputs and write the outputs in place of PyTorch's own buffers, with no copy
either way. A non-contiguous input (a transposed or sliced view) is copied once by
``.contiguous()``. Other dtypes (float16, bfloat16, integers for floats) and other devices are
refused with an error naming them.

Shape letters: N rows, V vocabulary (classes), C channels; attention: B sequences of T tokens,
n_head heads of hs = C / n_head channels.

First derivatives only: the backward of each op is made of the saved gradients (the losses) or of
another op (layer norm, GELU, attention) that has no backward of its own. The losses' backward
refuses create_graph=True (their saved gradients carry no graph, so a second derivative would
miss terms silently); the other ops' gradients, differentiated again, meet PyTorch's own error
("no autograd formula was registered").
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from fasttrain import kernels as K

_FLOATS = (torch.float32, torch.float64)
_NOT_YET = "is not supported by fasttrain.torch yet"


# ---------------------------------------------------------------------------------------------
# tensors <-> numpy, checked

def _check_float(name: str, t, dtype=None) -> None:
    """t must be a CPU float32/float64 tensor (of `dtype` when given); the error names it."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cpu":
        raise ValueError(f"{name} is on device {t.device}: fasttrain's kernels run on CPU "
                         "tensors only (move it with .cpu())")
    if t.dtype not in _FLOATS:
        raise TypeError(f"{name} has dtype {t.dtype}: fasttrain's kernels take float32 or "
                        "float64 tensors")
    if dtype is not None and t.dtype != dtype:
        raise TypeError(f"{name} has dtype {t.dtype}, but the first input is {dtype}: they must "
                        "be the same")


def _check_index(name: str, t, N: int) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cpu":
        raise ValueError(f"{name} is on device {t.device}: fasttrain's kernels run on CPU "
                         "tensors only (move it with .cpu())")
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class indices, got dtype {t.dtype} "
                        "(class probabilities as targets are not supported)")
    if t.shape != (N,):
        raise ValueError(f"{name} must have shape ({N},) to match the input's rows, got "
                         f"{tuple(t.shape)}")


def _np(t: Tensor):
    """The tensor's memory as a numpy array: no copy when t is contiguous, one otherwise."""
    return t.detach().contiguous().numpy()


def _empty(like: Tensor) -> Tensor:
    return like.new_empty((0,))


def _reduction(reduction) -> str:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return reduction


def _unsupported(**given) -> None:
    """Raise for the first torch argument given a value other than its default."""
    for name, (value, default) in given.items():
        if value is not default and value != default:
            raise NotImplementedError(f"{name}={value!r} {_NOT_YET} (only {name}={default!r})")


# ---------------------------------------------------------------------------------------------
# cross-entropy: the loss and its gradient in one pass over the logits (the forward); the
# backward only scales the saved gradient

@torch.library.custom_op("fasttrain::cross_entropy", mutates_args=())
def _cross_entropy(logits: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int,
                   reduction: str, label_smoothing: float, lse_square_scale: float,
                   softcap: float | None) -> tuple[Tensor, Tensor]:
    # logits (N, V), target (N,), weight (V,) or None -> loss () or (N,),
    # dlogits (N, V) = d sum-or-mean / d logits
    loss, dlogits = K.softmax_cross_entropy(
        _np(logits), _np(target), ignore_index=ignore_index, reduction=reduction,
        label_smoothing=label_smoothing, weight=None if weight is None else _np(weight),
        lse_square_scale=lse_square_scale, softcap=softcap)
    loss = torch.from_numpy(loss) if reduction == "none" else torch.tensor(loss, dtype=logits.dtype)
    return loss, torch.from_numpy(dlogits)


@_cross_entropy.register_fake
def _(logits, target, weight, ignore_index, reduction, label_smoothing, lse_square_scale,
      softcap):
    N = logits.shape[0]
    return logits.new_empty((N,) if reduction == "none" else ()), torch.empty_like(logits)


def _cross_entropy_setup(ctx, inputs, output):
    ctx.reduction = inputs[4]
    ctx.save_for_backward(output[1])
    ctx.mark_non_differentiable(output[1])


def _cross_entropy_backward(ctx, grad_loss, _grad_dlogits):
    _first_derivative_only("cross_entropy")
    (dlogits,) = ctx.saved_tensors  # (N, V)
    # "none": row i's loss depends on row i of the logits only, so row i of the gradient of
    # the sum is that row's own gradient, and a per-row upstream gradient scales it exactly
    g = grad_loss[:, None] if ctx.reduction == "none" else grad_loss
    return dlogits * g, None, None, None, None, None, None, None


_cross_entropy.register_autograd(_cross_entropy_backward, setup_context=_cross_entropy_setup)


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                  size_average=None, ignore_index: int = -100, reduce=None,
                  reduction: str = "mean", label_smoothing: float = 0.0, *,
                  lse_square_scale: float = 0.0, softcap: float | None = None) -> Tensor:
    """``torch.nn.functional.cross_entropy`` on fasttrain's fused kernel, same signature, plus
    the z-loss and the logit soft cap.

    input: (N, V) logits, float32 or float64; target: (N,) integer class indices, each in
    [0, V) or ignore_index; weight: (V,) class weights of input's dtype (finite, >= 0) or None,
    as torch's (a row's loss is scaled by weight[target], "mean" divides by the kept rows'
    weight sum); no gradient flows to it (one that requires grad is refused). reduction
    "mean" (over the rows not ignored), "sum" or "none" (the (N,) row losses; their backward
    takes any per-row upstream gradient).
    lse_square_scale: the z-loss (PaLM): each kept row adds lse_square_scale * logsumexp(z)^2;
    "mean" divides it by the number of kept rows. softcap: None, or c > 0: the logits become
    z = c * tanh(logits / c) first (Gemma 2). Both equal the PyTorch formulas.
    The forward computes the loss and its gradient in one pass over the logits and keeps the
    gradient (N, V) for the backward, which only scales it. Not supported (NotImplementedError
    naming them): the deprecated ``size_average`` / ``reduce``, logits of other than 2
    dimensions, class probabilities as targets.
    """
    _unsupported(size_average=(size_average, None), reduce=(reduce, None))
    _check_float("input", input)
    if input.dim() != 2:
        raise NotImplementedError(f"input of shape {tuple(input.shape)} {_NOT_YET}: pass (N, V) "
                                  "logits (reshape (B, T, V) to (B*T, V))")
    _check_index("target", target, input.shape[0])
    _check_class_weight("weight", weight, input)
    loss, _ = _cross_entropy(input, target, weight, int(ignore_index), _reduction(reduction),
                             float(label_smoothing), float(lse_square_scale),
                             None if softcap is None else float(softcap))
    return loss


# ---------------------------------------------------------------------------------------------
# linear + cross-entropy: the head's logits never whole; every gradient computed in the forward
# (as Liger Kernel's fused linear cross-entropy does), the backward scales them

def _run_linear_cross_entropy(x, weight, target, bias, ce_weight, ignore_index, reduction,
                              label_smoothing, lse_square_scale, softcap, need_dx, need_db,
                              grad_rows=None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The kernel on the tensors' memory: loss () or (N,), dx (N, C) or (0,), dW (V, C), db (V,)
    or (0,), the gradients of the loss (for "none": of sum_i grad_rows[i] * loss_i, grad_rows
    None meaning all 1)."""
    loss, dx, dW, db = K.linear_cross_entropy(
        _np(x), _np(weight), _np(target), None if bias is None else _np(bias),
        ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing,
        weight=None if ce_weight is None else _np(ce_weight), lse_square_scale=lse_square_scale,
        softcap=softcap, grad_rows=None if grad_rows is None else _np(grad_rows),
        dx=None if need_dx else False, db=None if need_db and bias is not None else False)
    loss = torch.from_numpy(loss) if reduction == "none" else torch.tensor(loss, dtype=x.dtype)
    return (loss, _empty(x) if dx is None else torch.from_numpy(dx), torch.from_numpy(dW),
            _empty(x) if db is None else torch.from_numpy(db))


@torch.library.custom_op("fasttrain::linear_cross_entropy", mutates_args=())
def _linear_cross_entropy(x: Tensor, weight: Tensor, target: Tensor, bias: Tensor | None,
                          ce_weight: Tensor | None, ignore_index: int, reduction: str,
                          label_smoothing: float, lse_square_scale: float,
                          softcap: float | None, need_dx: bool, need_db: bool
                          ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    # x (N, C), weight (V, C), target (N,), bias (V,) or None, ce_weight (V,) or None
    # -> loss () or (N,), dx, dW, db: the gradients of the loss (for "none": of the sum of the
    # row losses)
    return _run_linear_cross_entropy(x, weight, target, bias, ce_weight, ignore_index,
                                     reduction, label_smoothing, lse_square_scale, softcap,
                                     need_dx, need_db)


@_linear_cross_entropy.register_fake
def _(x, weight, target, bias, ce_weight, ignore_index, reduction, label_smoothing,
      lse_square_scale, softcap, need_dx, need_db):
    return (x.new_empty((x.shape[0],) if reduction == "none" else ()),
            torch.empty_like(x) if need_dx else _empty(x), torch.empty_like(weight),
            torch.empty_like(bias) if need_db and bias is not None else _empty(x))


@torch.library.custom_op("fasttrain::linear_cross_entropy_rows_backward", mutates_args=())
def _linear_cross_entropy_rows_backward(
        x: Tensor, weight: Tensor, target: Tensor, bias: Tensor | None, ce_weight: Tensor | None,
        grad_rows: Tensor, ignore_index: int, label_smoothing: float, lse_square_scale: float,
        softcap: float | None, need_dx: bool, need_db: bool) -> tuple[Tensor, Tensor, Tensor]:
    # reduction="none" under an upstream gradient that differs per row: the gradients of
    # sum_i grad_rows[i] * loss_i, a second pass of the kernel (the forward's were of the sum)
    _, dx, dW, db = _run_linear_cross_entropy(x, weight, target, bias, ce_weight, ignore_index,
                                              "none", label_smoothing, lse_square_scale,
                                              softcap, need_dx, need_db, grad_rows)
    return dx, dW, db


@_linear_cross_entropy_rows_backward.register_fake
def _(x, weight, target, bias, ce_weight, grad_rows, ignore_index, label_smoothing,
      lse_square_scale, softcap, need_dx, need_db):
    return (torch.empty_like(x) if need_dx else _empty(x), torch.empty_like(weight),
            torch.empty_like(bias) if need_db and bias is not None else _empty(x))


def _linear_cross_entropy_setup(ctx, inputs, output):
    x, weight, target, bias, ce_weight, ignore_index, reduction, *options = inputs
    ctx.has_bias = bias is not None
    ctx.reduction = reduction
    ctx.options = (ignore_index, *options[:3])  # label_smoothing, lse_square_scale, softcap
    # for "none" the inputs too, for a second pass (references to them: no copy)
    ctx.save_for_backward(*output[1:], *((x, weight, target, bias, ce_weight)
                                         if reduction == "none" else ()))
    ctx.mark_non_differentiable(*output[1:])


def _linear_cross_entropy_backward(ctx, grad_loss, *_grads_of_gradients):
    _first_derivative_only("linear_cross_entropy")
    dx, dW, db, *inputs = ctx.saved_tensors
    need = ctx.needs_input_grad
    if ctx.reduction == "none":
        # the saved gradients are those of the sum: right, once scaled, when every row has the
        # same upstream gradient (loss.sum() or loss.mean() after); otherwise one more pass
        grad_loss = grad_loss.reshape(-1)  # (N,)
        if torch.compiler.is_compiling() or bool((grad_loss != grad_loss[:1]).any()):
            dx, dW, db = _linear_cross_entropy_rows_backward(
                *inputs, grad_loss.contiguous(), *ctx.options, need[0], ctx.has_bias and need[3])
            grad_loss = None
        elif grad_loss.numel():
            grad_loss = grad_loss[0]  # the one upstream value, ()
        else:
            grad_loss = None  # no rows: the saved gradients are zeros
    if grad_loss is None or (not torch.compiler.is_compiling() and grad_loss.item() == 1.0):
        g = None  # loss.backward(): hand the saved gradients over, no pass over dW (V, C)
    else:
        g = grad_loss
    scale = (lambda t: t) if g is None else (lambda t: t * g)
    return (scale(dx) if need[0] else None, scale(dW) if need[1] else None, None,
            scale(db) if ctx.has_bias and need[3] else None,
            None, None, None, None, None, None, None, None)


_linear_cross_entropy.register_autograd(_linear_cross_entropy_backward,
                                        setup_context=_linear_cross_entropy_setup)


def linear_cross_entropy(x: Tensor, weight: Tensor, target: Tensor, bias: Tensor | None = None,
                         *, ignore_index: int = -100, reduction: str = "mean",
                         label_smoothing: float = 0.0, ce_weight: Tensor | None = None,
                         lse_square_scale: float = 0.0, softcap: float | None = None) -> Tensor:
    """``F.cross_entropy(F.linear(x, weight, bias), target, ...)`` without the (N, V) logits.

    x: (N, C) or (..., C), float32 or float64; weight: (V, C) as torch.nn.Linear stores it (a
    tied embedding's weight works as is); target: x.shape[:-1] integer class indices; bias:
    (V,) or None. The forward runs the head and the loss chunk by chunk of rows and computes
    the gradients of x, weight and bias at once (only of those that require grad; weight's
    always, even under torch.no_grad(): the kernel has no loss-only mode); the backward
    scales them by the upstream gradient (no pass at all when it is 1, as after
    loss.backward()). So the forward holds dx (N, C) and dW (V, C) until the backward, instead
    of the logits (N, V) and their gradient.

    reduction: "mean", "sum" or "none" (the row losses, of x.shape[:-1]). With "none" the
    forward's gradients are those of the summed row losses; a backward whose upstream
    gradient is the same for every row (loss.sum(), loss.mean()) scales them, and one that
    differs per row (loss.backward(g), per-token weights) runs the kernel a second time with
    those row gradients, so dW and db are exact either way (under torch.compile it always
    runs the second pass). label_smoothing in [0, 1].
    The options of cross_entropy, named as Liger Kernel names them: ce_weight, the (V,) class
    weights (weight is the layer's), lse_square_scale (the z-loss) and softcap (applied to
    the logits x @ weight.T + bias).
    """
    _check_float("x", x)
    dtype = x.dtype
    _check_float("weight", weight, dtype)
    if bias is not None:
        _check_float("bias", bias, dtype)
    reduction = _reduction(reduction)
    if x.dim() < 1:
        raise ValueError("x must have a last axis of C channels, got a 0-d tensor")
    if weight.dim() != 2 or weight.shape[1] != x.shape[-1]:
        raise ValueError(f"weight must have shape (V, C) = (V, {x.shape[-1]}) to match x "
                         f"{tuple(x.shape)}, got {tuple(weight.shape)}")
    if not isinstance(target, Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
    if target.shape != x.shape[:-1]:
        raise ValueError(f"target must have shape {tuple(x.shape[:-1])} (x's without its last "
                         f"axis), got {tuple(target.shape)}")
    x2 = x.reshape(-1, x.shape[-1])  # (N, C)
    _check_index("target", target.reshape(-1), x2.shape[0])
    _check_class_weight("ce_weight", ce_weight, x)
    grad = torch.is_grad_enabled()
    loss, *_ = _linear_cross_entropy(
        x2, weight, target.reshape(-1), bias, ce_weight, int(ignore_index), reduction,
        float(label_smoothing), float(lse_square_scale),
        None if softcap is None else float(softcap), grad and x.requires_grad,
        grad and bias is not None and bias.requires_grad)
    return loss.view(x.shape[:-1]) if reduction == "none" else loss


def _check_class_weight(name: str, w, first: Tensor) -> None:
    """Class weights: None, or a (V,) tensor of the input's dtype with no gradient wanted."""
    if w is None:
        return
    _check_float(name, w, first.dtype)
    if w.requires_grad and torch.is_grad_enabled():
        raise NotImplementedError(f"a gradient with respect to the class weights ({name} "
                                  f"requires grad) {_NOT_YET}: pass {name}.detach()")


def _first_derivative_only(op: str) -> None:
    """The backwards are made of saved gradients and of ops without a backward of their own:
    a graph of the backward (create_graph=True) would miss the second-order terms silently."""
    if torch.is_grad_enabled() and not torch.compiler.is_compiling():
        raise RuntimeError(f"fasttrain.torch.{op} has first derivatives only: backward with "
                           "create_graph=True (a gradient of a gradient) is not supported")


# ---------------------------------------------------------------------------------------------
# layer norm: forward keeps the row statistics; backward is a second op

@torch.library.custom_op("fasttrain::layer_norm", mutates_args=())
def _layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float
                ) -> tuple[Tensor, Tensor, Tensor]:
    # x (..., C), weight and bias (C,) -> y (..., C), mean and rstd x.shape[:-1]
    y, mean, rstd = K.layernorm_forward(_np(x), _np(weight), _np(bias), eps=eps)
    return torch.from_numpy(y), torch.from_numpy(mean), torch.from_numpy(rstd)


@_layer_norm.register_fake
def _(x, weight, bias, eps):
    return torch.empty_like(x), x.new_empty(x.shape[:-1]), x.new_empty(x.shape[:-1])


@torch.library.custom_op("fasttrain::layer_norm_backward", mutates_args=())
def _layer_norm_backward(x: Tensor, weight: Tensor, mean: Tensor, rstd: Tensor, dy: Tensor
                         ) -> tuple[Tensor, Tensor, Tensor]:
    # -> dx (..., C), dweight (C,), dbias (C,)
    dx, dweight, dbias = K.layernorm_backward(_np(x), _np(weight), _np(mean), _np(rstd), _np(dy))
    return torch.from_numpy(dx), torch.from_numpy(dweight), torch.from_numpy(dbias)


@_layer_norm_backward.register_fake
def _(x, weight, mean, rstd, dy):
    return torch.empty_like(x), torch.empty_like(weight), torch.empty_like(weight)


def _layer_norm_setup(ctx, inputs, output):
    x, weight, _, _ = inputs
    ctx.save_for_backward(x, weight, output[1], output[2])
    ctx.mark_non_differentiable(output[1], output[2])


def _layer_norm_bwd(ctx, dy, _dmean, _drstd):
    x, weight, mean, rstd = ctx.saved_tensors
    dx, dweight, dbias = _layer_norm_backward(x, weight, mean, rstd, dy)
    need = ctx.needs_input_grad
    return dx if need[0] else None, dweight if need[1] else None, dbias if need[2] else None, None


_layer_norm.register_autograd(_layer_norm_bwd, setup_context=_layer_norm_setup)


def layer_norm(x: Tensor, normalized_shape, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """``torch.nn.functional.layer_norm`` over the last axis, on fasttrain's kernel.

    x: (..., C) float32 or float64; normalized_shape: (C,) (an int C too): normalizing over
    more than the last axis is not supported (NotImplementedError); weight, bias: (C,) or None
    (ones and zeros, with no gradient).
    """
    _check_float("x", x)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if len(shape) != 1:
        raise NotImplementedError(f"normalized_shape={shape} {_NOT_YET}: only the last axis, "
                                  "(C,)")
    if x.dim() < 1 or x.shape[-1] != shape[0]:
        raise ValueError(f"normalized_shape {shape} must be x's last axis, x has shape "
                         f"{tuple(x.shape)}")
    C = shape[0]
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None:
            _check_float(name, t, x.dtype)
            if tuple(t.shape) != (C,):
                raise ValueError(f"{name} must have shape ({C},), got {tuple(t.shape)}")
    weight = x.new_ones(C) if weight is None else weight
    bias = x.new_zeros(C) if bias is None else bias
    return _layer_norm(x, weight, bias, float(eps))[0]


# ---------------------------------------------------------------------------------------------
# GELU (tanh form)

@torch.library.custom_op("fasttrain::gelu", mutates_args=())
def _gelu(x: Tensor) -> Tensor:
    return torch.from_numpy(K.gelu_forward(_np(x)))


@_gelu.register_fake
def _(x):
    return torch.empty_like(x)


@torch.library.custom_op("fasttrain::gelu_backward", mutates_args=())
def _gelu_backward(x: Tensor, dy: Tensor) -> Tensor:
    return torch.from_numpy(K.gelu_backward(_np(x), _np(dy)))


@_gelu_backward.register_fake
def _(x, dy):
    return torch.empty_like(x)


def _gelu_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])


def _gelu_bwd(ctx, dy):
    (x,) = ctx.saved_tensors
    return _gelu_backward(x, dy)


_gelu.register_autograd(_gelu_bwd, setup_context=_gelu_setup)


def gelu(x: Tensor, approximate: str = "tanh") -> Tensor:
    """``torch.nn.functional.gelu(x, approximate="tanh")`` (GPT-2's GELU), elementwise, any
    shape. approximate="none" (the erf form, torch's default) is not supported: it raises
    NotImplementedError rather than silently computing the other function."""
    if approximate != "tanh":
        raise NotImplementedError(f"approximate={approximate!r} {_NOT_YET}: only the tanh form "
                                  "(approximate='tanh')")
    _check_float("x", x)
    return _gelu(x)


# ---------------------------------------------------------------------------------------------
# causal self-attention, flash-style: the forward keeps only the log-sum-exp of each row

@torch.library.custom_op("fasttrain::attention", mutates_args=())
def _attention(qkv: Tensor, n_head: int, causal: bool, scale: float) -> tuple[Tensor, Tensor]:
    # qkv (B, T, 3C) -> out (B, T, C), lse (B, n_head, T)
    out, lse = K.attention_forward(_np(qkv), n_head, causal=causal, scale=scale)
    return torch.from_numpy(out), torch.from_numpy(lse)


@_attention.register_fake
def _(qkv, n_head, causal, scale):
    B, T, C3 = qkv.shape
    return qkv.new_empty((B, T, C3 // 3)), qkv.new_empty((B, n_head, T))


@torch.library.custom_op("fasttrain::attention_backward", mutates_args=())
def _attention_backward(qkv: Tensor, out: Tensor, lse: Tensor, dout: Tensor, n_head: int,
                        causal: bool, scale: float) -> Tensor:
    return torch.from_numpy(K.attention_backward(_np(qkv), _np(out), _np(lse), _np(dout), n_head,
                                                 causal=causal, scale=scale))


@_attention_backward.register_fake
def _(qkv, out, lse, dout, n_head, causal, scale):
    return torch.empty_like(qkv)


def _attention_setup(ctx, inputs, output):
    ctx.n_head, ctx.causal, ctx.scale = inputs[1:]
    ctx.save_for_backward(inputs[0], *output)
    ctx.mark_non_differentiable(output[1])


def _attention_bwd(ctx, dout, _dlse):
    qkv, out, lse = ctx.saved_tensors
    return (_attention_backward(qkv, out, lse, dout, ctx.n_head, ctx.causal, ctx.scale),
            None, None, None)


_attention.register_autograd(_attention_bwd, setup_context=_attention_setup)


def attention(qkv: Tensor, n_head: int, *, is_causal: bool = True,
              scale: float | None = None) -> Tensor:
    """Multi-head self-attention on the packed layout nanoGPT's c_attn produces.

    qkv: (B, T, 3C) float32/float64, q, k and v side by side on the last axis, each n_head
    heads of hs = C / n_head channels. Returns (B, T, C), the heads side by side, ready for
    c_proj: the same as splitting qkv, F.scaled_dot_product_attention(q, k, v,
    is_causal=is_causal, scale=scale) and transposing back, with no copy on the way in or
    out. scale None is 1 / sqrt(hs).
    """
    _check_float("qkv", qkv)
    if qkv.dim() != 3 or qkv.shape[-1] % 3:
        raise ValueError(f"qkv must be (B, T, 3C), got shape {tuple(qkv.shape)}")
    if isinstance(n_head, bool) or not isinstance(n_head, int) or n_head < 1:
        raise ValueError(f"n_head must be a positive integer, got {n_head!r}")
    C = qkv.shape[-1] // 3
    if C == 0 or C % n_head:
        raise ValueError(f"n_head={n_head} must divide C={C} (qkv {tuple(qkv.shape)})")
    if not isinstance(is_causal, bool):
        raise TypeError(f"is_causal must be True or False, got {is_causal!r}")
    scale = 1.0 / math.sqrt(C // n_head) if scale is None else float(scale)
    return _attention(qkv, n_head, is_causal, scale)[0]


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask=None,
                                 dropout_p: float = 0.0, is_causal: bool = False,
                                 scale: float | None = None, enable_gqa: bool = False) -> Tensor:
    """``torch.nn.functional.scaled_dot_product_attention`` for self-attention, same
    signature and defaults (is_causal=False, as torch; pass is_causal=True for a decoder).

    query, key, value: (B, n_head, T, hs) each, one shape, float32 or float64. Returns
    (B, n_head, T, hs). The kernel takes q, k and v packed as (B, T, 3C); packing the three is
    one copy of them (the output comes back as a view, no copy): a model that makes q, k, v
    by splitting one c_attn projection should call attention(qkv, n_head) on it instead.
    Not supported (NotImplementedError naming them): attn_mask, dropout_p > 0, enable_gqa,
    and inputs of other than 4 dimensions or of different shapes (cross-attention, GQA).
    """
    _unsupported(attn_mask=(attn_mask, None), dropout_p=(dropout_p, 0.0),
                 enable_gqa=(enable_gqa, False))
    _check_float("query", query)
    _check_float("key", key, query.dtype)
    _check_float("value", value, query.dtype)
    if query.dim() != 4 or key.shape != query.shape or value.shape != query.shape:
        raise NotImplementedError(
            f"query {tuple(query.shape)}, key {tuple(key.shape)}, value {tuple(value.shape)}: "
            f"only self-attention on (B, n_head, T, hs) inputs of one shape {_NOT_YET}")
    B, H, T, hs = query.shape
    qkv = torch.stack([t.transpose(1, 2) for t in (query, key, value)], dim=2)  # the one copy
    qkv = qkv.view(B, T, 3 * H * hs)                               # (B, T, 3, H, hs) -> (B, T, 3C)
    scale = 1.0 / math.sqrt(hs) if scale is None else float(scale)
    out = attention(qkv, H, is_causal=is_causal, scale=scale)      # (B, T, C)
    return out.view(B, T, H, hs).transpose(1, 2)                   # (B, H, T, hs), a view

"""Bad input at the API surface: for each public kernel, a table of wrong arguments and the exact
exception type and message each gets, on every backend (the checks run in the shared front,
before any memory is touched, so every backend must agree), then the edge cases that are
accepted (zero-size arrays, read-only inputs, out= the input in place). The rules are the README's
"Rules for inputs".

Each row: (id, the call's arguments changed from a valid call, exception, message regex).
Arguments are built by functions, so that every row gets fresh arrays.
"""
import numpy as np
import pytest

from fasttrain import kernels as fk

F32, F64 = np.float32, np.float64
N, V, C, OC, E = 4, 5, 3, 2, 3


def rand(*shape, dtype=F32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def read_only(a):
    a.flags.writeable = False
    return a


def huge(rows, cols, dtype=F32):
    """A (rows, cols) view of one element: no memory, but the shape of a matrix past 2**31."""
    return np.broadcast_to(np.zeros(1, dtype), (rows, cols))


def overlapping(shape_a, shape_b, shift=1, dtype=F32):
    """Two arrays that share part of one buffer (b starts `shift` elements into a)."""
    buf = np.zeros(int(np.prod(shape_a)) + int(np.prod(shape_b)), dtype)
    return (buf[:int(np.prod(shape_a))].reshape(shape_a),
            buf[shift:shift + int(np.prod(shape_b))].reshape(shape_b))


def _ce_overlap():
    logits, out = overlapping((N, V), (N, V))
    return dict(logits=logits, out=out)


# ---------------------------------------------------------------------------------------------
# valid calls; each table row replaces some of these arguments

def ce_args():
    return dict(logits=rand(N, V), targets=np.array([0, 4, 2, -100]))


def lin_f_args():
    return dict(x=rand(N, C), W=rand(OC, C), b=rand(OC))


def lin_b_args():
    return dict(x=rand(N, C), W=rand(OC, C), dy=rand(N, OC))


def lce_args():
    return dict(x=rand(N, C), W=rand(V, C), targets=np.array([0, 4, 2, -100]), b=rand(V))


def emb_f_args():
    return dict(idx=np.array([0, 4, 1, 4]), W=rand(V, E))


def emb_b_args():
    return dict(idx=np.array([0, 4, 1, 4]), dout=rand(N, E), dW=np.zeros((V, E), F32))


def bag_f_args():
    return dict(idx=np.array([[0, 1], [4, 4], [2, 3], [1, 0]]), W=rand(V, E))


def bag_b_args():
    return dict(idx=np.array([[0, 1], [4, 4], [2, 3], [1, 0]]), dout=rand(N, E),
                dW=np.zeros((V, E), F32))


def act_f_args():
    return dict(x=rand(N, V))


def act_b_args(first):
    return lambda: {first: rand(N, V), "dy": rand(N, V)}


def ln_f_args():
    return dict(x=rand(N, C), weight=rand(C), bias=rand(C))


def ln_b_args():
    return dict(x=rand(N, C), weight=rand(C), mean=rand(N), rstd=np.abs(rand(N)), dy=rand(N, C))


def adamw_args():
    return dict(param=rand(N, V), grad=rand(N, V), m=np.zeros((N, V), F32),
                v=np.zeros((N, V), F32), step=1, lr=1e-3)


def sgd_args():
    return dict(param=rand(N, V), grad=rand(N, V), buf=np.zeros((N, V), F32), lr=1e-2,
                momentum=0.9)


def sos_args():
    return dict(x=rand(N, V))


def attn_f_args():
    return dict(qkv=rand(2, N, 3 * 4), n_head=2)


def attn_b_args():
    return dict(qkv=rand(2, N, 3 * 4), out=rand(2, N, 4), lse=rand(2, 2, N), dout=rand(2, N, 4),
                n_head=2)


def call(kernel, args, backend):
    args = dict(args)
    positional = {
        "softmax_cross_entropy": ("logits", "targets"), "linear_forward": ("x", "W"),
        "linear_backward": ("x", "W", "dy"), "linear_cross_entropy": ("x", "W", "targets"),
        "embedding_forward": ("idx", "W"),
        "embedding_bag_forward": ("idx", "W"), "embedding_backward": ("idx", "dout", "dW"),
        "embedding_bag_backward": ("idx", "dout", "dW"), "tanh_forward": ("x",),
        "gelu_forward": ("x",), "tanh_backward": ("y", "dy"), "gelu_backward": ("x", "dy"),
        "adamw_step": ("param", "grad", "m", "v"), "sgd_step": ("param", "grad", "buf"),
        "sum_of_squares": ("x",), "layernorm_forward": ("x", "weight", "bias"),
        "layernorm_backward": ("x", "weight", "mean", "rstd", "dy"),
        "attention_forward": ("qkv", "n_head"),
        "attention_backward": ("qkv", "out", "lse", "dout", "n_head")}[kernel]
    pos = [args.pop(name) for name in positional]
    return getattr(fk, kernel)(*pos, backend=backend, **args)


# ---------------------------------------------------------------------------------------------
# the tables: kernel -> (valid arguments, rows)

NOT_ARRAY = "must be a numpy.ndarray, got"
FLOAT = "must be float32 or float64, got"

TABLES = {
    "softmax_cross_entropy": (ce_args, [
        ("logits-None", lambda: dict(logits=None), TypeError, f"logits {NOT_ARRAY} NoneType"),
        ("logits-list", lambda: dict(logits=[[0.0] * V] * N), TypeError, f"logits {NOT_ARRAY} list"),
        ("logits-float16", lambda: dict(logits=rand(N, V).astype(np.float16)), TypeError,
         f"logits {FLOAT} float16"),
        ("logits-int", lambda: dict(logits=np.zeros((N, V), int)), TypeError, f"logits {FLOAT} int64"),
        ("logits-1d", lambda: dict(logits=rand(V)), ValueError, r"logits must be 2-D .*got shape \(5,\)"),
        ("logits-3d", lambda: dict(logits=rand(1, N, V)), ValueError, "logits must be 2-D"),
        ("no-classes", lambda: dict(logits=rand(N, 0)), ValueError, r"at least one class \(V >= 1\)"),
        ("targets-None", lambda: dict(targets=None), TypeError, f"targets {NOT_ARRAY} NoneType"),
        ("targets-float", lambda: dict(targets=np.zeros(N)), TypeError,
         "targets must have an integer dtype, got float64"),
        ("targets-short", lambda: dict(targets=np.zeros(N - 1, int)), ValueError,
         r"targets must have shape \(4,\) to match, got \(3,\)"),
        ("target-too-big", lambda: dict(targets=np.array([0, 5, 1, 1])), ValueError,
         r"targets\[1\] = 5 is outside \[0, 5\) and is not ignore_index \(-100\)"),
        ("target-negative", lambda: dict(targets=np.array([0, 1, -1, 1])), ValueError,
         r"targets\[2\] = -1 is outside \[0, 5\)"),
        ("target-uint64-huge", lambda: dict(targets=np.array([0, 2**63, 1, 1], np.uint64)),
         ValueError, r"targets\[1\] = 9223372036854775808 does not fit in int64"),
        ("out-read-only", lambda: dict(out=read_only(np.zeros((N, V), F32))), ValueError,
         "out is read-only"),
        ("out-shape", lambda: dict(out=np.zeros((N, V + 1), F32)), ValueError,
         r"out must have shape \(4, 5\), got \(4, 6\)"),
        ("out-dtype", lambda: dict(out=np.zeros((N, V), F64)), TypeError,
         "out must have dtype float32, got float64"),
        ("out-fortran", lambda: dict(out=np.zeros((N, V), F32, order="F")), ValueError,
         "out must be C-contiguous and aligned"),
        ("out-list", lambda: dict(out=[0.0]), TypeError, f"out {NOT_ARRAY} list"),
        ("out-overlaps-logits", _ce_overlap, ValueError,
         "out overlaps logits; only out=logits exactly is allowed"),
        ("reduction", lambda: dict(reduction="avg"), ValueError,
         "reduction must be one of 'mean', 'sum', 'none', got 'avg'"),
        ("smoothing-above-1", lambda: dict(label_smoothing=1.5), ValueError,
         r"label_smoothing must be in \[0.0, 1.0\], got 1.5"),
        ("smoothing-nan", lambda: dict(label_smoothing=float("nan")), ValueError,
         "label_smoothing must be in"),
        ("smoothing-str", lambda: dict(label_smoothing="0.1"), TypeError,
         "label_smoothing must be a real number, got str"),
        ("ignore-index-float", lambda: dict(ignore_index=1.5), TypeError,
         "ignore_index must be an integer, got float"),
        ("weight-shape", lambda: dict(weight=np.ones(V + 1, F32)), ValueError,
         r"weight must have shape \(V,\) = \(5,\), got \(6,\)"),
        ("weight-negative", lambda: dict(weight=-np.ones(V, F32)), ValueError,
         r"weight\[0\] = -1.0: class weights must be finite and >= 0"),
        ("zloss-negative", lambda: dict(lse_square_scale=-1.0), ValueError,
         r"lse_square_scale must be in \[0.0, inf\], got -1.0"),
        ("softcap-zero", lambda: dict(softcap=0.0), ValueError,
         "softcap must be None or a finite number > 0, got 0.0"),
        ("grad-rows-with-mean", lambda: dict(grad_rows=np.ones(N, F32)), ValueError,
         "grad_rows is the per-row gradient of reduction='none'"),
    ]),
    "linear_forward": (lin_f_args, [
        ("x-None", lambda: dict(x=None), TypeError, f"x {NOT_ARRAY} NoneType"),
        ("x-list", lambda: dict(x=[[1.0] * C] * N), TypeError, f"x {NOT_ARRAY} list"),
        ("x-1d", lambda: dict(x=rand(C)), ValueError, r"x must be 2-D .*got shape \(3,\)"),
        ("x-int", lambda: dict(x=np.ones((N, C), np.int32)), TypeError, f"x {FLOAT} int32"),
        ("W-dtype", lambda: dict(W=rand(OC, C, dtype=F64)), TypeError,
         "W must have the dtype of x, float32, got float64"),
        ("W-shape", lambda: dict(W=rand(OC, C + 1)), ValueError,
         r"W must have shape \(OC, C\) = \(OC, 3\) to match x \(4, 3\), got \(2, 4\)"),
        ("b-shape", lambda: dict(b=rand(OC + 1)), ValueError,
         r"b must have shape \(OC,\) = \(2,\) to match W \(2, 3\), got \(3,\)"),
        ("b-list", lambda: dict(b=[0.0, 0.0]), TypeError, f"b {NOT_ARRAY} list"),
        ("out-read-only", lambda: dict(out=read_only(np.zeros((N, OC), F32))), ValueError,
         "out is read-only"),
        ("out-is-x", lambda: (lambda x: dict(x=x, out=x))(rand(N, OC)), ValueError,
         r"W must have shape|out overlaps x"),
        ("out-overlaps-x", lambda: (lambda xo: dict(x=xo[0], W=rand(OC, C), out=xo[1]))(
            overlapping((N, C), (N, OC))), ValueError, "out overlaps x"),
        ("N-past-int32", lambda: dict(x=huge(2**31, C)), ValueError,
         r"linear_forward: N = 2147483648 exceeds the BLAS integer limit \(2147483647\)"),
        ("C-past-int32", lambda: dict(x=huge(1, 2**31), W=huge(OC, 2**31)), ValueError,
         "linear_forward: C = 2147483648 exceeds the BLAS integer limit"),
        ("OC-past-int32", lambda: dict(W=huge(2**31, C), b=None), ValueError,
         "linear_forward: OC = 2147483648 exceeds the BLAS integer limit"),
    ]),
    "linear_backward": (lin_b_args, [
        ("dy-None", lambda: dict(dy=None), TypeError, f"dy {NOT_ARRAY} NoneType"),
        ("dy-shape", lambda: dict(dy=rand(N, OC + 1)), ValueError,
         r"dy must have shape \(N, OC\) = \(4, 2\) to match x \(4, 3\) and W \(2, 3\), got \(4, 3\)"),
        ("dy-dtype", lambda: dict(dy=rand(N, OC, dtype=F64)), TypeError,
         "dy must have the dtype of x, float32, got float64"),
        ("accumulate-int", lambda: dict(accumulate=1), TypeError, "accumulate must be a bool, got int"),
        ("accumulate-without-dW", lambda: dict(accumulate=True), ValueError,
         "accumulate=True adds into dW and db: pass both buffers"),
        ("dW-read-only", lambda: dict(dW=read_only(np.zeros((OC, C), F32))), ValueError,
         "dW is read-only"),
        ("dW-shape", lambda: dict(dW=np.zeros((C, OC), F32)), ValueError,
         r"dW must have shape \(2, 3\), got \(3, 2\)"),
        ("db-overlaps-dW", lambda: (lambda dW: dict(dW=dW, db=dW.reshape(-1)[1:1 + OC]))(
            np.zeros((OC, C), F32)), ValueError, "db overlaps dW"),
        ("dx-is-dW", lambda: (lambda buf: dict(W=rand(N, C), dy=rand(N, N), dx=buf, dW=buf))(
            np.zeros((N, C), F32)), ValueError, "dW overlaps dx"),
        ("dx-overlaps-x", lambda: (lambda x: dict(x=x, dx=x))(rand(N, C)), ValueError,
         "dx overlaps x"),
        ("N-past-int32", lambda: dict(x=huge(2**31, C), dy=huge(2**31, OC)), ValueError,
         "linear_backward: N = 2147483648 exceeds the BLAS integer limit"),
    ]),
    "linear_cross_entropy": (lce_args, [
        ("x-None", lambda: dict(x=None), TypeError, f"x {NOT_ARRAY} NoneType"),
        ("W-shape", lambda: dict(W=rand(V, C + 1)), ValueError,
         r"W must have shape \(V, C\) = \(V, 3\) to match x \(4, 3\), got \(5, 4\)"),
        ("W-dtype", lambda: dict(W=rand(V, C, dtype=F64)), TypeError,
         "W must have the dtype of x, float32, got float64"),
        ("targets-too-big", lambda: dict(targets=np.array([0, 5, 1, 1])), ValueError,
         r"targets\[1\] = 5 is outside \[0, 5\)"),
        ("chunk-rows-0", lambda: dict(chunk_rows=0), ValueError, "chunk_rows must be >= 1, got 0"),
        ("db-without-b", lambda: dict(b=None, db=np.zeros(V, F32)), ValueError, "b is None"),
        ("accumulate-without-dW", lambda: dict(accumulate=True), ValueError,
         "accumulate=True adds into dW and db"),
        ("dW-is-W", lambda: (lambda W: dict(W=W, dW=W))(rand(V, C)), ValueError, "dW overlaps W"),
        ("N-past-int32", lambda: dict(x=huge(2**31, C)), ValueError,
         "linear_cross_entropy: N = 2147483648 exceeds the BLAS integer limit"),
        ("weight-dtype", lambda: dict(weight=np.ones(V, F64)), TypeError,
         "weight must have the dtype of x, float32, got float64"),
        ("softcap-negative", lambda: dict(softcap=-1.0), ValueError, "softcap must be in"),
        ("grad-rows-shape", lambda: dict(grad_rows=np.ones(N + 1, F32), reduction="none"),
         ValueError, r"grad_rows must have shape \(N,\) = \(4,\), got \(5,\)"),
    ]),
    "embedding_forward": (emb_f_args, [
        ("idx-float", lambda: dict(idx=np.zeros(N)), TypeError, "idx must have an integer dtype, got float64"),
        ("idx-list", lambda: dict(idx=[0, 1]), TypeError, f"idx {NOT_ARRAY} list"),
        ("idx-too-big", lambda: dict(idx=np.array([0, 5])), ValueError, r"idx\[1\] = 5 is outside \[0, 5\)"),
        ("idx-negative", lambda: dict(idx=np.array([[0, 1], [-1, 2]])), ValueError,
         r"idx\[1, 0\] = -1 is outside \[0, 5\)"),
        ("W-1d", lambda: dict(W=rand(V)), ValueError, r"W must be 2-D \(V, E\), got shape \(5,\)"),
        ("W-None", lambda: dict(W=None), TypeError, f"W {NOT_ARRAY} NoneType"),
        ("out-shape", lambda: dict(out=np.zeros((N, E + 1), F32)), ValueError,
         r"out must have shape \(4, 3\), got \(4, 4\)"),
        ("out-is-W", lambda: (lambda W: dict(idx=np.array([0, 1, 2, 3, 4]), W=W, out=W))(rand(V, E)),
         ValueError, "out overlaps W"),
        ("out-read-only", lambda: dict(out=read_only(np.zeros((N, E), F32))), ValueError,
         "out is read-only"),
    ]),
    "embedding_backward": (emb_b_args, [
        ("dW-None", lambda: dict(dW=None), TypeError, f"dW {NOT_ARRAY} NoneType"),
        ("dW-1d", lambda: dict(dW=np.zeros(V, F32)), ValueError, r"dW must be 2-D \(V, E\), got shape \(5,\)"),
        ("dW-read-only", lambda: dict(dW=read_only(np.zeros((V, E), F32))), ValueError, "dW is read-only"),
        ("dW-dtype", lambda: dict(dW=np.zeros((V, E), F64)), TypeError, "dW must have dtype float32, got float64"),
        ("dW-fortran", lambda: dict(dW=np.zeros((V, E), F32, order="F")), ValueError,
         "dW must be C-contiguous"),
        ("dout-shape", lambda: dict(dout=rand(N, E + 1)), ValueError,
         r"dout must have shape \(4, 3\) \(idx.shape \+ \(E,\)\), got \(4, 4\)"),
        ("dW-overlaps-dout", lambda: (lambda p: dict(dout=p[0], dW=p[1]))(overlapping((N, E), (V, E))),
         ValueError, "dW overlaps dout"),
        ("idx-too-big", lambda: dict(idx=np.array([0, 1, 2, 9])), ValueError, r"idx\[3\] = 9 is outside \[0, 5\)"),
        ("accumulate-str", lambda: dict(accumulate="no"), TypeError,
         "accumulate must be True or False, got 'no'"),
    ]),
    "embedding_bag_forward": (bag_f_args, [
        ("idx-1d", lambda: dict(idx=np.array([0, 1, 2, 3])), ValueError,
         r"idx must be 2-D \(N, K\) for a bag, got shape \(4,\)"),
        ("idx-too-big", lambda: dict(idx=np.array([[0, 1], [2, 5]])), ValueError,
         r"idx\[1, 1\] = 5 is outside \[0, 5\)"),
        ("W-float16", lambda: dict(W=rand(V, E).astype(np.float16)), TypeError, f"W {FLOAT} float16"),
        ("out-shape", lambda: dict(out=np.zeros((N, 2, E), F32)), ValueError,
         r"out must have shape \(4, 3\), got \(4, 2, 3\)"),
    ]),
    "embedding_bag_backward": (bag_b_args, [
        ("idx-1d", lambda: dict(idx=np.array([0, 1, 2, 3])), ValueError, "idx must be 2-D"),
        ("dout-shape", lambda: dict(dout=rand(N, 2, E)), ValueError,
         r"dout must have shape \(4, 3\) \(\(N, E\)\), got \(4, 2, 3\)"),
        ("dW-read-only", lambda: dict(dW=read_only(np.zeros((V, E), F32))), ValueError, "dW is read-only"),
    ]),
    "tanh_forward": (act_f_args, [
        ("x-None", lambda: dict(x=None), TypeError, f"x {NOT_ARRAY} NoneType"),
        ("x-list", lambda: dict(x=[1.0]), TypeError, f"x {NOT_ARRAY} list"),
        ("x-complex", lambda: dict(x=np.zeros(3, complex)), TypeError, f"x {FLOAT} complex128"),
        ("out-shape", lambda: dict(out=np.zeros((V, N), F32)), ValueError,
         r"out must have shape \(4, 5\), got \(5, 4\)"),
        ("out-read-only", lambda: dict(out=read_only(np.zeros((N, V), F32))), ValueError, "out is read-only"),
        ("out-shifted-over-x", lambda: (lambda p: dict(x=p[0], out=p[1]))(overlapping((N, V), (N, V))),
         ValueError, "out overlaps x; only out=x exactly is allowed"),
        ("out-strided", lambda: dict(out=np.zeros((N, 2 * V), F32)[:, ::2]), ValueError,
         "out must be C-contiguous"),
    ]),
    "tanh_backward": (act_b_args("y"), [
        ("dy-shape", lambda: dict(dy=rand(N, V + 1)), ValueError,
         r"dy must have the shape of y \(4, 5\), got \(4, 6\)"),
        ("dy-dtype", lambda: dict(dy=rand(N, V, dtype=F64)), TypeError,
         "dy must have the dtype of y \\(float32\\), got float64"),
        ("y-None", lambda: dict(y=None), TypeError, f"y {NOT_ARRAY} NoneType"),
        ("out-is-y", lambda: (lambda y: dict(y=y, out=y))(rand(N, V)), ValueError,
         "out overlaps y"),
    ]),
    "gelu_forward": (act_f_args, [
        ("x-int", lambda: dict(x=np.zeros(3, int)), TypeError, f"x {FLOAT} int64"),
        ("out-dtype", lambda: dict(out=np.zeros((N, V), F64)), TypeError,
         "out must have dtype float32, got float64"),
    ]),
    "gelu_backward": (act_b_args("x"), [
        ("dy-shape", lambda: dict(dy=rand(V, N)), ValueError,
         r"dy must have the shape of x \(4, 5\), got \(5, 4\)"),
        ("out-is-x", lambda: (lambda x: dict(x=x, out=x))(rand(N, V)), ValueError, "out overlaps x"),
    ]),
    "adamw_step": (adamw_args, [
        ("param-None", lambda: dict(param=None), TypeError, f"param {NOT_ARRAY} NoneType"),
        ("param-list", lambda: dict(param=[0.0]), TypeError, f"param {NOT_ARRAY} list"),
        ("param-read-only", lambda: dict(param=read_only(rand(N, V))), ValueError, "param is read-only"),
        ("m-read-only", lambda: dict(m=read_only(np.zeros((N, V), F32))), ValueError, "m is read-only"),
        ("param-strided", lambda: dict(param=np.zeros((N, 2 * V), F32)[:, ::2]), ValueError,
         r"param must be C-contiguous and aligned \(it is used in place, never copied\)"),
        ("param-reversed", lambda: dict(param=np.zeros((N, V), F32)[::-1]), ValueError,
         "param must be C-contiguous"),
        ("grad-fortran", lambda: dict(grad=np.zeros((N, V), F32, order="F")), ValueError,
         "grad must be C-contiguous"),
        ("v-shape", lambda: dict(v=np.zeros((V, N), F32)), ValueError,
         r"v has shape \(5, 4\) but param has \(4, 5\); all must have one shape"),
        ("m-dtype", lambda: dict(m=np.zeros((N, V), F64)), TypeError,
         "m has dtype float64 but param has float32; all must have one dtype"),
        ("param-float16", lambda: dict(param=np.zeros((N, V), np.float16)), TypeError,
         "param must be float32 or float64 in native byte order, got float16"),
        ("m-is-v", lambda: (lambda mv: dict(m=mv, v=mv))(np.zeros((N, V), F32)), ValueError,
         "m and v overlap; they must be separate buffers"),
        ("grad-is-param", lambda: (lambda p: dict(param=p, grad=p))(rand(N, V)), ValueError,
         "param and grad overlap"),
        ("step-0", lambda: dict(step=0), ValueError, r"step must be >= 1 \(steps count from 1\), got 0"),
        ("step-float", lambda: dict(step=1.0), TypeError, "step must be an integer, got float"),
        ("lr-negative", lambda: dict(lr=-1e-3), ValueError, "lr must be >= 0.0 and finite, got -0.001"),
        ("lr-inf", lambda: dict(lr=float("inf")), ValueError, "lr must be >= 0.0 and finite, got inf"),
        ("beta1-1", lambda: dict(beta1=1.0), ValueError, r"beta1 must be in \[0.0, 1.0\), got 1.0"),
        ("beta2-nan", lambda: dict(beta2=float("nan")), ValueError, r"beta2 must be in \[0.0, 1.0\), got nan"),
        ("eps-0", lambda: dict(eps=0.0), ValueError, "eps must be > 0.0 and finite, got 0.0"),
        ("weight-decay-negative", lambda: dict(weight_decay=-0.1), ValueError,
         "weight_decay must be >= 0.0 and finite, got -0.1"),
        ("grad-scale-str", lambda: dict(grad_scale="1"), TypeError, "grad_scale must be a real number, got str"),
    ]),
    "sgd_step": (sgd_args, [
        ("buf-None-with-momentum", lambda: dict(buf=None), ValueError,
         r"buf \(the momentum buffer\) is required with momentum=0.9"),
        ("nesterov-without-momentum", lambda: dict(momentum=0.0, nesterov=True), ValueError,
         "nesterov=True needs momentum > 0"),
        ("nesterov-int", lambda: dict(nesterov=1), TypeError, "nesterov must be True or False, got 1"),
        ("momentum-negative", lambda: dict(momentum=-0.9), ValueError, "momentum must be >= 0.0"),
        ("buf-read-only", lambda: dict(buf=read_only(np.zeros((N, V), F32))), ValueError, "buf is read-only"),
        ("buf-is-param", lambda: (lambda p: dict(param=p, buf=p))(rand(N, V)), ValueError,
         "param and buf overlap"),
    ]),
    "sum_of_squares": (sos_args, [
        ("x-None", lambda: dict(x=None), TypeError, f"x {NOT_ARRAY} NoneType"),
        ("x-list", lambda: dict(x=[1.0, 2.0]), TypeError, f"x {NOT_ARRAY} list"),
        ("x-int", lambda: dict(x=np.arange(3)), TypeError, f"x {FLOAT} int64"),
    ]),
    "layernorm_forward": (ln_f_args, [
        ("x-None", lambda: dict(x=None), TypeError, f"x {NOT_ARRAY} NoneType"),
        ("x-int", lambda: dict(x=np.zeros((N, C), int)), TypeError, f"x {FLOAT} int64"),
        ("x-0d", lambda: dict(x=np.ones((), F32)), ValueError,
         r"x must have a last axis of C >= 1 channels to normalize, got shape \(\)"),
        ("C-0", lambda: dict(x=rand(N, 0), weight=rand(0), bias=rand(0)), ValueError,
         r"x must have a last axis of C >= 1 channels to normalize, got shape \(4, 0\)"),
        ("weight-shape", lambda: dict(weight=rand(C + 1)), ValueError,
         r"weight must have shape \(C,\) = \(3,\) to match x, got \(4,\)"),
        ("bias-dtype", lambda: dict(bias=rand(C, dtype=F64)), TypeError,
         "bias must have the dtype of x, float32, got float64"),
        ("bias-None", lambda: dict(bias=None), TypeError, f"bias {NOT_ARRAY} NoneType"),
        ("eps-nan", lambda: dict(eps=float("nan")), ValueError, "eps must be >= 0.0 and finite, got nan"),
        ("eps-inf", lambda: dict(eps=float("inf")), ValueError, "eps must be >= 0.0 and finite, got inf"),
        ("eps-negative", lambda: dict(eps=-1e-5), ValueError,
         "eps must be >= 0.0 and finite, got -1e-05"),
        ("eps-str", lambda: dict(eps="1e-5"), TypeError, "eps must be a real number, got str"),
        ("out-shifted-over-x", lambda: (lambda p: dict(x=p[0], out=p[1]))(overlapping((N, C), (N, C))),
         ValueError, "out overlaps x; only out=x exactly is allowed"),
        ("out-is-weight", lambda: (lambda w: dict(x=rand(1, C), weight=w, out=w.reshape(1, C)))(rand(C)),
         ValueError, "out overlaps weight"),
        ("mean-shape", lambda: dict(mean=np.zeros((N, 1), F32)), ValueError,
         r"mean must have shape \(4,\), got \(4, 1\)"),
        ("rstd-dtype", lambda: dict(rstd=np.zeros(N, F64)), TypeError,
         "rstd must have dtype float32, got float64"),
        ("rstd-is-mean", lambda: (lambda s: dict(mean=s, rstd=s))(np.zeros(N, F32)), ValueError,
         "rstd overlaps mean"),
        ("mean-read-only", lambda: dict(mean=read_only(np.zeros(N, F32))), ValueError,
         "mean is read-only"),
    ]),
    "layernorm_backward": (ln_b_args, [
        ("dy-shape", lambda: dict(dy=rand(N, C + 1)), ValueError,
         r"dy must have the shape of x \(4, 3\), got \(4, 4\)"),
        ("dy-dtype", lambda: dict(dy=rand(N, C, dtype=F64)), TypeError,
         r"dy must have the dtype of x \(float32\), got float64"),
        ("mean-shape", lambda: dict(mean=rand(N + 1)), ValueError,
         r"mean must have shape x.shape\[:-1\] = \(4,\), got \(5,\)"),
        ("rstd-dtype", lambda: dict(rstd=rand(N, dtype=F64)), TypeError,
         "rstd must have the dtype of x, float32, got float64"),
        ("weight-None", lambda: dict(weight=None), TypeError, f"weight {NOT_ARRAY} NoneType"),
        ("C-0", lambda: dict(x=rand(N, 0), weight=rand(0), dy=rand(N, 0)), ValueError,
         "x must have a last axis of C >= 1 channels"),
        ("accumulate-int", lambda: dict(accumulate=1), TypeError,
         "accumulate must be True or False, got 1"),
        ("accumulate-without-dbias", lambda: dict(accumulate=True, dweight=np.zeros(C, F32)),
         ValueError, "accumulate=True adds into dweight and dbias: pass both buffers"),
        ("dx-is-x", lambda: (lambda x: dict(x=x, dx=x))(rand(N, C)), ValueError, "dx overlaps x"),
        ("dx-shifted-over-dy", lambda: (lambda p: dict(dy=p[0], dx=p[1]))(overlapping((N, C), (N, C))),
         ValueError, "dx overlaps dy; only dx=dy exactly is allowed"),
        ("dweight-shape", lambda: dict(dweight=np.zeros((1, C), F32)), ValueError,
         r"dweight must have shape \(3,\), got \(1, 3\)"),
        ("dbias-overlaps-dweight", lambda: (lambda buf: dict(dweight=buf[:C], dbias=buf[1:1 + C]))(
            np.zeros(2 * C, F32)), ValueError, "dbias overlaps dweight"),
        ("dweight-read-only", lambda: dict(dweight=read_only(np.zeros(C, F32))), ValueError,
         "dweight is read-only"),
    ]),
    "attention_forward": (attn_f_args, [
        ("qkv-None", lambda: dict(qkv=None), TypeError, f"qkv {NOT_ARRAY} NoneType"),
        ("qkv-float16", lambda: dict(qkv=rand(2, N, 12).astype(np.float16)), TypeError,
         f"qkv {FLOAT} float16"),
        ("qkv-2d", lambda: dict(qkv=rand(N, 12)), ValueError, r"qkv must be 3-D \(B, T, 3C\)"),
        ("qkv-not-3C", lambda: dict(qkv=rand(2, N, 13)), ValueError, "got 13, not divisible by 3"),
        ("C-not-heads", lambda: dict(n_head=3), ValueError,
         "C = 4 .* must be a positive multiple of n_head = 3"),
        ("n-head-negative", lambda: dict(n_head=-2), ValueError,
         "n_head must be a positive integer, got -2"),
        ("n-head-bool", lambda: dict(n_head=True), TypeError, "n_head must be an integer, got bool"),
        ("scale-nan", lambda: dict(scale=float("nan")), ValueError,
         "scale must be a finite real number, got nan"),
        ("causal-str", lambda: dict(causal="yes"), TypeError, "causal must be True or False"),
        ("out-shape", lambda: dict(out=np.zeros((2, N, 12), F32)), ValueError,
         r"out must have shape \(2, 4, 4\), got \(2, 4, 12\)"),
        ("out-fortran", lambda: dict(out=np.zeros((2, N, 4), F32, order="F")), ValueError,
         "out must be C-contiguous"),
        ("lse-dtype", lambda: dict(lse=np.zeros((2, 2, N), F64)), TypeError,
         "lse must have dtype float32, got float64"),
        ("lse-read-only", lambda: dict(lse=read_only(np.zeros((2, 2, N), F32))), ValueError,
         "lse is read-only"),
        ("out-overlaps-qkv", lambda: (lambda x: dict(qkv=x[0], out=x[1]))(
            overlapping((2, N, 12), (2, N, 4))), ValueError, "out overlaps qkv"),
    ]),
    "attention_backward": (attn_b_args, [
        ("dout-None", lambda: dict(dout=None), TypeError, f"dout {NOT_ARRAY} NoneType"),
        ("dout-shape", lambda: dict(dout=rand(2, N, 5)), ValueError,
         r"dout must have shape \(2, 4, 4\) to match qkv \(2, 4, 12\) and n_head=2, got \(2, 4, 5\)"),
        ("lse-shape", lambda: dict(lse=rand(2, N, 2)), ValueError,
         r"lse must have shape \(2, 2, 4\)"),
        ("out-dtype", lambda: dict(out=rand(2, N, 4, dtype=F64)), TypeError,
         r"out must have the dtype of qkv \(float32\), got float64"),
        ("dqkv-shape", lambda: dict(dqkv=np.zeros((2, N, 4), F32)), ValueError,
         r"dqkv must have shape \(2, 4, 12\), got \(2, 4, 4\)"),
        ("dqkv-is-dout", lambda: (lambda p: dict(dout=p[0], dqkv=p[1]))(
            overlapping((2, N, 4), (2, N, 12))), ValueError, "dqkv overlaps dout"),
        ("dqkv-strided", lambda: dict(dqkv=np.zeros((2, N, 24), F32)[:, :, ::2]), ValueError,
         "dqkv must be C-contiguous"),
    ]),
}

assert set(TABLES) == set(fk.KERNELS), f"no table for {set(fk.KERNELS) - set(TABLES)}"
ROWS = [pytest.param(kernel, change, exc, match, id=f"{kernel}-{row_id}")
        for kernel, (_, rows) in TABLES.items() for row_id, change, exc, match in rows]


@pytest.mark.parametrize("kernel,change,exc,match", ROWS)
def test_wrong_input_gets_the_documented_error(kernel, change, exc, match, backend):
    valid, _ = TABLES[kernel]
    args = {**valid(), **change()}
    before = {k: v.copy() for k, v in args.items() if isinstance(v, np.ndarray) and v.size < 10**6}
    with pytest.raises(exc, match=match):
        call(kernel, args, backend)
    for k, v in before.items():  # refused before any memory was written
        assert np.array_equal(args[k], v, equal_nan=True), f"{k} was written before the error"


# ---------------------------------------------------------------------------------------------
# accepted edge cases: zero-size arrays give empty results; read-only inputs are fine

ZERO = [
    ("softmax_cross_entropy", lambda: dict(logits=rand(0, V), targets=np.zeros(0, int))),
    ("softmax_cross_entropy", lambda: dict(logits=rand(0, V), targets=np.zeros(0, int),
                                           weight=np.ones(V, F32), lse_square_scale=0.1,
                                           softcap=2.0)),
    ("linear_forward", lambda: dict(x=rand(0, C), W=rand(OC, C), b=rand(OC))),
    ("linear_forward", lambda: dict(x=rand(N, 0), W=rand(OC, 0), b=rand(OC))),
    ("linear_backward", lambda: dict(x=rand(0, C), W=rand(OC, C), dy=rand(0, OC))),
    ("linear_cross_entropy", lambda: dict(x=rand(0, C), W=rand(V, C), targets=np.zeros(0, int),
                                          reduction="sum")),
    ("linear_cross_entropy", lambda: dict(x=rand(0, C), W=rand(V, C), targets=np.zeros(0, int),
                                          reduction="none", grad_rows=rand(0), softcap=1.0,
                                          weight=np.ones(V, F32), lse_square_scale=0.1)),
    ("embedding_forward", lambda: dict(idx=np.zeros(0, int), W=rand(V, E))),
    ("embedding_forward", lambda: dict(idx=np.array([0, 4]), W=rand(V, 0))),
    ("embedding_backward", lambda: dict(idx=np.array([1, 2]), dout=rand(2, 0), dW=rand(V, 0))),
    ("embedding_bag_forward", lambda: dict(idx=np.zeros((N, 0), int), W=rand(V, E))),
    ("embedding_bag_backward", lambda: dict(idx=np.zeros((0, 2), int), dout=rand(0, E), dW=rand(V, E))),
    ("tanh_forward", lambda: dict(x=rand(0, V))),
    ("gelu_backward", lambda: dict(x=rand(3, 0), dy=rand(3, 0))),
    ("adamw_step", lambda: dict(param=rand(0), grad=rand(0), m=rand(0), v=rand(0), step=1, lr=0.1)),
    ("sgd_step", lambda: dict(param=rand(2, 0), grad=rand(2, 0), buf=rand(2, 0), lr=0.1, momentum=0.5)),
    ("sum_of_squares", lambda: dict(x=rand(0))),
    ("layernorm_forward", lambda: dict(x=rand(0, C), weight=rand(C), bias=rand(C))),
    ("layernorm_backward", lambda: dict(x=rand(2, 0, C), weight=rand(C), mean=rand(2, 0),
                                        rstd=rand(2, 0), dy=rand(2, 0, C))),
    ("attention_forward", lambda: dict(qkv=rand(0, N, 12), n_head=2)),
    ("attention_backward", lambda: dict(qkv=rand(2, 0, 12), out=rand(2, 0, 4), lse=rand(2, 2, 0),
                                        dout=rand(2, 0, 4), n_head=2)),
]


@pytest.mark.parametrize("kernel,make", [pytest.param(k, m, id=f"{k}-{i}") for i, (k, m) in enumerate(ZERO)])
def test_zero_size_arrays_are_accepted(kernel, make, backend):
    args = make()
    got = call(kernel, args, backend)
    expected = call(kernel, make(), "numpy")
    if kernel == "softmax_cross_entropy":  # the mean over no rows is 0/0, as in PyTorch
        assert np.isnan(got[0]) and np.isnan(expected[0])
    elif kernel == "sum_of_squares":
        assert got == expected == 0.0
    elif kernel == "embedding_bag_forward":  # a sum of no rows
        assert np.array_equal(got, np.zeros((N, E), F32))
    elif kernel == "layernorm_backward":  # dweight and dbias: sums over no rows
        assert np.array_equal(got[1], np.zeros(C)) and np.array_equal(got[2], np.zeros(C))


def test_read_only_inputs_and_in_place_outputs_are_accepted(backend):
    x = read_only(rand(N, V))
    logits = rand(N, V)
    loss, d = fk.softmax_cross_entropy(logits, read_only(np.array([0, 1, 2, 3])), out=logits,
                                       backend=backend)
    assert d is logits
    y = fk.tanh_forward(x, backend=backend)
    assert fk.tanh_forward(y, out=y, backend=backend) is y  # in place
    p, g = rand(N, V), read_only(rand(N, V))
    fk.adamw_step(p, g, np.zeros_like(p), np.zeros_like(p), step=1, lr=0.1, backend=backend)
    fk.linear_forward(x[:, :C], read_only(rand(OC, C)), backend=backend)

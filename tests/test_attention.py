"""attention_forward and attention_backward: the reference against finite differences, every
backend against the reference (dtypes, odd shapes, causal or not, scales, extreme values, NaN,
threads, the same bits for 1 and 2 threads in C), against PyTorch's scaled_dot_product_attention
and its autograd, and bad input."""
import numpy as np
import pytest

import fasttrain
from fasttrain.kernels import attention_backward, attention_forward
from conftest import assert_close, numeric_gradient

# (B, T, n_head, hs): T = 1; T not a multiple of any block (64 in csrc/attention.c) and past
# one and two blocks; head size 1 and 128; one head and many; B = 1 and B > 1
SHAPES = [(1, 1, 1, 8), (2, 5, 3, 4), (1, 65, 2, 1), (2, 130, 1, 128), (3, 64, 12, 8),
          (1, 200, 4, 24)]


def make(B, T, n_head, hs, dtype=np.float64, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    qkv = (rng.standard_normal((B, T, 3 * n_head * hs)) * scale).astype(dtype)  # (B, T, 3C)
    dout = rng.standard_normal((B, T, n_head * hs)).astype(dtype)              # (B, T, C)
    return qkv, dout


def run(backend, qkv, dout, n_head, **kw):
    out, lse = attention_forward(qkv, n_head, backend=backend, **kw)
    dqkv = attention_backward(qkv, out, lse, dout, n_head, backend=backend, **kw)
    return out, lse, dqkv


def reference64(qkv, dout, n_head, **kw):
    """The spec in float64 on the same (upcast) inputs: the values to match."""
    return run("numpy", qkv.astype(np.float64), dout.astype(np.float64), n_head, **kw)


def check(backend, qkv, dout, n_head, rtol=None, **kw):
    got = run(backend, qkv, dout, n_head, **kw)
    want = reference64(qkv, dout, n_head, **kw)
    # float32: the contract's 2e-5 relative; atol for the entries near 0 of each array, 2e-5 of
    # its typical size (a gradient element is a sum of T products that cancel)
    if rtol is None:
        rtol = 1e-12 if qkv.dtype == np.float64 else 2e-5
    for name, g, w in zip(("out", "lse", "dqkv"), got, want):
        assert g.dtype == qkv.dtype and g.shape == w.shape
        typical = float(np.sqrt(np.mean(w[np.isfinite(w)] ** 2))) if w.size else 0.0
        assert_close(g, w, rtol=rtol, atol=rtol * max(typical, 1e-30),
                     what=f"{backend} {name} {qkv.shape} {kw}")
    return got


# ---------------------------------------------------------------------------------------------
# the reference is the spec: check it against calculus

@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
def test_reference_matches_finite_differences(causal):
    B, T, n_head, hs = 2, 5, 2, 3
    qkv, dout = make(B, T, n_head, hs, seed=1)
    kw = dict(causal=causal, scale=0.7)

    def loss(x):  # <dout, out>: its gradient w.r.t. qkv is the backward of dout
        out, _ = attention_forward(x, n_head, backend="numpy", **kw)
        return float(np.sum(out * dout))

    out, lse = attention_forward(qkv, n_head, backend="numpy", **kw)
    grad = attention_backward(qkv, out, lse, dout, n_head, backend="numpy", **kw)
    numeric = numeric_gradient(loss, [qkv], 0)
    assert_close(grad, numeric, rtol=1e-6, atol=1e-9, what="finite differences")
    if causal:  # the first query sees only the first key: its softmax is 1 whatever q is
        assert np.abs(grad[:, 0, :n_head * hs]).max() < 1e-12


def test_reference_lse_is_the_log_sum_exp_of_the_scores():
    qkv, _ = make(1, 4, 1, 2, seed=2)
    q, k = qkv[0, :, :2], qkv[0, :, 2:4]
    S = 0.5 * q @ k.T
    want = [np.log(np.sum(np.exp(S[i, :i + 1]))) for i in range(4)]
    _, lse = attention_forward(qkv, 1, scale=0.5, backend="numpy")
    assert_close(lse[0, 0], np.array(want), rtol=1e-14, atol=1e-14, what="lse")


# ---------------------------------------------------------------------------------------------
# every backend against the reference

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}T{}h{}hs{}".format(*s))
def test_matches_reference(backend, shape, causal, dtype, threads):
    B, T, n_head, hs = shape
    qkv, dout = make(B, T, n_head, hs, dtype)
    check(backend, qkv, dout, n_head, causal=causal)


@pytest.mark.parametrize("scale", [0.0, -0.3, 2.5, 1e-3])
def test_given_scale(backend, scale):
    qkv, dout = make(2, 70, 2, 8, np.float32, seed=3)
    check(backend, qkv, dout, 2, scale=scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_peaked_softmax(backend, dtype):
    """Large scores (|S| in the hundreds): the running max of the online softmax grows by large
    steps, and most probabilities underflow to 0. Rounding the scores alone moves them by
    ~eps * sum_d |q_d k_d| / sqrt(hs), and the probabilities and gradients by as much
    relatively: the tolerance is that times a few, for any correct float32 kernel."""
    qkv, dout = make(2, 150, 2, 16, dtype, seed=4, scale=8.0)
    a = np.abs(qkv.astype(np.float64)).reshape(2, 150, 3, 2, 16)
    spread = max(float((a[:, :, 0, h] @ a[:, :, 1, h].transpose(0, 2, 1)).max()) for h in range(2)) / 4
    eps = float(np.finfo(dtype).eps)
    check(backend, qkv, dout, 2, rtol=max(1e-12 if dtype == np.float64 else 2e-5, 8 * eps * spread))


def test_nan_propagates(backend):
    """A NaN in one query poisons its own output row (and its gradients); a NaN in a key
    poisons the rows that see it, and in causal attention no row before it."""
    qkv, dout = make(1, 70, 1, 4, np.float32, seed=5)
    qkv[0, 3, 0] = np.nan   # q of token 3
    qkv[0, 40, 5] = np.nan  # k of token 40
    out, lse, dqkv = run(backend, qkv, dout, 1)
    want = run("numpy", qkv, dout, 1)
    rows_nan = np.isnan(out[0]).any(axis=1)
    assert rows_nan[3] and rows_nan[40:].all() and not rows_nan[:3].any() and not rows_nan[4:40].any()
    for name, g, w in zip(("out", "lse", "dqkv"), (out, lse, dqkv), want):
        assert np.array_equal(np.isnan(g), np.isnan(w)), f"{name}: NaN where the reference has none"


def test_same_bits_for_any_thread_count():
    """C: each output element is computed by one thread in a fixed order."""
    qkv, dout = make(2, 200, 3, 32, np.float32, seed=6)
    before = fasttrain.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            fasttrain.set_num_threads(n)
            results.append(run("c", qkv, dout, 3))
    finally:
        fasttrain.set_num_threads(before)
    for got in results[1:]:
        for a, b in zip(got, results[0]):
            assert np.array_equal(a, b)


def test_long_sequence_c():
    """T = 8192 in one head: the flash-style kernel never builds the (T, T) matrix (256 MB in
    float32 here); checked against the reference on a few rows recomputed by hand."""
    B, T, n_head, hs = 1, 8192, 1, 16
    qkv, dout = make(B, T, n_head, hs, np.float32, seed=7)
    out, lse = attention_forward(qkv, n_head)
    dqkv = attention_backward(qkv, out, lse, dout, n_head)
    x = qkv[0].astype(np.float64)
    q, k, v = x[:, :hs], x[:, hs:2 * hs], x[:, 2 * hs:]
    for i in (0, 63, 64, 4097, T - 1):
        s = q[i] @ k[:i + 1].T / np.sqrt(hs)
        p = np.exp(s - s.max())
        assert_close(lse[0, 0, i], s.max() + np.log(p.sum()), rtol=2e-5, atol=2e-5, what="lse")
        assert_close(out[0, i], p @ v[:i + 1] / p.sum(), rtol=2e-5, atol=2e-5, what="out")
    # the value gradient of the last token: only the last query sees it
    p_last = np.exp(q[-1] @ k.T / np.sqrt(hs) - lse[0, 0, -1])[-1]
    assert_close(dqkv[0, -1, 2 * hs:], p_last * dout[0, -1], rtol=1e-4, atol=1e-6, what="dv")
    assert np.isfinite(dqkv).all()


# ---------------------------------------------------------------------------------------------
# PyTorch as a third voice

@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
@pytest.mark.parametrize("shape", [(2, 67, 3, 16), (1, 1, 1, 8), (2, 129, 2, 64)],
                         ids=lambda s: "B{}T{}h{}hs{}".format(*s))
def test_matches_pytorch(backend, torch, shape, causal):
    B, T, n_head, hs = shape
    C = n_head * hs
    qkv, dout = make(B, T, n_head, hs, np.float64, seed=8)
    F = torch.nn.functional
    x = torch.tensor(qkv, requires_grad=True)
    q, k, v = (t.view(B, T, n_head, hs).transpose(1, 2) for t in x.split(C, dim=2))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)  # (B, nh, T, hs)
    y = y.transpose(1, 2).reshape(B, T, C)
    y.backward(torch.tensor(dout))
    for dtype, rtol in ((np.float64, 1e-10), (np.float32, 2e-5)):
        out, lse, dqkv = run(backend, qkv.astype(dtype), dout.astype(dtype), n_head,
                             causal=causal)
        for name, g, w in (("out", out, y.detach().numpy()), ("dqkv", dqkv, x.grad.numpy())):
            typical = float(np.sqrt(np.mean(w ** 2)))
            assert_close(g, w, rtol=rtol, atol=rtol * typical, what=f"{name} vs torch {dtype}")


# ---------------------------------------------------------------------------------------------
# bad input

def _qkv(*shape, dtype=np.float32):
    return np.zeros(shape, dtype)


def _fwd(**kw):
    args = dict(qkv=_qkv(2, 3, 12), n_head=2)
    args.update(kw)
    return lambda: attention_forward(args.pop("qkv"), args.pop("n_head"), **args)


def _bwd(**kw):
    B, T, C, nh = 2, 3, 4, 2
    args = dict(qkv=_qkv(B, T, 3 * C), out=_qkv(B, T, C), lse=_qkv(B, nh, T), dout=_qkv(B, T, C),
                n_head=nh)
    args.update(kw)
    return lambda: attention_backward(args.pop("qkv"), args.pop("out"), args.pop("lse"),
                                      args.pop("dout"), args.pop("n_head"), **args)


def _overlapping_out_lse():
    buf = np.zeros(2 * 3 * 4 + 2 * 2 * 3, np.float32)
    return dict(out=buf[:24].reshape(2, 3, 4), lse=buf[10:22].reshape(2, 2, 3))


BAD = [
    ("qkv-list", _fwd(qkv=[[[0.0] * 12]]), TypeError, "qkv must be a numpy.ndarray, got list"),
    ("qkv-int", _fwd(qkv=np.zeros((2, 3, 12), int)), TypeError,
     "qkv must be float32 or float64, got int64"),
    ("qkv-2d", _fwd(qkv=_qkv(3, 12)), ValueError, r"qkv must be 3-D \(B, T, 3C\).*got shape \(3, 12\)"),
    ("qkv-not-3C", _fwd(qkv=_qkv(2, 3, 13)), ValueError, "got 13, not divisible by 3"),
    ("C-not-heads", _fwd(n_head=3), ValueError, "C = 4 .* must be a positive multiple of n_head = 3"),
    ("C-zero", _fwd(qkv=_qkv(2, 3, 0)), ValueError, "C = 0 .* positive multiple"),
    ("n-head-0", _fwd(n_head=0), ValueError, "n_head must be a positive integer, got 0"),
    ("n-head-float", _fwd(n_head=2.0), TypeError, "n_head must be an integer, got float"),
    ("causal-int", _fwd(causal=1), TypeError, "causal must be True or False, got 1"),
    ("scale-nan", _fwd(scale=float("nan")), ValueError, "scale must be a finite real number, got nan"),
    ("scale-inf", _fwd(scale=float("inf")), ValueError, "scale must be a finite real number, got inf"),
    ("scale-str", _fwd(scale="1"), TypeError, "scale must be a real number, got str"),
    ("out-shape", _fwd(out=_qkv(2, 3, 12)), ValueError, r"out must have shape \(2, 3, 4\), got \(2, 3, 12\)"),
    ("out-dtype", _fwd(out=np.zeros((2, 3, 4))), TypeError, "out must have dtype float32, got float64"),
    ("out-strided", _fwd(out=_qkv(2, 3, 8)[:, :, ::2]), ValueError, "out must be C-contiguous"),
    ("lse-shape", _fwd(lse=_qkv(2, 3, 2)), ValueError, r"lse must have shape \(2, 2, 3\), got \(2, 3, 2\)"),
    ("out-is-qkv", (lambda x: _fwd(qkv=x, out=x[:, :, :4]))(_qkv(2, 3, 12)), ValueError,
     "out must be C-contiguous|out overlaps qkv"),
    ("lse-overlaps-out", _fwd(**_overlapping_out_lse()), ValueError, "lse overlaps out"),
    ("b-dout-shape", _bwd(dout=_qkv(2, 3, 5)), ValueError,
     r"dout must have shape \(2, 3, 4\) to match qkv \(2, 3, 12\) and n_head=2, got \(2, 3, 5\)"),
    ("b-lse-shape", _bwd(lse=_qkv(2, 3, 2)), ValueError, r"lse must have shape \(2, 2, 3\)"),
    ("b-out-dtype", _bwd(out=np.zeros((2, 3, 4))), TypeError,
     r"out must have the dtype of qkv \(float32\), got float64"),
    ("b-lse-2d", _bwd(lse=_qkv(2, 3)), ValueError, r"lse must be 3-D \(B, n_head, T\)"),
    ("b-dqkv-shape", _bwd(dqkv=_qkv(2, 3, 4)), ValueError, r"dqkv must have shape \(2, 3, 12\)"),
    ("b-dqkv-is-qkv", (lambda x: _bwd(qkv=x, dqkv=x))(_qkv(2, 3, 12)), ValueError,
     "dqkv overlaps qkv"),
    ("b-dqkv-read-only", _bwd(dqkv=np.broadcast_to(np.float32(0), (2, 3, 12))), ValueError,
     "dqkv must be C-contiguous|dqkv is read-only"),
    ("b-n-head-mismatch", _bwd(n_head=4), ValueError, r"lse must have shape \(2, 4, 3\)"),
]


@pytest.mark.parametrize("call,exc,match", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_non_contiguous_inputs_are_copied(backend):
    qkv, dout = make(2, 9, 2, 4, np.float32, seed=9)
    wide = np.zeros((2, 9, 48), np.float32)
    wide[:, :, ::2] = qkv
    got = run(backend, wide[:, :, ::2], dout, 2)
    want = run(backend, qkv, dout, 2)
    for g, w in zip(got, want):
        assert np.array_equal(g, w)


def test_zero_size(backend):
    for B, T in ((0, 5), (2, 0)):
        qkv, dout = make(B, T, 2, 4, np.float32)
        out, lse, dqkv = run(backend, qkv, dout, 2)
        assert out.shape == (B, T, 8) and lse.shape == (B, 2, T) and dqkv.shape == (B, T, 24)

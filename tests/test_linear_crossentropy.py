"""linear_cross_entropy: every backend against the unfused composition (linear_forward +
softmax_cross_entropy + linear_backward, in float64) across shapes that cut chunks oddly,
dtypes, reductions, label smoothing, ignored rows and chunks, accumulate and threads, and the
options (class weights, z-loss, soft cap, per-row upstream gradients); against PyTorch's
F.cross_entropy(F.linear(x, W, b)) with autograd; every bad input against its error.
The unfused pieces are themselves tested against finite differences (test_linear.py,
test_crossentropy.py); the reference here is their composition, checked once by calculus too."""
import numpy as np
import pytest

from fasttrain.kernels import (linear_backward, linear_cross_entropy, linear_forward,
                               softmax_cross_entropy)
from fasttrain.kernels.linear_crossentropy import default_chunk_rows
from conftest import assert_close

IGNORE = -100
f32, f64 = np.float32, np.float64


def make_case(N, C, V, *, dtype=f32, ignored=0.0, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C)).astype(dtype)              # (N, C)
    W = (rng.standard_normal((V, C)) * 0.5).astype(dtype)      # (V, C)
    b = rng.standard_normal(V).astype(dtype)                   # (V,)
    t = rng.integers(0, V, size=N)                             # (N,)
    t[rng.random(N) < ignored] = IGNORE
    return x, W, b, t


def unfused64(x, W, b, t, **kw):
    """The composition of the unfused kernels on float64 copies: the values to match."""
    kw = {k: (v.astype(f64) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    x, W = x.astype(f64), W.astype(f64)
    b = None if b is None else b.astype(f64)
    logits = linear_forward(x, W, b, backend="numpy")
    loss, dlogits = softmax_cross_entropy(logits, t, out=logits, backend="numpy", **kw)
    dx, dW, db = linear_backward(x, W, dlogits, db=None if b is not None else False,
                                 backend="numpy")
    return loss, dx, dW, db


def tolerances(dtype, t, reduction):
    n_valid = max(int(np.count_nonzero(t != IGNORE)), 1)
    g = 1.0 / n_valid if reduction == "mean" else 1.0
    if dtype == f64:
        return dict(rtol=1e-10, atol=1e-12), dict(rtol=1e-9, atol=1e-12 * g)
    # float32: logits of size ~10 round at ~1e-6; dW sums N rows of them
    return dict(rtol=2e-5, atol=2e-5), dict(rtol=2e-4, atol=2e-5 * g)


def check(backend, x, W, b, t, **kw):
    got = linear_cross_entropy(x, W, t, b, backend=backend, **kw)
    kw.pop("chunk_rows", None)
    want = unfused64(x, W, b, t, **kw)
    tl, tg = tolerances(x.dtype, t, kw.get("reduction", "mean"))
    assert_close(got[0], want[0], **tl, what=f"{backend} loss")
    for name, g, w in zip(("dx", "dW", "db"), got[1:], want[1:]):
        if w is None:
            assert g is None, name
            continue
        assert g.dtype == x.dtype, name
        assert_close(g, w, **tg, what=f"{backend} {name}")
    return got


# ---------------------------------------------------------------------------------------------
# the reference is the unfused definition: check it once against calculus

def options(name, N, V, dtype, reduction):
    """The keyword arguments of one option set, named as the test ids."""
    rng = np.random.default_rng(40)
    w = rng.uniform(0.2, 2.0, V).astype(dtype)
    w[V // 2] = 0  # a class that never counts
    g = rng.standard_normal(N).astype(dtype) if reduction == "none" else None
    return {
        "plain": {},
        "weight": dict(weight=w),
        "zloss": dict(lse_square_scale=1e-2),
        "softcap": dict(softcap=2.0),
        "grad_rows": dict(grad_rows=g),
        "all": dict(weight=w, lse_square_scale=3e-2, softcap=3.0, grad_rows=g),
    }[name]


OPTIONS = ["weight", "zloss", "softcap", "grad_rows", "all"]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("option", ["plain"] + OPTIONS)
def test_reference_matches_finite_differences(reduction, option):
    x, W, b, t = make_case(4, 3, 5, dtype=f64, seed=1)
    t[1] = IGNORE
    kw = dict(reduction=reduction, label_smoothing=0.2, **options(option, 4, 5, f64, reduction))
    g = kw.get("grad_rows")
    _, dx, dW, db = linear_cross_entropy(x, W, t, b, backend="numpy", **kw)
    h = 1e-6

    def scalar_loss():  # "none": sum_i g_i * loss_i
        loss = linear_cross_entropy(x, W, t, b, backend="numpy", **kw)[0]
        return np.sum(loss * (1 if g is None else g))

    for name, arr, grad in (("x", x, dx), ("W", W, dW), ("b", b, db)):
        numeric = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + h
            plus = scalar_loss()
            arr[idx] = old - h
            minus = scalar_loss()
            arr[idx] = old
            numeric[idx] = (plus - minus) / (2 * h)
        assert_close(grad, numeric, rtol=1e-6, atol=1e-9, what=f"d{name}")


# ---------------------------------------------------------------------------------------------
# every backend against the unfused composition

SHAPES = {  # (N, C, V, chunk_rows)
    "N-not-multiple-of-chunk": (37, 16, 23, 8),
    "one-chunk": (20, 8, 30, 64),
    "N=1": (1, 5, 7, 4),
    "V=1": (9, 4, 1, 4),
    "chunk=1": (5, 3, 6, 1),
    "wide-V": (33, 12, 300, 16),
    # chunks big enough for the C pass between the GEMMs to open its thread team, over blocks of
    # rows (4 MiB each: 26 rows in float64, 52 in float32, the last one partial) and db in
    # pieces of columns (the last one partial)
    "row-blocks": (150, 4, 20000, 64),
}


@pytest.mark.parametrize("dtype", [f32, f64])
@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
def test_matches_unfused(backend, threads, dtype, shape):
    N, C, V, chunk = shape
    x, W, b, t = make_case(N, C, V, dtype=dtype, ignored=0.2)
    for reduction in ("mean", "sum", "none"):
        for eps in (0.0, 0.1):
            check(backend, x, W, b, t, reduction=reduction, label_smoothing=eps,
                  chunk_rows=chunk)


@pytest.mark.parametrize("chunk", [3, 4, 100])
def test_ignored_chunks_and_ignore_index(backend, chunk):
    x, W, b, t = make_case(12, 6, 9, dtype=f64)
    t[:4] = 7            # with ignore_index=7, rows 0-3 (one or more whole chunks) are ignored
    t[9] = 7
    for reduction in ("mean", "sum", "none"):
        loss, dx, _, _ = check(backend, x, W, b, t, ignore_index=7, reduction=reduction,
                               chunk_rows=chunk)
        assert np.all(dx[:4] == 0) and np.all(dx[9] == 0)
        if reduction == "none":
            assert np.all(loss[:4] == 0)


def test_all_ignored(backend):
    x, W, b, t = make_case(10, 4, 6)
    t[:] = IGNORE
    loss, dx, dW, db = linear_cross_entropy(x, W, t, b, chunk_rows=3, backend=backend)
    assert np.isnan(loss)  # 0/0, as PyTorch's mean over no rows
    assert not dx.any() and not dW.any() and not db.any()
    loss, *_ = linear_cross_entropy(x, W, t, b, reduction="sum", chunk_rows=3, backend=backend)
    assert loss == 0


def test_without_bias(backend):
    x, W, _, t = make_case(13, 5, 8)
    loss, dx, dW, db = check(backend, x, W, None, t, chunk_rows=4)
    assert db is None


@pytest.mark.parametrize("N,C", [(0, 4), (5, 0)])
def test_empty(backend, N, C):
    x, W, b, t = make_case(N, C, 6, dtype=f64)
    check(backend, x, W, b, t, reduction="sum", chunk_rows=2)
    dW, db = np.ones((6, C)), np.ones(6)
    linear_cross_entropy(x, W, t, b, dW=dW, db=db, accumulate=True, reduction="sum",
                         backend=backend)
    want = unfused64(x, W, b, t, reduction="sum")
    assert_close(dW, 1 + want[2], rtol=1e-12, atol=1e-12, what="dW +=")
    assert_close(db, 1 + want[3], rtol=1e-12, atol=1e-12, what="db +=")


def test_accumulate_adds_and_dx_is_overwritten(backend):
    x, W, b, t = make_case(21, 6, 11, dtype=f64, ignored=0.1)
    dx = np.full((21, 6), 5.0)
    dW = np.full((11, 6), 2.0)
    db = np.full(11, 3.0)
    linear_cross_entropy(x, W, t, b, dx=dx, dW=dW, db=db, accumulate=True, chunk_rows=4,
                         backend=backend)
    _, want_dx, want_dW, want_db = unfused64(x, W, b, t)
    assert_close(dx, want_dx, rtol=1e-10, atol=1e-13, what="dx =")
    assert_close(dW, 2.0 + want_dW, rtol=1e-10, atol=1e-13, what="dW +=")
    assert_close(db, 3.0 + want_db, rtol=1e-10, atol=1e-13, what="db +=")


def test_skipped_gradients_and_given_buffers(backend):
    x, W, b, t = make_case(9, 4, 5)
    dW = np.full((5, 4), np.nan, dtype=f32)
    loss, dx, dW2, db = linear_cross_entropy(x, W, t, b, dx=False, dW=dW, db=False,
                                             chunk_rows=2, backend=backend)
    assert dx is None and db is None and dW2 is dW
    assert_close(dW, unfused64(x, W, b, t)[2], rtol=2e-4, atol=2e-6, what="dW")


def test_chunk_size_does_not_change_the_values(backend):
    x, W, b, t = make_case(50, 8, 40, dtype=f64, ignored=0.1)
    results = [linear_cross_entropy(x, W, t, b, chunk_rows=c, backend=backend)
               for c in (1, 7, 50, None)]
    for r in results[1:]:
        assert_close(r[0], results[0][0], rtol=1e-13, atol=0, what="loss")
        for g, g0 in zip(r[1:], results[0][1:]):
            assert_close(g, g0, rtol=1e-12, atol=1e-15, what="gradient")


def test_same_bits_every_call_and_any_thread_count(backend):
    import fasttrain

    x, W, b, t = make_case(300, 16, 120, ignored=0.1)
    before = fasttrain.get_num_threads()
    try:
        runs = []
        for n in (1, 2, 1):
            fasttrain.set_num_threads(n)
            runs.append(linear_cross_entropy(x, W, t, b, chunk_rows=64, backend=backend))
    finally:
        fasttrain.set_num_threads(before)
    # the BLAS may split a GEMM differently per thread count: compare calls at one count
    # bitwise, and across counts to rounding
    for a, c in zip(runs[0], runs[2]):
        assert np.array_equal(a, c), "two calls with 1 thread differ"
    for a, c in zip(runs[0], runs[1]):
        assert_close(a, c, rtol=1e-5, atol=1e-7, what="1 vs 2 threads")


def test_extreme_and_nonfinite_logits(backend):
    x, W, b, t = make_case(8, 3, 5, dtype=f64)
    x[0] *= 1e4       # huge logits: the row's max keeps exp in range
    check(backend, x, W, b, t, chunk_rows=3)
    x[2, 1] = np.nan  # a NaN input gives that row NaN, as in PyTorch
    loss, dx, *_ = linear_cross_entropy(x, W, t, b, reduction="none", chunk_rows=3,
                                        backend=backend)
    assert np.isnan(loss[2]) and np.isfinite(np.delete(loss, 2)).all()
    assert np.isnan(dx[2]).all()


def test_inputs_that_are_copied(backend):
    x, W, b, t = make_case(10, 6, 7)
    want = linear_cross_entropy(x, W, t, b, backend=backend)
    xf, Wf = np.asfortranarray(x), np.asfortranarray(W)
    got = linear_cross_entropy(xf, Wf, t.astype(np.int16), b, backend=backend)
    for g, w in zip(got, want):
        assert_close(g, w, rtol=1e-6, atol=1e-7, what="Fortran-ordered inputs")


# each option on the small shapes; all of them at once on the shape whose C pass opens its team
OPTION_CASES = [pytest.param(SHAPES[s], o, id=f"{s}-{o}") for s in ("N-not-multiple-of-chunk",
                "V=1", "wide-V") for o in OPTIONS] + [
    pytest.param(SHAPES["row-blocks"], "all", id="row-blocks-all")]


@pytest.mark.parametrize("dtype", [f32, f64])
@pytest.mark.parametrize("shape,option", OPTION_CASES)
def test_options_match_unfused(backend, dtype, shape, option):
    N, C, V, chunk = shape
    x, W, b, t = make_case(N, C, V, dtype=dtype, ignored=0.2, seed=41)
    for reduction in ("mean", "sum", "none"):
        for eps in (0.0, 0.1):
            kw = dict(reduction=reduction, label_smoothing=eps,
                      **options(option, N, V, dtype, reduction))
            got = linear_cross_entropy(x, W, t, b, chunk_rows=chunk, backend=backend, **kw)
            want = unfused64(x, W, b, t, **kw)
            tl, tg = tolerances(dtype, t, reduction)
            if reduction == "mean" and "weight" in kw:  # the mean's 1 / (kept rows' weights)
                kept = t != IGNORE
                tg["atol"] *= kept.sum() / max(float(kw["weight"][t[kept]].sum()), 1e-3)
            if dtype == f32 and "grad_rows" in kw:
                tg["atol"] *= 3
            assert_close(got[0], want[0], **tl, what=f"{option} loss")
            for name, g, w in zip(("dx", "dW", "db"), got[1:], want[1:]):
                assert_close(g, w, **tg, what=f"{option} {name}, {reduction}, eps {eps}")


def test_grad_rows_scale_each_row_of_every_gradient(backend):
    """dx, dW and db with grad_rows g are those of the row losses weighted by g: the same as
    scaling the unfused dlogits row by row, which a plain backward (of the sum) cannot give."""
    x, W, b, t = make_case(25, 6, 11, dtype=f64, ignored=0.2, seed=42)
    g = np.random.default_rng(43).standard_normal(25)
    loss, dx, dW, db = linear_cross_entropy(x, W, t, b, reduction="none", grad_rows=g,
                                            chunk_rows=4, backend=backend)
    logits = linear_forward(x, W, b, backend="numpy")
    rows, dlogits = softmax_cross_entropy(logits, t, reduction="none", backend="numpy")
    want = linear_backward(x, W, g[:, None] * dlogits, backend="numpy")
    assert_close(loss, rows, rtol=1e-12, atol=1e-14, what="losses")
    for name, a, w in zip(("dx", "dW", "db"), (dx, dW, db), want):
        assert_close(a, w, rtol=1e-10, atol=1e-13, what=name)
    plain = linear_cross_entropy(x, W, t, b, reduction="none", chunk_rows=4, backend=backend)
    assert not np.allclose(plain[2], dW)  # the sum's gradient is a different one


def test_options_same_bits_every_call_and_any_thread_count(backend):
    """As test_same_bits_every_call_and_any_thread_count, with every option, and V large enough
    for the C pass between the GEMMs to open its team (64 x 2000 logits per chunk)."""
    import fasttrain

    x, W, b, t = make_case(300, 16, 2000, ignored=0.1, seed=44)
    kw = options("all", 300, 2000, f32, "none")
    before = fasttrain.get_num_threads()
    try:
        runs = []
        for n in (1, 2, 1):
            fasttrain.set_num_threads(n)
            runs.append(linear_cross_entropy(x, W, t, b, chunk_rows=64, reduction="none",
                                             backend=backend, **kw))
    finally:
        fasttrain.set_num_threads(before)
    for a, c in zip(runs[0], runs[2]):
        assert np.array_equal(a, c), "two calls with 1 thread differ"
    for a, c in zip(runs[0], runs[1]):  # the GEMMs' rounding differs with BLAS's threads
        assert_close(a, c, rtol=1e-5, atol=1e-5, what="1 vs 2 threads")


# ---------------------------------------------------------------------------------------------
# PyTorch: the third voice

@pytest.mark.parametrize("dtype", [f32, f64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_matches_pytorch(backend, torch, dtype, reduction, bias):
    F = torch.nn.functional
    x, W, b, t = make_case(45, 12, 31, dtype=dtype, ignored=0.2, seed=3)
    b = b if bias else None
    xt, Wt = torch.tensor(x, requires_grad=True), torch.tensor(W, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True) if bias else None
    lt = F.cross_entropy(F.linear(xt, Wt, bt), torch.tensor(t), ignore_index=IGNORE,
                         reduction=reduction, label_smoothing=0.1)
    lt.sum().backward()
    loss, dx, dW, db = linear_cross_entropy(x, W, t, b, reduction=reduction,
                                            label_smoothing=0.1, chunk_rows=8, backend=backend)
    tl, tg = tolerances(dtype, t, reduction)
    assert_close(loss, lt.detach().numpy(), **tl, what="loss vs torch")
    assert_close(dx, xt.grad.numpy(), **tg, what="dx vs torch")
    assert_close(dW, Wt.grad.numpy(), **tg, what="dW vs torch")
    if bias:
        assert_close(db, bt.grad.numpy(), **tg, what="db vs torch")


@pytest.mark.parametrize("dtype", [f32, f64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("option", OPTIONS)
def test_options_match_pytorch(backend, torch, dtype, reduction, option):
    """The options written out in PyTorch: F.cross_entropy with weight on the capped logits,
    plus the z-loss over the kept rows (averaged over their count for "mean", as Liger Kernel
    does), backward with grad_rows as the upstream gradient of "none"."""
    F = torch.nn.functional
    x, W, b, t = make_case(45, 12, 31, dtype=dtype, ignored=0.2, seed=45)
    kw = options(option, 45, 31, dtype, reduction)
    xt, Wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, W, b))
    z = F.linear(xt, Wt, bt)
    if "softcap" in kw:
        z = kw["softcap"] * torch.tanh(z / kw["softcap"])
    tt = torch.tensor(t)
    weight = torch.tensor(kw["weight"]) if "weight" in kw else None
    lt = F.cross_entropy(z, tt, weight=weight, ignore_index=IGNORE, reduction=reduction,
                         label_smoothing=0.1)
    kept = tt != IGNORE
    zl = kw.get("lse_square_scale", 0.0) * torch.where(kept, torch.logsumexp(z, 1) ** 2, 0)
    lt = lt + {"mean": zl.sum() / kept.sum(), "sum": zl.sum(), "none": zl}[reduction]
    g = kw.get("grad_rows")
    lt.backward(torch.tensor(g) if g is not None else torch.ones_like(lt))
    loss, dx, dW, db = linear_cross_entropy(x, W, t, b, reduction=reduction, label_smoothing=0.1,
                                            chunk_rows=8, backend=backend, **kw)
    tl, tg = tolerances(dtype, t, reduction)
    if reduction == "mean" and weight is not None:
        tg["atol"] *= kept.sum().item() / float(kw["weight"][t[t != IGNORE]].sum())
    if dtype == f32 and g is not None:
        tg["atol"] *= 3
    assert_close(loss, lt.detach().numpy(), **tl, what="loss vs torch")
    assert_close(dx, xt.grad.numpy(), **tg, what="dx vs torch")
    assert_close(dW, Wt.grad.numpy(), **tg, what="dW vs torch")
    assert_close(db, bt.grad.numpy(), **tg, what="db vs torch")


# ---------------------------------------------------------------------------------------------
# the default chunk and bad inputs

def test_default_chunk_rows_bounds_the_buffer():
    # at most 1/8 of the logits of the largest shape, and tall enough for the GEMMs
    assert default_chunk_rows(50257, 4) * 50257 * 4 <= 8192 * 50257 * 4 / 8
    assert default_chunk_rows(50257, 4) >= 128
    assert default_chunk_rows(256, 4) >= 8192  # a small vocabulary: one chunk, as unfused
    assert default_chunk_rows(50257, 4, 8192) == 911    # 9 chunks of equal height
    assert default_chunk_rows(50257, 4, 1002) == 501    # not 1001 + 1
    assert default_chunk_rows(50257, 4, 5) == 5


def _good():
    x, W, b, t = make_case(4, 3, 5)
    return dict(x=x, W=W, targets=t, b=b)


BAD = [
    # (id, changes to the good arguments, exception, message fragment)
    ("x-list", dict(x=[[1.0, 2.0, 3.0]]), TypeError, "x must be a numpy.ndarray"),
    ("x-int", dict(x=np.zeros((4, 3), dtype=np.int32)), TypeError, "x must be float32 or float64"),
    ("x-3d", dict(x=np.zeros((2, 2, 3), dtype=f32)), ValueError, r"x must be 2-D .*B\*T"),
    ("W-C", dict(W=np.zeros((5, 4), dtype=f32)), ValueError,
     r"W must have shape \(V, C\) = \(V, 3\) to match x \(4, 3\), got \(5, 4\)"),
    ("W-f64", dict(W=np.zeros((5, 3), dtype=f64)), TypeError,
     "W must have the dtype of x, float32, got float64"),
    ("V=0", dict(W=np.zeros((0, 3), dtype=f32), b=None), ValueError, "V >= 1"),
    ("b-shape", dict(b=np.zeros(4, dtype=f32)), ValueError, r"b must have shape \(V,\) = \(5,\)"),
    ("b-f64", dict(b=np.zeros(5, dtype=f64)), TypeError, "b must have the dtype of x"),
    ("targets-float", dict(targets=np.zeros(4)), TypeError, "targets must have an integer dtype"),
    ("targets-shape", dict(targets=np.zeros(3, dtype=int)), ValueError,
     r"targets must have shape \(4,\)"),
    ("target-range", dict(targets=np.array([0, 5, 1, 2])), ValueError,
     r"targets\[1\] = 5 is outside \[0, 5\)"),
    ("reduction", dict(reduction="avg"), ValueError, "reduction must be one of"),
    ("smoothing", dict(label_smoothing=1.5), ValueError, "label_smoothing must be in"),
    ("chunk-0", dict(chunk_rows=0), ValueError, "chunk_rows must be >= 1"),
    ("chunk-float", dict(chunk_rows=2.0), TypeError, "chunk_rows must be an integer"),
    ("accumulate-int", dict(accumulate=1), TypeError, "accumulate must be True or False"),
    ("accumulate-no-dW", dict(accumulate=True, dW=None), ValueError,
     "accumulate=True adds into dW and db"),
    ("db-without-b", dict(b=None, db=np.zeros(5, dtype=f32)), ValueError, "b is None"),
    ("dx-shape", dict(dx=np.zeros((4, 4), dtype=f32)), ValueError, r"dx must have shape \(4, 3\)"),
    ("dW-dtype", dict(dW=np.zeros((5, 3), dtype=f64)), TypeError, "dW must have dtype float32"),
    ("dW-fortran", dict(dW=np.zeros((3, 5), dtype=f32).T), ValueError, "C-contiguous"),
    ("db-readonly", "readonly-db", ValueError, "db is read-only"),
    ("dW-is-W", "dW-W", ValueError, "dW overlaps W"),
    ("dW-overlaps-dx", "dW-dx", ValueError, "dW overlaps dx"),
    ("backend", dict(backend="cuda"), ValueError, "unknown backend 'cuda'"),
    ("blas-int", "huge", ValueError, r"N = 2147483648 exceeds the BLAS integer limit"),
    ("weight-shape", dict(weight=np.ones(4, dtype=f32)), ValueError,
     r"weight must have shape \(V,\) = \(5,\), got \(4,\)"),
    ("weight-dtype", dict(weight=np.ones(5)), TypeError,
     "weight must have the dtype of x, float32, got float64"),
    ("weight-negative", dict(weight=np.array([1, 1, 1, -1, 1], f32)), ValueError,
     r"weight\[3\] = -1.0: class weights must be finite and >= 0"),
    ("weight-nan", dict(weight=np.array([np.nan, 1, 1, 1, 1], f32)), ValueError,
     r"weight\[0\] = nan"),
    ("zloss-negative", dict(lse_square_scale=-1.0), ValueError, "lse_square_scale must be in"),
    ("zloss-nan", dict(lse_square_scale=float("nan")), ValueError, "lse_square_scale must be in"),
    ("softcap-zero", dict(softcap=0), ValueError, "softcap must be None or a finite number > 0"),
    ("softcap-negative", dict(softcap=-1.0), ValueError, "softcap must be in"),
    ("grad-rows-sum", dict(grad_rows=np.ones(4, dtype=f32), reduction="sum"), ValueError,
     "grad_rows is the per-row gradient of reduction='none'; with reduction='sum'"),
    ("grad-rows-shape", dict(grad_rows=np.ones(3, dtype=f32), reduction="none"), ValueError,
     r"grad_rows must have shape \(N,\) = \(4,\), got \(3,\)"),
    ("grad-rows-dtype", dict(grad_rows=np.ones(4), reduction="none"), TypeError,
     "grad_rows must have the dtype of x"),
    ("dx-is-grad-rows", "dx-grad-rows", ValueError, "dx overlaps grad_rows"),
]


@pytest.mark.parametrize("change,exc,message", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input_raises_before_touching_memory(change, exc, message):
    args = _good()
    args.update(dx=np.full((4, 3), 7, dtype=f32), dW=np.full((5, 3), 7, dtype=f32),
                db=np.full(5, 7, dtype=f32))
    if change == "readonly-db":
        db = np.zeros(5, dtype=f32)
        db.flags.writeable = False
        change = dict(db=db)
    elif change == "dW-W":
        change = dict(dW=args["W"])
    elif change == "dW-dx":
        buf = np.zeros(30, dtype=f32)
        change = dict(dx=buf[:12].reshape(4, 3), dW=buf[10:25].reshape(5, 3))
    elif change == "dx-grad-rows":
        dx = np.zeros((4, 3), dtype=f32)
        change = dict(dx=dx, grad_rows=dx.reshape(-1)[:4], reduction="none")
    elif change == "huge":  # 2**31 rows of nothing: broadcast views, no memory behind them
        change = dict(x=np.broadcast_to(np.zeros((1, 3), dtype=f32), (2**31, 3)))
    args.update(change)
    watched = [a for a in args.values() if isinstance(a, np.ndarray) and a.flags.writeable]
    before = [a.copy() for a in watched]
    with pytest.raises(exc, match=message):
        linear_cross_entropy(**args)
    for a, b in zip(watched, before):
        assert np.array_equal(a, b, equal_nan=True), "memory changed before the error"


# ---------------------------------------------------------------------------------------------
# the MLP's head: fused by default, the unfused path behind a switch; the same step either way

@pytest.mark.parametrize("V,B", [(50, 32), (300, 64)], ids=["tables", "gemm"])
def test_mlp_fused_head_matches_unfused(backend, V, B):
    from fasttrain.models.mlp import MLP

    rng = np.random.default_rng(2)
    x, y = rng.integers(0, V, (B, 3)), rng.integers(0, V, B)
    head_bias = rng.standard_normal(V) * 0.1  # away from 0, so its gradient is tested
    results = []
    for fused in (True, False):
        model = MLP(vocab_size=V, context=3, n_embd=5, hidden=16, backend=backend,
                    fused_head=fused)
        model.init(0)
        model.arena["head.bias"][...] = head_bias
        model.arena.zero_grad()
        loss = model.forward_backward(x, y)
        results.append((loss, model.arena.grads.copy()))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-6)
    assert_close(results[0][1], results[1][1], rtol=1e-4, atol=1e-7, what="gradients")

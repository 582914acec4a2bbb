"""softmax_cross_entropy: the reference against finite differences and the worked example,
every backend against the reference (dtypes, shapes, reductions, smoothing, ignored rows,
extreme logits, threads, and the options: class weights, z-loss, soft cap, per-row upstream
gradients), against PyTorch, and every bad input against its error."""
import math

import numpy as np
import pytest

import fasttrain
from fasttrain.kernels import softmax_cross_entropy
from conftest import assert_close, numeric_gradient

IGNORE = -100


def make_case(N, V, *, dtype=np.float32, scale=1.0, ignored=0.0, seed=0):
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((N, V)) * scale).astype(dtype)  # (N, V)
    targets = rng.integers(0, V, size=N)                          # (N,)
    targets[rng.random(N) < ignored] = IGNORE
    return logits, targets


def reference64(logits, targets, **kw):
    """The spec, evaluated in float64 on the same (upcast) inputs: the value to match."""
    return softmax_cross_entropy(logits.astype(np.float64), targets, backend="numpy", **kw)


def tolerances(dtype, logits, targets, reduction):
    """rtol/atol for loss and gradient. float32: the row's arithmetic rounds at ~1e-7 relative
    to the logits' magnitude; the gradient's scale is 1/n_valid for "mean"."""
    n_valid = max(int(np.count_nonzero(targets != IGNORE)), 1)
    gscale = 1.0 / n_valid if reduction == "mean" else 1.0
    big = float(np.max(np.abs(logits[np.isfinite(logits)]), initial=0.0))
    if dtype == np.float64:
        return dict(rtol=1e-12, atol=1e-12 * (1 + big)), dict(rtol=1e-10, atol=1e-14 * gscale)
    return dict(rtol=2e-6, atol=4e-7 * (1 + big)), dict(rtol=1e-5, atol=4e-7 * gscale)


def check_against_reference(backend, logits, targets, **kw):
    loss, grad = softmax_cross_entropy(logits, targets, backend=backend, **kw)
    ref_loss, ref_grad = reference64(logits, targets, **kw)
    assert grad.dtype == logits.dtype and grad.shape == logits.shape
    tl, tg = tolerances(logits.dtype, logits, targets, kw.get("reduction", "mean"))
    assert_close(loss, ref_loss, **tl, what=f"{backend} loss")
    assert_close(grad, ref_grad, **tg, what=f"{backend} dlogits")
    return loss, grad


# ---------------------------------------------------------------------------------------------
# the reference is the spec: check it against calculus and against the worked example

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
def test_reference_matches_finite_differences(reduction, label_smoothing):
    logits, targets = make_case(4, 6, dtype=np.float64, scale=2.0, seed=1)
    targets[2] = IGNORE
    kw = dict(ignore_index=IGNORE, reduction=reduction, label_smoothing=label_smoothing)

    def scalar_loss(x):
        loss, _ = softmax_cross_entropy(x, targets, backend="numpy", **kw)
        return float(np.sum(loss))  # "none": the gradient is that of the sum

    _, grad = softmax_cross_entropy(logits, targets, backend="numpy", **kw)
    numeric = numeric_gradient(scalar_loss, [logits], 0)
    assert_close(grad, numeric, rtol=1e-6, atol=1e-9, what="finite differences")


def test_worked_example(backend):
    # "the cat sat" -> "on": p over [the, cat, sat, on, mat]
    p = np.array([[0.15, 0.10, 0.05, 0.20, 0.50]])
    on = np.array([3])
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-6)):
        loss, grad = softmax_cross_entropy(np.log(p).astype(dtype), on, backend=backend)
        assert abs(loss - 1.6094379124341003) < tol  # -log(0.20)
        assert_close(grad[0], [0.15, 0.10, 0.05, -0.80, 0.50], rtol=0, atol=tol * 10,
                     what="p - onehot")
    confident = np.log(np.array([[0.03, 0.03, 0.02, 0.90, 0.02]]))
    loss, _ = softmax_cross_entropy(confident, on, backend=backend)
    assert round(loss, 3) == 0.105  # -log(0.90)


# ---------------------------------------------------------------------------------------------
# every backend against the reference

SHAPES = [(1, 1), (1, 2), (3, 1), (2, 2), (1, 1000), (5, 7), (17, 33), (64, 256), (33, 4099)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("ignored", [0.0, 0.4], ids=["all-rows", "some-ignored"])
def test_matches_reference(backend, dtype, shape, reduction, label_smoothing, ignored):
    logits, targets = make_case(*shape, dtype=dtype, scale=3.0, ignored=ignored)
    check_against_reference(backend, logits, targets, reduction=reduction,
                            label_smoothing=label_smoothing)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", ["scale+1e4", "scale-1e4", "offset+1e4", "equal-row", "tiny"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_extreme_logits(backend, dtype, case, label_smoothing):
    logits, targets = make_case(16, 300, dtype=dtype, seed=3)
    if case == "scale+1e4":
        logits *= 1e4
    elif case == "scale-1e4":
        logits = (-np.abs(logits) * 1e4).astype(dtype)
    elif case == "offset+1e4":
        logits += dtype(1e4)
    elif case == "equal-row":
        logits[:] = 7.0
    elif case == "tiny":
        logits *= dtype(1e-30)
    check_against_reference(backend, logits, targets, label_smoothing=label_smoothing,
                            reduction="none")


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_nan_and_inf_propagate_like_pytorch(backend, torch, label_smoothing):
    logits, targets = make_case(6, 5, dtype=np.float32, seed=4)
    logits[0, 2] = np.nan                # NaN anywhere: the row's loss and gradient are NaN
    logits[1, 1] = np.inf                # +inf: NaN row
    logits[2, 0] = -np.inf               # -inf off target: p = 0 there
    logits[3, targets[3]] = -np.inf      # -inf at the target: loss +inf, finite gradient
    logits[4, :] = -np.inf               # all -inf: NaN row
    loss, grad = softmax_cross_entropy(logits, targets, reduction="none",
                                       label_smoothing=label_smoothing, backend=backend)
    x = torch.tensor(logits, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(x, torch.tensor(targets), reduction="none",
                                            label_smoothing=label_smoothing)
    ref.sum().backward()
    assert_close(loss, ref.detach().numpy(), rtol=1e-5, atol=1e-6, what="losses")
    assert_close(grad, x.grad.numpy(), rtol=1e-5, atol=1e-6, what="dlogits")


def test_threads_give_identical_bits(backend):
    logits, targets = make_case(257, 1031, ignored=0.1, seed=5)
    results = []
    before = fasttrain.get_num_threads()
    try:
        for n in (1, 2, 3):
            fasttrain.set_num_threads(n)
            results.append(softmax_cross_entropy(logits, targets, backend=backend))
    finally:
        fasttrain.set_num_threads(before)
    for loss, grad in results[1:]:
        assert loss == results[0][0]
        assert np.array_equal(grad, results[0][1])


def test_thread_counts_match_reference(backend, threads):
    logits, targets = make_case(300, 700, ignored=0.2, seed=6)
    check_against_reference(backend, logits, targets, label_smoothing=0.05)


@pytest.fixture(scope="module", params=[(7, 1000003), (1024, 50257)],
                ids=["7x1000003", "1024x50257"])
def large_case(request):
    """A large case and its float64 reference, computed once for all backends: a GPT-2-sized
    vocabulary over 200 MB of logits, far beyond the cache and split across threads. The float64
    reference would need GBs at once; rows are independent, so it is evaluated a block of rows
    at a time and kept as float32 (rounding 6e-8, far inside the tolerance)."""
    N, V = request.param
    rng = np.random.default_rng(7)
    logits = rng.standard_normal((N, V), dtype=np.float32) * np.float32(2.0)  # (N, V)
    targets = rng.integers(0, V, size=N)
    targets[rng.random(N) < 0.01] = IGNORE
    n_valid = np.count_nonzero(targets != IGNORE)
    ref_grad = np.empty_like(logits)
    total = 0.0
    for lo in range(0, N, 256):
        rows = slice(lo, lo + 256)
        ref_rows, grad_rows = reference64(logits[rows], targets[rows], reduction="none")
        total += ref_rows.sum()
        ref_grad[rows] = grad_rows / n_valid
    return logits, targets, total / n_valid, ref_grad


@pytest.mark.slow
def test_large_shapes(backend, large_case):
    logits, targets, ref_loss, ref_grad = large_case
    loss, grad = softmax_cross_entropy(logits, targets, backend=backend)
    tl, tg = tolerances(np.float32, logits, targets, "mean")
    assert_close(loss, ref_loss, **tl, what="loss")
    for lo in range(0, len(logits), 256):
        rows = slice(lo, lo + 256)
        assert_close(grad[rows], ref_grad[rows], **tg, what=f"dlogits rows {lo}+")


def test_a_million_classes_keep_float32_accuracy(backend):
    """At V = 1e6 a float32 row sum in one accumulator lost 1.8e-5 relative (AVX2's 8 lanes;
    6.7e-5 without vectorisation), and every probability and the loss with it: the sums are
    blocked, the blocks added in double, so each row stays at float32 rounding."""
    N, V = 3, 1_000_000
    logits = np.random.default_rng(11).standard_normal((N, V), dtype=np.float32) * np.float32(2)
    targets = np.array([0, V // 2, V - 1])
    for eps in (0.0, 0.1):
        loss, grad = softmax_cross_entropy(logits, targets, reduction="none",
                                           label_smoothing=eps, backend=backend)
        ref_loss, ref_grad = reference64(logits, targets, reduction="none", label_smoothing=eps)
        assert_close(loss, ref_loss, rtol=2e-7, atol=4e-6, what=f"loss, smoothing {eps}")
        assert_close(grad, ref_grad, rtol=2e-6, atol=1e-13, what=f"dlogits, smoothing {eps}")


# ---------------------------------------------------------------------------------------------
# the options: class weights, z-loss (lse_square_scale), soft cap, per-row upstream gradients

def class_weights(V, seed=20):
    """(V,) positive class weights, one of them 0 (a class that never counts)."""
    w = np.random.default_rng(seed).uniform(0.2, 2.0, V)
    w[V // 2] = 0.0
    return w


def options(name, N, V, dtype, reduction):
    """The keyword arguments of one option set, named as the test ids."""
    rng = np.random.default_rng(21)
    w = class_weights(V).astype(dtype)
    g = rng.standard_normal(N).astype(dtype) if reduction == "none" else None
    return {
        "weight": dict(weight=w),
        "zloss": dict(lse_square_scale=1e-2),
        "softcap": dict(softcap=2.5),
        "grad_rows": dict(grad_rows=g),
        "all": dict(weight=w, lse_square_scale=3e-2, softcap=4.0, grad_rows=g),
    }[name]


OPTIONS = ["weight", "zloss", "softcap", "grad_rows", "all"]


def torch_loss(torch, logits, targets, *, reduction="mean", label_smoothing=0.0,
               ignore_index=IGNORE, weight=None, lse_square_scale=0.0, softcap=None,
               grad_rows=None):
    """The options written out in PyTorch: F.cross_entropy on the capped logits, plus the
    z-loss over the kept rows (summed, or averaged over their count for "mean", as Liger Kernel
    does); backward with grad_rows as the upstream gradient for "none". Returns (loss, dlogits)."""
    F = torch.nn.functional
    x = torch.tensor(logits, requires_grad=True)
    z = x if softcap is None else softcap * torch.tanh(x / softcap)
    t = torch.tensor(targets)
    loss = F.cross_entropy(z, t, weight=None if weight is None else torch.tensor(weight),
                           ignore_index=ignore_index, reduction=reduction,
                           label_smoothing=label_smoothing)
    kept = t != ignore_index
    zl = lse_square_scale * torch.where(kept, torch.logsumexp(z, dim=1) ** 2, 0)
    loss = loss + {"mean": zl.sum() / kept.sum(), "sum": zl.sum(), "none": zl}[reduction]
    if reduction == "none":
        loss.backward(torch.ones_like(loss) if grad_rows is None else torch.tensor(grad_rows))
    else:
        loss.backward()
    return loss.detach().numpy(), x.grad.numpy()


def weighted_tolerances(dtype, logits, targets, reduction, weight):
    """tolerances() with the gradient's scale of the weighted mean, 1 / (kept rows' weights)."""
    tl, tg = tolerances(dtype, logits, targets, "sum")
    if reduction == "mean":
        kept = targets != IGNORE
        w_sum = float(np.sum(weight[targets[kept]])) if weight is not None else kept.sum()
        tg["atol"] /= max(w_sum, 1e-3)
    return tl, tg


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
@pytest.mark.parametrize("option", OPTIONS)
def test_reference_options_match_finite_differences(reduction, label_smoothing, option):
    logits, targets = make_case(5, 6, dtype=np.float64, scale=2.0, seed=22)
    targets[2] = IGNORE
    targets[3] = 3  # a class of weight 0 (class_weights(6)[3] == 0)
    kw = dict(ignore_index=IGNORE, reduction=reduction, label_smoothing=label_smoothing,
              **options(option, 5, 6, np.float64, reduction))
    g = kw.get("grad_rows")

    def scalar_loss(x):
        loss, _ = softmax_cross_entropy(x, targets, backend="numpy", **kw)
        return float(np.sum(loss * (1 if g is None else g)))  # "none": sum_i g_i * loss_i

    _, grad = softmax_cross_entropy(logits, targets, backend="numpy", **kw)
    numeric = numeric_gradient(scalar_loss, [logits], 0)
    assert_close(grad, numeric, rtol=1e-6, atol=1e-9, what="finite differences")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (64, 256), (33, 4099)],
                         ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("option", OPTIONS)
def test_options_match_reference(backend, dtype, shape, reduction, label_smoothing, option):
    logits, targets = make_case(*shape, dtype=dtype, scale=3.0, ignored=0.3, seed=23)
    kw = dict(reduction=reduction, label_smoothing=label_smoothing,
              **options(option, *shape, dtype, reduction))
    loss, grad = softmax_cross_entropy(logits, targets, backend=backend, **kw)
    ref_kw = {k: (v.astype(np.float64) if isinstance(v, np.ndarray) else v)
              for k, v in kw.items()}
    ref_loss, ref_grad = reference64(logits, targets, **ref_kw)
    tl, tg = weighted_tolerances(dtype, logits, targets, reduction, kw.get("weight"))
    if kw.get("lse_square_scale"):  # lse^2 ~ 100 times the loss's rounding
        tl["atol"] *= 4
    if kw.get("grad_rows") is not None:
        tg["atol"] *= 3
    assert_close(loss, ref_loss, **tl, what=f"{backend} loss")
    assert_close(grad, ref_grad, **tg, what=f"{backend} dlogits")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.15])
@pytest.mark.parametrize("option", OPTIONS)
def test_options_match_torch(backend, torch, dtype, reduction, label_smoothing, option):
    logits, targets = make_case(37, 129, dtype=dtype, scale=4.0, ignored=0.2, seed=24)
    kw = dict(reduction=reduction, label_smoothing=label_smoothing,
              **options(option, 37, 129, dtype, reduction))
    loss, grad = softmax_cross_entropy(logits, targets, backend=backend, **kw)
    ref_loss, ref_grad = torch_loss(torch, logits, targets, **kw)
    tl, tg = weighted_tolerances(dtype, logits, targets, reduction, kw.get("weight"))
    if dtype == np.float32:  # torch reduces in float32, in its own order
        tl = dict(rtol=1e-5, atol=1e-5)
        tg["atol"] *= 3
    assert_close(loss, ref_loss, **tl, what="loss vs torch")
    assert_close(grad, ref_grad, **tg, what="dlogits vs torch")


def test_neutral_options_change_nothing(backend):
    """weight = ones, lse_square_scale = 0, grad_rows = ones: the plain loss, to rounding (the
    first two take the options' row, the last the plain one: the same bits)."""
    logits, targets = make_case(20, 50, ignored=0.2, seed=25)
    for reduction in ("mean", "none"):
        plain = softmax_cross_entropy(logits, targets, reduction=reduction,
                                      label_smoothing=0.1, backend=backend)
        weighted = softmax_cross_entropy(logits, targets, reduction=reduction,
                                         label_smoothing=0.1, weight=np.ones(50, np.float32),
                                         backend=backend)
        tl, tg = tolerances(np.float32, logits, targets, reduction)
        assert_close(weighted[0], plain[0], **tl, what="loss, weight=1")
        assert_close(weighted[1], plain[1], **tg, what="dlogits, weight=1")
    ones = softmax_cross_entropy(logits, targets, reduction="none", label_smoothing=0.1,
                                 grad_rows=np.ones(20, np.float32), backend=backend)
    assert np.array_equal(ones[0], plain[0]) and np.array_equal(ones[1], plain[1])


def test_grad_rows_scale_each_row(backend):
    logits, targets = make_case(30, 40, dtype=np.float64, ignored=0.2, seed=26)
    g = np.random.default_rng(27).standard_normal(30)
    g[3] = 0.0
    loss, grad = softmax_cross_entropy(logits, targets, reduction="none", grad_rows=g,
                                       softcap=3.0, lse_square_scale=0.1, backend=backend)
    loss1, grad1 = softmax_cross_entropy(logits, targets, reduction="none", softcap=3.0,
                                         lse_square_scale=0.1, backend=backend)
    assert np.array_equal(loss, loss1)  # the losses do not depend on the upstream gradient
    assert_close(grad, g[:, None] * grad1, rtol=1e-12, atol=1e-15, what="grad_rows * dlogits")
    assert not grad[3].any()


def test_weights_mean_divides_by_kept_weights(backend):
    """The worked case: two rows, targets of weight 3 and 1; the mean is (3 l0 + l1) / 4."""
    logits = np.log(np.array([[0.5, 0.25, 0.25], [0.2, 0.4, 0.4]]))
    targets = np.array([0, 1])
    w = np.array([3.0, 1.0, 7.0])
    loss, _ = softmax_cross_entropy(logits, targets, weight=w, backend=backend)
    assert loss == pytest.approx((3 * -np.log(0.5) + -np.log(0.4)) / 4, rel=1e-12)
    rows, _ = softmax_cross_entropy(logits, targets, weight=w, reduction="none",
                                    backend=backend)
    assert_close(rows, [3 * -np.log(0.5), -np.log(0.4)], rtol=1e-12, atol=0, what="rows")


def test_zloss_and_softcap_worked_values(backend):
    """z-loss: a uniform row of V = 4 zeros has lse = log 4, loss log 4 + zs log(4)^2. Soft cap:
    logits far beyond the cap act as +-cap, and their gradient vanishes (tanh' -> 0)."""
    zeros = np.zeros((1, 4))
    loss, grad = softmax_cross_entropy(zeros, np.array([1]), lse_square_scale=0.5,
                                       backend=backend)
    assert loss == pytest.approx(np.log(4) + 0.5 * np.log(4) ** 2, rel=1e-12)
    # d/dz (zs lse^2) = 2 zs lse p = log(4) / 4 on every class, plus p - onehot
    assert_close(grad[0], 0.25 + np.log(4) / 4 - np.array([0, 1, 0, 0]), rtol=1e-12, atol=0,
                 what="z-loss gradient")
    big = np.array([[1e3, -1e3, 0.0]])
    loss, grad = softmax_cross_entropy(big, np.array([2]), softcap=5.0, backend=backend)
    p = np.exp([5.0, -5.0, 0.0]) / np.exp([5.0, -5.0, 0.0]).sum()
    assert loss == pytest.approx(-np.log(p[2]), rel=1e-12)
    assert grad[0, 0] == 0 and grad[0, 1] == 0  # 1 - tanh(200)^2 rounds to 0
    assert grad[0, 2] == pytest.approx(p[2] - 1, rel=1e-12)


def test_zero_weight_rows_like_pytorch(backend, torch):
    """Kept rows whose classes all weigh 0: the mean is 0/0, NaN, and so are their gradients, as
    in PyTorch; an ignored row's gradient stays 0."""
    logits, _ = make_case(3, 4, dtype=np.float64, seed=28)
    targets = np.array([0, 1, IGNORE])
    w = np.array([0.0, 0.0, 1.0, 1.0])
    loss, grad = softmax_cross_entropy(logits, targets, weight=w, backend=backend)
    ref_loss, ref_grad = torch_loss(torch, logits, targets, weight=w)
    assert math.isnan(loss) and math.isnan(float(ref_loss))
    assert np.isnan(grad[:2]).all() and np.isnan(ref_grad[:2]).all()
    assert not grad[2].any() and not ref_grad[2].any()


def test_options_threads_give_identical_bits(backend):
    logits, targets = make_case(257, 1031, ignored=0.1, seed=29)
    kw = dict(weight=class_weights(1031).astype(np.float32), lse_square_scale=1e-3,
              softcap=30.0, label_smoothing=0.1)
    results = []
    before = fasttrain.get_num_threads()
    try:
        for n in (1, 2, 3):
            fasttrain.set_num_threads(n)
            results.append(softmax_cross_entropy(logits, targets, backend=backend, **kw))
    finally:
        fasttrain.set_num_threads(before)
    for loss, grad in results[1:]:
        assert loss == results[0][0]
        assert np.array_equal(grad, results[0][1])


def test_options_out_is_logits(backend):
    """out=logits with the soft cap: the capped logits are written into the buffer and read
    back, so in place must give the same bits as a separate buffer."""
    logits, targets = make_case(40, 97, seed=30)
    kw = dict(softcap=2.0, weight=class_weights(97).astype(np.float32), lse_square_scale=1e-2,
              label_smoothing=0.1)
    expected_loss, expected_grad = softmax_cross_entropy(logits, targets, backend=backend, **kw)
    loss, grad = softmax_cross_entropy(logits, targets, out=logits, backend=backend, **kw)
    assert grad is logits and loss == expected_loss
    assert np.array_equal(logits, expected_grad)


# ---------------------------------------------------------------------------------------------
# arguments, buffers and layouts

def test_out_is_logits_overwrites_in_place(backend):
    logits, targets = make_case(40, 97, seed=8)
    expected_loss, expected_grad = softmax_cross_entropy(logits, targets, backend=backend)
    loss, grad = softmax_cross_entropy(logits, targets, out=logits, backend=backend)
    assert grad is logits
    assert loss == expected_loss
    assert np.array_equal(logits, expected_grad)


def test_out_buffer_is_used(backend):
    logits, targets = make_case(8, 9, seed=9)
    out = np.full_like(logits, 123.0)
    _, grad = softmax_cross_entropy(logits, targets, out=out, backend=backend)
    assert grad is out
    assert np.array_equal(out, softmax_cross_entropy(logits, targets, backend=backend)[1])


@pytest.mark.parametrize("layout", ["fortran", "strided", "read-only", "big-endian"])
def test_inputs_that_are_copied(backend, layout):
    logits, targets = make_case(12, 10, seed=10)
    expected = softmax_cross_entropy(logits, targets, backend=backend)
    if layout == "fortran":
        given = np.asfortranarray(logits)
    elif layout == "strided":
        wide = np.zeros((12, 20), dtype=np.float32)
        wide[:, ::2] = logits
        given = wide[:, ::2]
    elif layout == "read-only":
        given = logits.copy()
        given.flags.writeable = False
    else:
        given = logits.astype(">f4")
    loss, grad = softmax_cross_entropy(given, targets, backend=backend)
    assert loss == expected[0]
    assert np.array_equal(grad, expected[1])


@pytest.mark.parametrize("tdtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32,
                                    np.uint32, np.int64, np.uint64])
def test_any_integer_target_dtype(backend, tdtype):
    logits, targets = make_case(9, 100, seed=11)
    expected = softmax_cross_entropy(logits, targets, backend=backend)
    loss, grad = softmax_cross_entropy(logits, targets.astype(tdtype), backend=backend)
    assert loss == expected[0] and np.array_equal(grad, expected[1])


def test_all_rows_ignored_like_pytorch(backend):
    logits, _ = make_case(4, 5, seed=12)
    targets = np.full(4, IGNORE)
    loss, grad = softmax_cross_entropy(logits, targets, backend=backend)
    assert math.isnan(loss)  # 0/0, as torch gives
    assert np.array_equal(grad, np.zeros_like(logits))
    loss, _ = softmax_cross_entropy(logits, targets, reduction="sum", backend=backend)
    assert loss == 0.0


def test_zero_rows(backend):
    logits = np.zeros((0, 5), dtype=np.float32)
    targets = np.zeros(0, dtype=np.int64)
    loss, grad = softmax_cross_entropy(logits, targets, backend=backend)
    assert math.isnan(loss) and grad.shape == (0, 5)
    loss, _ = softmax_cross_entropy(logits, targets, reduction="sum", backend=backend)
    assert loss == 0.0


def test_custom_ignore_index(backend):
    logits, targets = make_case(10, 6, seed=13)
    targets[[1, 4]] = 5
    got = check_against_reference(backend, logits, targets, ignore_index=5)
    assert np.all(got[1][[1, 4]] == 0)


# ---------------------------------------------------------------------------------------------
# PyTorch as a third voice

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.15])
def test_matches_pytorch(backend, torch, dtype, reduction, label_smoothing):
    logits, targets = make_case(37, 129, dtype=dtype, scale=4.0, ignored=0.2, seed=14)
    loss, grad = softmax_cross_entropy(logits, targets, reduction=reduction,
                                       label_smoothing=label_smoothing, backend=backend)
    x = torch.tensor(logits, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(x, torch.tensor(targets), ignore_index=IGNORE,
                                            reduction=reduction, label_smoothing=label_smoothing)
    ref.sum().backward()
    tl, tg = tolerances(dtype, logits, targets, reduction)
    if dtype == np.float32:  # torch reduces the mean in float32, in its own order
        tl = dict(rtol=1e-5, atol=1e-5)
    assert_close(loss, ref.detach().numpy(), **tl, what="loss vs torch")
    assert_close(grad, x.grad.numpy(), **tg, what="dlogits vs torch")


# ---------------------------------------------------------------------------------------------
# bad input: a clear error before any memory is touched

def _good():
    logits, targets = make_case(4, 5, seed=15)
    return dict(logits=logits, targets=targets)


BAD_INPUTS = [
    # (id, changes to the good arguments, exception, message fragment)
    ("logits-list", dict(logits=[[0.0, 1.0]]), TypeError, "logits must be a numpy.ndarray"),
    ("logits-None", dict(logits=None), TypeError, "logits must be a numpy.ndarray"),
    ("logits-int", dict(logits=np.zeros((4, 5), dtype=np.int32)), TypeError, "float32 or float64"),
    ("logits-f16", dict(logits=np.zeros((4, 5), dtype=np.float16)), TypeError, "float32 or float64"),
    ("logits-1d", dict(logits=np.zeros(5, dtype=np.float32)), ValueError, "must be 2-D"),
    ("logits-3d", dict(logits=np.zeros((2, 2, 5), dtype=np.float32)), ValueError, "must be 2-D"),
    ("V-zero", dict(logits=np.zeros((4, 0), dtype=np.float32)), ValueError, "V >= 1"),
    ("targets-float", dict(targets=np.zeros(4)), TypeError, "integer dtype"),
    ("targets-bool", dict(targets=np.zeros(4, dtype=bool)), TypeError, "integer dtype"),
    ("targets-list", dict(targets=[0, 1, 2, 3]), TypeError, "targets must be a numpy.ndarray"),
    ("targets-short", dict(targets=np.zeros(3, dtype=np.int64)), ValueError, r"shape \(4,\)"),
    ("targets-2d", dict(targets=np.zeros((4, 1), dtype=np.int64)), ValueError, r"shape \(4,\)"),
    ("target-V", dict(targets=np.array([0, 5, 1, 2])), ValueError, r"targets\[1\] = 5 is outside \[0, 5\)"),
    ("target-negative", dict(targets=np.array([0, 1, -1, 2])), ValueError, r"targets\[2\] = -1"),
    ("target-huge-uint", dict(targets=np.array([0, 1, 2, 2**64 - 1], dtype=np.uint64)), ValueError, "int64"),
    ("ignore-mismatch", dict(targets=np.array([0, -100, 1, 2]), ignore_index=-1), ValueError, r"ignore_index \(-1\)"),
    ("ignore-float", dict(ignore_index=1.5), TypeError, "ignore_index must be an integer"),
    ("reduction", dict(reduction="avg"), ValueError, "reduction must be one of"),
    ("smoothing-high", dict(label_smoothing=1.5), ValueError, r"label_smoothing must be in \[0.0, 1.0\]"),
    ("smoothing-negative", dict(label_smoothing=-0.1), ValueError, "label_smoothing"),
    ("smoothing-nan", dict(label_smoothing=float("nan")), ValueError, "label_smoothing"),
    ("smoothing-str", dict(label_smoothing="0.1"), TypeError, "label_smoothing must be a real"),
    ("out-list", dict(out=[0.0]), TypeError, "out must be a numpy.ndarray"),
    ("out-shape", dict(out=np.zeros((4, 6), dtype=np.float32)), ValueError, r"out must have shape \(4, 5\)"),
    ("out-dtype", dict(out=np.zeros((4, 5), dtype=np.float64)), TypeError, "out must have dtype float32"),
    ("out-fortran", dict(out=np.zeros((5, 4), dtype=np.float32).T), ValueError, "C-contiguous"),
    ("out-readonly", "readonly-out", ValueError, "read-only"),
    ("out-overlaps", "overlapping-out", ValueError, "out overlaps logits"),
    ("backend", dict(backend="cuda"), ValueError, "unknown backend 'cuda'"),
    ("weight-shape", dict(weight=np.ones(4, dtype=np.float32)), ValueError,
     r"weight must have shape \(V,\) = \(5,\), got \(4,\)"),
    ("weight-2d", dict(weight=np.ones((1, 5), dtype=np.float32)), ValueError, "weight must be 1-D"),
    ("weight-dtype", dict(weight=np.ones(5)), TypeError,
     "weight must have the dtype of logits, float32, got float64"),
    ("weight-list", dict(weight=[1.0] * 5), TypeError, "weight must be a numpy.ndarray"),
    ("weight-negative", dict(weight=np.array([1, 1, -0.5, 1, 1], np.float32)), ValueError,
     r"weight\[2\] = -0.5: class weights must be finite and >= 0"),
    ("weight-nan", dict(weight=np.array([1, np.nan, 1, 1, 1], np.float32)), ValueError,
     r"weight\[1\] = nan"),
    ("weight-inf", dict(weight=np.array([1, 1, 1, 1, np.inf], np.float32)), ValueError,
     r"weight\[4\] = inf"),
    ("zloss-negative", dict(lse_square_scale=-1e-4), ValueError,
     r"lse_square_scale must be in \[0.0, inf\], got -0.0001"),
    ("zloss-nan", dict(lse_square_scale=float("nan")), ValueError, "lse_square_scale must be in"),
    ("zloss-inf", dict(lse_square_scale=float("inf")), ValueError, "lse_square_scale must be finite"),
    ("zloss-str", dict(lse_square_scale="0.1"), TypeError, "lse_square_scale must be a real"),
    ("softcap-zero", dict(softcap=0.0), ValueError, "softcap must be None or a finite number > 0"),
    ("softcap-negative", dict(softcap=-30.0), ValueError, "softcap must be in"),
    ("softcap-inf", dict(softcap=float("inf")), ValueError, "softcap must be None or a finite"),
    ("softcap-nan", dict(softcap=float("nan")), ValueError, "softcap must be in"),
    ("grad-rows-mean", dict(grad_rows=np.ones(4, dtype=np.float32)), ValueError,
     "grad_rows is the per-row gradient of reduction='none'; with reduction='mean'"),
    ("grad-rows-shape", dict(grad_rows=np.ones(5, dtype=np.float32), reduction="none"),
     ValueError, r"grad_rows must have shape \(N,\) = \(4,\), got \(5,\)"),
    ("grad-rows-dtype", dict(grad_rows=np.ones(4), reduction="none"), TypeError,
     "grad_rows must have the dtype of logits"),
    ("out-is-weight", "out-weight", ValueError, "out overlaps weight"),
]


@pytest.mark.parametrize("change,exc,message", [b[1:] for b in BAD_INPUTS],
                         ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_raises_before_touching_memory(change, exc, message):
    args = _good()
    if change == "readonly-out":
        out = np.zeros((4, 5), dtype=np.float32)
        out.flags.writeable = False
        change = dict(out=out)
    elif change == "overlapping-out":
        buf = np.zeros(4 * 5 + 1, dtype=np.float32)
        args["logits"] = buf[:20].reshape(4, 5)
        change = dict(out=buf[1:].reshape(4, 5))
    elif change == "out-weight":
        buf = np.ones(4 * 5, dtype=np.float32)
        change = dict(out=buf.reshape(4, 5), weight=buf[:5])
    args.update(change)
    watched = [a for a in (args.get("out"), args.get("logits")) if isinstance(a, np.ndarray)]
    before = [a.copy() for a in watched]
    with pytest.raises(exc, match=message):
        softmax_cross_entropy(**args)
    for a, b in zip(watched, before):
        assert np.array_equal(a, b, equal_nan=True), "memory changed before the error"

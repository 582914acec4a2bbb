"""layernorm_forward / layernorm_backward: the reference against finite differences and a worked
example, every backend against the reference (dtypes, odd shapes, leading axes, accumulate,
extreme values, threads and their bits), against PyTorch (values, saved statistics, autograd
gradients), in place, zero rows. Bad input: tests/test_bad_input.py."""
import numpy as np
import pytest

import fasttrain
from fasttrain.kernels import layernorm_backward, layernorm_forward
from conftest import assert_close, numeric_gradient


def make_case(shape, *, dtype=np.float32, seed=0, scale=1.0, offset=0.0):
    rng = np.random.default_rng(seed)
    C = shape[-1]
    x = (rng.standard_normal(shape) * scale + offset).astype(dtype)  # (..., C)
    w = rng.standard_normal(C).astype(dtype)                         # (C,)
    b = rng.standard_normal(C).astype(dtype)                         # (C,)
    dy = rng.standard_normal(shape).astype(dtype)                    # (..., C)
    return x, w, b, dy


def up(*arrays):
    return [a.astype(np.float64) for a in arrays]


def big(a):
    a = np.asarray(a, dtype=np.float64)
    return float(np.abs(a[np.isfinite(a)]).max(initial=0.0))


def tolerances(dtype, x, w, dy, mean, rstd, dw0=0.0, db0=0.0):
    """(rtol, atol) per output. rtol is the issue's target: float32 within 1e-5 relative of a
    float64 reference, float64 within 1e-12. atol is a tenth of that, relative to the size of the
    terms each result is made of, not to the result: y, dx and dweight can cancel to near zero,
    and x - mean rounds relative to |x|, which rstd then scales (a row with |mean| >> std is
    ill-conditioned in any precision). The backward's terms: g = dy * w, and xhat, with
    mean(g * xhat) multiplying xhat again."""
    r = 1e-5 if dtype == np.float32 else 1e-12
    xr = big(x) * big(rstd)                      # |x| * rstd: the rounding scale of xhat
    xh = big((x.reshape(-1, x.shape[-1]) - np.reshape(mean, (-1, 1))) * np.reshape(rstd, (-1, 1))) \
        if x.size else 0.0                       # max |xhat|
    g = big(dy) * big(w)
    n = x.size // x.shape[-1]
    scale = {"y": (xh + xr) * big(w), "mean": big(x), "rstd": 0.0,
             "dx": big(rstd) * g * (1 + xh * (xh + 2 * xr)),
             "dweight": n * big(dy) * (xh + xr) + big(dw0), "dbias": n * big(dy) + big(db0)}
    return {k: dict(rtol=r, atol=r / 10 * v + np.finfo(dtype).tiny) for k, v in scale.items()}


# ---------------------------------------------------------------------------------------------
# the reference is the spec: check it against calculus and against a worked example

def test_reference_matches_finite_differences():
    # L = sum(G * y(x, w, b)) for a fixed G: dL/dy = G, and the backward of G is the gradient.
    # mean and rstd depend on x: the finite differences see that, the backward must too.
    x, w, b, G = make_case((3, 5), dtype=np.float64, seed=1, scale=2.0, offset=0.5)
    eps = 1e-3

    def loss(x, w, b):
        return float(np.sum(G * layernorm_forward(x, w, b, eps=eps, backend="numpy")[0]))

    _, mean, rstd = layernorm_forward(x, w, b, eps=eps, backend="numpy")
    grads = layernorm_backward(x, w, mean, rstd, G, backend="numpy")
    for name, arg, grad in (("x", 0, grads[0]), ("weight", 1, grads[1]), ("bias", 2, grads[2])):
        numeric = numeric_gradient(loss, [x, w, b], arg)
        assert_close(grad, numeric, rtol=1e-7, atol=1e-8, what=f"d{name} vs finite differences")


def test_worked_example(backend):
    # one row [1, 2, 3, 6]: mean 3, biased variance (4 + 1 + 0 + 9) / 4 = 3.5
    x = np.array([[1.0, 2.0, 3.0, 6.0]])
    w = np.array([1.0, 2.0, 0.5, -1.0])
    b = np.array([0.0, 1.0, 0.0, 2.0])
    eps = 0.5  # var + eps = 4: rstd = 0.5 exactly
    for dtype in (np.float64, np.float32):
        y, mean, rstd = layernorm_forward(*(a.astype(dtype) for a in (x, w, b)), eps=eps,
                                          backend=backend)
        assert mean.tolist() == [3.0] and rstd.tolist() == [0.5]
        assert y.tolist() == [[-1.0, 0.0, 0.0, 0.5]]  # xhat = [-1, -0.5, 0, 1.5]
        # dy = 1 everywhere: g = w, mean(g) = 0.625, mean(g * xhat) = (-1 - 1 + 0 - 1.5) / 4
        dx, dw, db = layernorm_backward(*(a.astype(dtype) for a in (x, w)), mean, rstd,
                                        np.ones((1, 4), dtype), backend=backend)
        assert dw.tolist() == [-1.0, -0.5, 0.0, 1.5] and db.tolist() == [1.0] * 4
        want = 0.5 * (w - 0.625 - np.array([-1.0, -0.5, 0.0, 1.5]) * (-0.875))
        assert_close(dx, want[None], rtol=1e-6, atol=1e-7, what="dx")


# ---------------------------------------------------------------------------------------------
# every backend against the reference (float64, on the same inputs upcast)

SHAPES = [(1, 1), (1, 7), (3, 1), (5, 16), (17, 33), (64, 257), (130, 768), (2, 3, 4099), (9,),
          (2, 0, 5)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("accumulate", [False, True], ids=["overwrite", "accumulate"])
def test_matches_reference(backend, threads, dtype, shape, accumulate):
    x, w, b, dy = make_case(shape, dtype=dtype, seed=sum(shape))
    C = shape[-1]
    # outputs start as NaN: overwritten ones must not read them; accumulated ones start finite
    out = np.full(shape, np.nan, dtype)
    mean, rstd = np.full(shape[:-1], np.nan, dtype), np.full(shape[:-1], np.nan, dtype)
    y, mean, rstd = layernorm_forward(x, w, b, out=out, mean=mean, rstd=rstd, backend=backend)
    ry, rmean, rrstd = layernorm_forward(*up(x, w, b), backend="numpy")
    assert y is out and y.dtype == dtype and mean.shape == rstd.shape == shape[:-1]
    rng = np.random.default_rng(1)
    start = [rng.standard_normal(C).astype(dtype) if accumulate else np.full(C, np.nan, dtype)
             for _ in range(2)]
    t = tolerances(dtype, x, w, dy, rmean, rrstd, *(start if accumulate else ()))
    for name, got, ref in (("y", y, ry), ("mean", mean, rmean), ("rstd", rstd, rrstd)):
        assert_close(got, ref, **t[name], what=f"{backend} {name}")

    dw, db = start[0].copy(), start[1].copy()
    dx, dw, db = layernorm_backward(x, w, mean, rstd, dy, dx=np.full(shape, np.nan, dtype),
                                    dweight=dw, dbias=db, accumulate=accumulate, backend=backend)
    # the reference from the float64 statistics: what the float32 ones approximate
    ref = layernorm_backward(*up(x, w, rmean, rrstd, dy), dweight=up(start[0])[0],
                             dbias=up(start[1])[0], accumulate=accumulate, backend="numpy")
    for name, got, r in zip(("dx", "dweight", "dbias"), (dx, dw, db), ref):
        assert got.dtype == dtype
        assert_close(got, r, **t[name], what=f"{backend} {name}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", ["offset+1e4", "scale+1e4", "scale-1e-30", "constant-rows",
                                  "one-outlier", "scale+1e30", "near-max"])
def test_extreme_values(backend, dtype, case):
    # C = 768 (GPT-2 small) and 4099 (odd, past every vector width): the 1e-5 target must hold
    # where float32 sums would lose digits, and the variance must not cancel at a large mean
    for C in (768, 4099):
        x, w, b, dy = make_case((12, C), dtype=dtype, seed=C)
        if case == "offset+1e4":
            x = (x.astype(np.float64) + 1e4).astype(dtype)
        elif case == "scale+1e4":
            x *= dtype(1e4)
        elif case == "scale-1e-30":
            x *= dtype(1e-30)  # variance far below eps: y is nearly b
        elif case == "constant-rows":
            x[:] = x[:, :1]
        elif case == "one-outlier":
            x[:, 7] = dtype(1e6)
        elif case == "scale+1e30":
            x *= dtype(1e30)  # (x - mean)^2 overflows float32: its double sweeps take the row
        elif case == "near-max":
            x = np.where(x > 0, 3e38, -3e38).astype(dtype)  # x - x_0 overflows float32 too
        y, mean, rstd = layernorm_forward(x, w, b, backend=backend)
        ry, rmean, rrstd = layernorm_forward(*up(x, w, b), backend="numpy")
        t = tolerances(dtype, x, w, dy, rmean, rrstd)
        for name, got, ref in (("y", y, ry), ("mean", mean, rmean), ("rstd", rstd, rrstd)):
            assert_close(got, ref, **t[name], what=f"{case} C={C} {name}")
        # the backward from the statistics as stored: its own rounding only
        got = layernorm_backward(x, w, mean, rstd, dy, backend=backend)
        ref = layernorm_backward(*up(x, w, mean, rstd, dy), backend="numpy")
        for name, g, r in zip(("dx", "dweight", "dbias"), got, ref):
            assert_close(g, r, **t[name], what=f"{case} C={C} {name}")


def test_same_bits_for_any_thread_count(backend):
    # 333 rows: 6 chunks of the dweight/dbias partial sums, the last one short
    x, w, b, dy = make_case((333, 515), seed=5)
    before = fasttrain.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            fasttrain.set_num_threads(n)
            y, mean, rstd = layernorm_forward(x, w, b, backend=backend)
            results.append((y, mean, rstd) + layernorm_backward(x, w, mean, rstd, dy,
                                                                backend=backend))
    finally:
        fasttrain.set_num_threads(before)
    for other in results[1:]:
        for name, a, b in zip(("y", "mean", "rstd", "dx", "dweight", "dbias"), results[0], other):
            assert np.array_equal(a, b), name


def test_in_place(backend):
    x, w, b, dy = make_case((70, 129), seed=6)
    y, mean, rstd = layernorm_forward(x, w, b, backend=backend)
    dx, dw, db = layernorm_backward(x, w, mean, rstd, dy, backend=backend)
    dy2 = dy.copy()  # dx over dy: dy is read, row by row, before it is overwritten
    got = layernorm_backward(x, w, mean, rstd, dy2, dx=dy2, backend=backend)
    assert got[0] is dy2
    assert np.array_equal(dy2, dx) and np.array_equal(got[1], dw) and np.array_equal(got[2], db)
    x2 = x.copy()  # y over x
    got = layernorm_forward(x2, w, b, out=x2, backend=backend)
    assert got[0] is x2
    assert np.array_equal(x2, y) and np.array_equal(got[1], mean) and np.array_equal(got[2], rstd)


@pytest.mark.parametrize("accumulate", [False, True], ids=["overwrite", "accumulate"])
def test_zero_rows(backend, accumulate):
    # N = 0: dweight and dbias are sums of nothing, 0 (or unchanged when accumulating)
    x, w, b, dy = make_case((0, 6))
    y, mean, rstd = layernorm_forward(x, w, b, backend=backend)
    assert y.shape == (0, 6) and mean.shape == rstd.shape == (0,)
    dw0, db0 = np.arange(6, dtype=np.float32), -np.arange(6, dtype=np.float32)
    dx, dw, db = layernorm_backward(x, w, mean, rstd, dy, dweight=dw0.copy(), dbias=db0.copy(),
                                    accumulate=accumulate, backend=backend)
    assert dx.shape == (0, 6)
    assert np.array_equal(dw, dw0 if accumulate else np.zeros(6))
    assert np.array_equal(db, db0 if accumulate else np.zeros(6))


def test_rows_of_any_leading_shape(backend):
    # (2, 3, 5) is 6 rows of 5: the same results as the (6, 5) call, in the caller's shapes
    x, w, b, dy = make_case((2, 3, 5), seed=7)
    y, mean, rstd = layernorm_forward(x, w, b, backend=backend)
    y2, mean2, rstd2 = layernorm_forward(x.reshape(6, 5), w, b, backend=backend)
    assert y.shape == (2, 3, 5) and mean.shape == rstd.shape == (2, 3)
    assert np.array_equal(y.reshape(6, 5), y2) and np.array_equal(mean.reshape(6), mean2)
    dx, dw, db = layernorm_backward(x, w, mean, rstd, dy, backend=backend)
    dx2, dw2, db2 = layernorm_backward(x.reshape(6, 5), w, mean2, rstd2, dy.reshape(6, 5),
                                       backend=backend)
    assert dx.shape == (2, 3, 5)
    assert np.array_equal(dx.reshape(6, 5), dx2) and np.array_equal(dw, dw2)
    # a 1-D x is one row; its statistics are 0-d
    y1, m1, r1 = layernorm_forward(x[0, 0], w, b, backend=backend)
    assert m1.shape == () and np.array_equal(y1, y[0, 0])
    assert np.array_equal(layernorm_backward(x[0, 0], w, m1, r1, dy[0, 0], backend=backend)[0],
                          layernorm_backward(x[:1, 0], w, mean[:1, 0], rstd[:1, 0], dy[:1, 0],
                                             backend=backend)[0][0])


def test_strided_inputs_are_copied(backend):
    x, w, b, dy = make_case((20, 16), seed=8)
    xt = np.asfortranarray(x)  # same values, another layout
    got = layernorm_forward(xt, w[::-1].copy()[::-1], b, backend=backend)
    want = layernorm_forward(x, w, b, backend=backend)
    for g, e in zip(got, want):
        assert np.array_equal(g, e)


# ---------------------------------------------------------------------------------------------
# PyTorch, the third voice

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", [(129, 37), (4, 8, 768)], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("eps", [1e-5, 0.0, 0.3])
def test_matches_pytorch(backend, torch, dtype, shape, eps):
    x, w, b, dy = make_case(shape, dtype=dtype, seed=9, scale=2.0, offset=0.3)
    C = shape[-1]
    y, mean, rstd = layernorm_forward(x, w, b, eps=eps, backend=backend)
    dx, dw, db = layernorm_backward(x, w, mean, rstd, dy, backend=backend)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.layer_norm(xt, (C,), wt, bt, eps)
    yt.backward(torch.tensor(dy))
    _, tmean, trstd = torch.native_layer_norm(torch.tensor(x), (C,), torch.tensor(w),
                                              torch.tensor(b), eps)
    # torch sums float32 in float32, in its own order; it still meets the targets
    t = tolerances(dtype, x, w, dy, mean, rstd)
    for name, got, want in (("y", y, yt), ("mean", mean, tmean.reshape(shape[:-1])),
                            ("rstd", rstd, trstd.reshape(shape[:-1])), ("dx", dx, xt.grad),
                            ("dweight", dw, wt.grad), ("dbias", db, bt.grad)):
        assert_close(got, want.detach().numpy(), **t[name], what=f"{name} vs torch")


def test_nan_and_inf_propagate_like_pytorch(backend, torch):
    x, w, b, dy = make_case((6, 10), seed=10)
    x[0, 3] = np.nan    # NaN anywhere in a row: the row is NaN
    x[1, 0] = np.inf    # inf: x - mean is inf - inf, the row is NaN
    x[2, :] = -np.inf
    w[4] = np.nan       # a NaN weight: that column of y, and every dx through it
    y, mean, rstd = layernorm_forward(x, w, b, backend=backend)
    dx, dw, db = layernorm_backward(x, w, mean, rstd, dy, backend=backend)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.layer_norm(xt, (10,), wt, bt)
    yt.backward(torch.tensor(dy))
    for name, got, want in (("y", y, yt), ("dx", dx, xt.grad), ("dweight", dw, wt.grad),
                            ("dbias", db, bt.grad)):
        want = want.detach().numpy()
        assert np.array_equal(np.isnan(got), np.isnan(want)), name
        assert_close(got, want, rtol=1e-4, atol=1e-5, what=f"{name} vs torch")


# Bad input: the layernorm tables of tests/test_bad_input.py (every argument, every backend).

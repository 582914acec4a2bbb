"""The elementwise activation kernels, tanh and GELU (tanh form): each reference against
finite differences, every backend against the reference (dtypes, shapes, extreme values,
threads), against PyTorch, in place, and bad input."""
import numpy as np
import pytest

import fasttrain
from fasttrain import kernels as K
from conftest import assert_close

# name -> (forward, backward, which forward tensor the backward takes, torch function)
ACTIVATIONS = {
    "tanh": (K.tanh_forward, K.tanh_backward, "output",
             lambda torch, x: torch.tanh(x)),
    "gelu": (K.gelu_forward, K.gelu_backward, "input",
             lambda torch, x: torch.nn.functional.gelu(x, approximate="tanh")),
}
SHAPES = [(1,), (7,), (3, 5), (64, 257), (2, 3, 4099)]


@pytest.fixture(params=list(ACTIVATIONS), ids=list(ACTIVATIONS))
def act(request):
    return request.param


def run_backward(act, x, y, dy, **kw):
    _, backward, saved, _ = ACTIVATIONS[act]
    return backward(y if saved == "output" else x, dy, **kw)


def sample(shape, dtype, seed=0, scale=3.0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * scale).astype(dtype)


def test_reference_matches_finite_differences(act):
    forward = ACTIVATIONS[act][0]
    x = np.linspace(-6, 6, 97)
    dy = sample(x.shape, np.float64, seed=1)
    y = forward(x, backend="numpy")
    grad = run_backward(act, x, y, dy, backend="numpy")
    h = 1e-6
    numeric = (forward(x + h, backend="numpy") - forward(x - h, backend="numpy")) / (2 * h) * dy
    assert_close(grad, numeric, rtol=1e-7, atol=1e-9, what=f"{act} finite differences")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_reference(backend, act, dtype, shape):
    forward = ACTIVATIONS[act][0]
    x = sample(shape, dtype)
    dy = sample(shape, dtype, seed=1, scale=1.0)
    y = forward(x, backend=backend)
    dx = run_backward(act, x, y, dy, backend=backend)
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    y64 = forward(x64, backend="numpy")
    dx64 = run_backward(act, x64, y64, dy64, backend="numpy")
    # float32: the C and Numba forms are ~2 ulp of the result in the forward; GELU's backward
    # sums terms as large as 2 |x| u'(x) ~ 20 for |x| ~ 5 that nearly cancel, so its float32
    # error is ~1e-6 relative to values of order 1.
    tol = dict(rtol=1e-12, atol=1e-13) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    assert y.dtype == dtype and dx.dtype == dtype
    assert_close(y, y64, **tol, what=f"{act} forward")
    if ACTIVATIONS[act][2] == "output":  # the float32 output feeds the backward: compare like for like
        dx64 = run_backward(act, x64, y.astype(np.float64), dy64, backend="numpy")
    assert_close(dx, dx64, **tol, what=f"{act} backward")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_extreme_values(backend, act, dtype):
    forward = ACTIVATIONS[act][0]
    x = np.array([0.0, -0.0, 1e-30, -1e-30, 1e-40, 0.62, 0.63, -0.63, 9.0, -9.0, 20.0, -20.0,
                  88.0, 1e4, -1e4, 3e38, -3e38, np.inf, -np.inf, np.nan], dtype=dtype)
    y = forward(x, backend=backend)
    with np.errstate(all="ignore"):
        ref = forward(x.astype(np.float64), backend="numpy")
    # GELU's tail is x exp(-2u): exp amplifies the float32 rounding of u (|u| ~ 70 at x = -9)
    # into a relative error of |u| * 6e-8.
    rtol = 1e-15 if dtype == np.float64 else (2e-7 if act == "tanh" else 1e-5)
    assert_close(y, ref.astype(dtype), rtol=rtol, atol=1e-45, what=f"{act} at extreme values")


def test_same_bits_for_any_thread_count(backend, act):
    forward = ACTIVATIONS[act][0]
    x = sample((300, 1001), np.float32)
    dy = sample(x.shape, np.float32, seed=2)
    before = fasttrain.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            fasttrain.set_num_threads(n)
            y = forward(x, backend=backend)
            results.append((y, run_backward(act, x, y, dy, backend=backend)))
    finally:
        fasttrain.set_num_threads(before)
    for y, dx in results[1:]:
        assert np.array_equal(y, results[0][0]) and np.array_equal(dx, results[0][1])


def test_in_place(backend, act):
    forward = ACTIVATIONS[act][0]
    x = sample((33, 65), np.float32)
    dy = sample(x.shape, np.float32, seed=3)
    y = forward(x, backend=backend)
    dx = run_backward(act, x, y, dy, backend=backend)
    x2, dy2 = x.copy(), dy.copy()
    if ACTIVATIONS[act][2] == "input":  # the backward needs x: run it before x is overwritten
        assert run_backward(act, x2, None, dy2, out=dy2, backend=backend) is dy2
        assert forward(x2, out=x2, backend=backend) is x2
    else:
        assert forward(x2, out=x2, backend=backend) is x2
        assert run_backward(act, None, x2, dy2, out=dy2, backend=backend) is dy2
    assert np.array_equal(x2, y) and np.array_equal(dy2, dx)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_matches_pytorch(backend, act, torch, dtype):
    forward = ACTIVATIONS[act][0]
    x = sample((129, 37), dtype, seed=4)
    dy = sample(x.shape, dtype, seed=5, scale=1.0)
    y = forward(x, backend=backend)
    dx = run_backward(act, x, y, dy, backend=backend)
    xt = torch.tensor(x, requires_grad=True)
    yt = ACTIVATIONS[act][3](torch, xt)
    yt.backward(torch.tensor(dy))
    tol = dict(rtol=1e-12, atol=1e-13) if dtype == np.float64 else dict(rtol=1e-5, atol=2e-6)
    assert_close(y, yt.detach().numpy(), **tol, what=f"{act} vs torch")
    assert_close(dx, xt.grad.numpy(), **tol, what=f"{act} backward vs torch")


BAD = [
    ("x-list", lambda f, b: f([1.0, 2.0]), TypeError, "x must be a numpy.ndarray"),
    ("x-int", lambda f, b: f(np.arange(3)), TypeError, "float32 or float64"),
    ("out-shape", lambda f, b: f(np.zeros(3), out=np.zeros(4)), ValueError, r"shape \(3,\)"),
    ("out-dtype", lambda f, b: f(np.zeros(3), out=np.zeros(3, np.float32)), TypeError, "dtype float64"),
    ("out-readonly", lambda f, b: f(np.zeros(3), out=np.zeros(3)[::-1].copy().setflags(write=False)
                                    or np.broadcast_to(np.zeros(1), (3,))), ValueError, "C-contiguous|read-only"),
    ("out-overlap", lambda f, b: (lambda buf: f(buf[:4], out=buf[1:]))(np.zeros(5)), ValueError, "out overlaps x"),
    ("dy-shape", lambda f, b: b(np.zeros(3), np.zeros(4)), ValueError, "dy must have the shape"),
    ("dy-dtype", lambda f, b: b(np.zeros(3), np.zeros(3, np.float32)), TypeError, "dy must have the dtype"),
    ("backend", lambda f, b: f(np.zeros(3), backend="tpu"), ValueError, "unknown backend"),
]


@pytest.mark.parametrize("call,exc,message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input(act, call, exc, message):
    forward, backward = ACTIVATIONS[act][:2]
    with pytest.raises(exc, match=message):
        call(forward, backward)

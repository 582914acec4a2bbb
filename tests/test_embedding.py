"""embedding_forward / embedding_backward: every backend against the reference (and the
reference's gradient against finite differences), accumulate, thread counts, PyTorch, bad input."""
import numpy as np
import pytest

import fasttrain
from fasttrain.kernels import (embedding_backward, embedding_bag_backward, embedding_bag_forward,
                               embedding_forward)
from conftest import assert_close


def case(V, E, idx_shape, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((V, E)).astype(dtype)            # (V, E)
    idx = rng.integers(0, V, size=idx_shape)                 # (...)
    dout = rng.standard_normal(idx_shape + (E,)).astype(dtype)  # (..., E)
    return W, idx, dout


def test_reference_gradient_matches_finite_differences():
    W, idx, dout = case(5, 3, (4, 2), np.float64)
    dW = embedding_backward(idx, dout, np.empty_like(W), backend="numpy")
    h = 1e-6
    numeric = np.zeros_like(W)
    for k in np.ndindex(W.shape):  # loss = sum(out * dout), so dloss/dW is the gradient
        plus, minus = W.copy(), W.copy()
        plus[k] += h
        minus[k] -= h
        f = lambda w: float(np.sum(embedding_forward(idx, w, backend="numpy") * dout))
        numeric[k] = (f(plus) - f(minus)) / (2 * h)
    assert_close(dW, numeric, rtol=1e-7, atol=1e-9, what="finite differences")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("V,E,idx_shape", [(1, 1, (1,)), (7, 3, (5,)), (256, 64, (64, 8)),
                                           (1000, 13, (3, 4, 5)), (50, 129, (0,))],
                         ids=["1x1", "7x3", "256x64", "1000x13-3d", "empty"])
@pytest.mark.parametrize("accumulate", [False, True], ids=["overwrite", "accumulate"])
def test_matches_reference(backend, threads, dtype, V, E, idx_shape, accumulate):
    W, idx, dout = case(V, E, idx_shape, dtype)
    out = embedding_forward(idx, W, backend=backend)
    assert np.array_equal(out, W[idx])  # a copy of rows: exact
    start = np.random.default_rng(9).standard_normal(W.shape).astype(dtype)
    dW = embedding_backward(idx, dout, start.copy(), accumulate=accumulate, backend=backend)
    ref = embedding_backward(idx, dout, start.copy(), accumulate=accumulate, backend="numpy")
    # every backend sums each element in index order, but numpy's add.at may pair terms
    # differently; float32 sums of up to ~10 terms of order 1
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-6, atol=1e-6)
    assert_close(dW, ref, **tol, what="dW")


def test_backward_same_bits_for_any_thread_count(backend):
    W, idx, dout = case(300, 70, (4096,), seed=1)
    before = fasttrain.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3, 5):
            fasttrain.set_num_threads(n)
            results.append(embedding_backward(idx, dout, np.empty_like(W), backend=backend))
    finally:
        fasttrain.set_num_threads(before)
    for dW in results[1:]:
        assert np.array_equal(dW, results[0])


def test_matches_pytorch(backend, torch):
    W, idx, dout = case(100, 16, (32, 8), np.float64, seed=2)
    Wt = torch.tensor(W, requires_grad=True)
    out_t = torch.nn.functional.embedding(torch.tensor(idx), Wt)
    out_t.backward(torch.tensor(dout))
    assert np.array_equal(embedding_forward(idx, W, backend=backend), out_t.detach().numpy())
    assert_close(embedding_backward(idx, dout, np.empty_like(W), backend=backend),
                 Wt.grad.numpy(), rtol=1e-12, atol=1e-12, what="dW vs torch")


def _bad(kind):
    W, idx, dout = case(5, 3, (4,), seed=3)
    return {
        "idx-float": lambda: embedding_forward(idx.astype(float), W),
        "idx-high": lambda: embedding_forward(np.array([0, 5]), W),
        "idx-negative": lambda: embedding_backward(np.array([[0, -1]]), np.zeros((1, 2, 3), np.float32), np.zeros_like(W)),
        "W-1d": lambda: embedding_forward(idx, W[0]),
        "W-int": lambda: embedding_forward(idx, np.zeros((5, 3), np.int32)),
        "out-shape": lambda: embedding_forward(idx, W, out=np.zeros((4, 4), np.float32)),
        "dout-shape": lambda: embedding_backward(idx, dout[:, :2], np.zeros_like(W)),
        "dW-dtype": lambda: embedding_backward(idx, dout, np.zeros((5, 3))),
        "dW-list": lambda: embedding_backward(idx, dout, [[0.0] * 3] * 5),
        "dW-overlaps-dout": lambda: (lambda buf: embedding_backward(np.array([0]), buf[:3].reshape(1, 3), buf[1:16].reshape(5, 3)))(np.zeros(16, np.float32)),
    }[kind]


@pytest.mark.parametrize("kind,exc,message", [
    ("idx-float", TypeError, "idx must have an integer dtype"),
    ("idx-high", ValueError, r"idx\[1\] = 5 is outside \[0, 5\)"),
    ("idx-negative", ValueError, r"idx\[0, 1\] = -1"),
    ("W-1d", ValueError, "W must be 2-D"),
    ("W-int", TypeError, "float32 or float64"),
    ("out-shape", ValueError, r"out must have shape \(4, 3\)"),
    ("dout-shape", ValueError, r"dout must have shape \(4, 3\)"),
    ("dW-dtype", TypeError, "dW must have dtype float32"),
    ("dW-list", TypeError, "dW must be a numpy.ndarray"),
    ("dW-overlaps-dout", ValueError, "dW overlaps dout"),
])
def test_bad_input(kind, exc, message):
    with pytest.raises(exc, match=message):
        _bad(kind)()


# ---------------------------------------------------------------------------------------------
# bags: K rows summed per output row (F.embedding_bag, mode="sum")

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("V,E,N,K", [(1, 1, 1, 1), (7, 3, 5, 4), (2048, 512, 1024, 8),
                                     (50, 13, 9, 0), (50, 13, 0, 3)],
                         ids=["1x1", "7x3", "mlp-tables", "K0", "N0"])
@pytest.mark.parametrize("accumulate", [False, True], ids=["overwrite", "accumulate"])
def test_bag_matches_reference(backend, threads, dtype, V, E, N, K, accumulate):
    rng = np.random.default_rng(4)
    W = rng.standard_normal((V, E)).astype(dtype)
    idx = rng.integers(0, V, size=(N, K))
    dout = rng.standard_normal((N, E)).astype(dtype)
    out = embedding_bag_forward(idx, W, backend=backend)
    ref = embedding_bag_forward(idx, W, backend="numpy")
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-6, atol=1e-6)
    assert out.shape == (N, E)
    assert_close(out, ref, **tol, what="bag forward")
    start = rng.standard_normal(W.shape).astype(dtype)
    dW = embedding_bag_backward(idx, dout, start.copy(), accumulate=accumulate, backend=backend)
    ref = embedding_bag_backward(idx, dout, start.copy(), accumulate=accumulate, backend="numpy")
    assert_close(dW, ref, **tol, what="bag backward")


def test_bag_same_bits_for_any_thread_count(backend):
    rng = np.random.default_rng(5)
    W = rng.standard_normal((2048, 96)).astype(np.float32)
    idx = rng.integers(0, 2048, size=(700, 8))
    dout = rng.standard_normal((700, 96)).astype(np.float32)
    before = fasttrain.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            fasttrain.set_num_threads(n)
            results.append((embedding_bag_forward(idx, W, backend=backend),
                            embedding_bag_backward(idx, dout, np.empty_like(W), backend=backend)))
    finally:
        fasttrain.set_num_threads(before)
    for out, dW in results[1:]:
        assert np.array_equal(out, results[0][0]) and np.array_equal(dW, results[0][1])


def test_bag_matches_pytorch(backend, torch):
    rng = np.random.default_rng(6)
    W = rng.standard_normal((100, 16))
    idx = rng.integers(0, 100, size=(32, 5))
    dout = rng.standard_normal((32, 16))
    Wt = torch.tensor(W, requires_grad=True)
    out_t = torch.nn.functional.embedding_bag(torch.tensor(idx), Wt, mode="sum")
    out_t.backward(torch.tensor(dout))
    assert_close(embedding_bag_forward(idx, W, backend=backend), out_t.detach().numpy(),
                 rtol=1e-12, atol=1e-12, what="bag vs torch")
    assert_close(embedding_bag_backward(idx, dout, np.empty_like(W), backend=backend),
                 Wt.grad.numpy(), rtol=1e-12, atol=1e-12, what="bag dW vs torch")


@pytest.mark.parametrize("call,exc,message", [
    (lambda W: embedding_bag_forward(np.array([0, 1]), W), ValueError, r"idx must be 2-D \(N, K\)"),
    (lambda W: embedding_bag_forward(np.array([[0, 5]]), W), ValueError, r"idx\[0, 1\] = 5"),
    (lambda W: embedding_bag_backward(np.zeros((2, 3), int), np.zeros((2, 4, 3), np.float32),
                                      np.zeros_like(W)), ValueError, r"dout must have shape \(2, 3\)"),
], ids=["idx-1d", "idx-high", "dout-shape"])
def test_bag_bad_input(call, exc, message):
    with pytest.raises(exc, match=message):
        call(np.zeros((5, 3), np.float32))

"""linear_forward / linear_backward: the reference against finite differences and a worked
example, every backend against the reference (dtypes, shapes, bias, accumulate, threads,
layouts, empty shapes), against PyTorch autograd, BLAS thread control, and every bad input
against its error."""
import subprocess
import sys
import threading

import numpy as np
import pytest

import fasttrain
from fasttrain.kernels import _checks, linear_backward, linear_forward
from conftest import assert_close, numeric_gradient


def make_case(N, C, OC, *, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C)).astype(dtype)    # (N, C)
    W = rng.standard_normal((OC, C)).astype(dtype)   # (OC, C)
    b = rng.standard_normal(OC).astype(dtype)        # (OC,)
    dy = rng.standard_normal((N, OC)).astype(dtype)  # (N, OC)
    return x, W, b, dy


def ref64(fn, *arrays, **kw):
    """The spec, evaluated in float64 on the same (upcast) inputs: the values to match."""
    up = [a.astype(np.float64) if isinstance(a, np.ndarray) else a for a in arrays]
    kw = {k: (v.astype(np.float64) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    return fn(*up, backend="numpy", **kw)


def gemm_atol(dtype, K, a, b):
    """Absolute tolerance for the K-term dot products of a GEMM (or a K-row sum, b = 1).

    Rounding in a length-K sum of products grows like u * sqrt(K) * sum_k |a_k b_k| (the
    probabilistic bound of Higham & Mary, SIAM J. Sci. Comput. 41(5), 2019), where u is the
    unit roundoff (6e-8 in float32, 1.1e-16 in float64) and sum_k |a_k b_k| is about
    K * mean|a| * mean|b| for these inputs. Elementwise-relative tolerances would fail on the
    outputs that cancel to near zero; this scale does not. Measured on these inputs, every
    backend's largest error is at most 0.5 of u * sqrt(K) * scale (at K = 64..129; 0.01-0.1 at
    K = 768..4096, where errors of random sign cancel): the factor 4 leaves 8x room for other
    BLAS kernels' summation orders, while a dropped row or K-block is still far outside it.
    """
    u = np.finfo(dtype).eps / 2
    mean_a = float(np.mean(np.abs(a), dtype=np.float64)) if np.size(a) else 0.0
    mean_b = float(np.mean(np.abs(b), dtype=np.float64)) if np.size(b) else 1.0
    return 4 * u * np.sqrt(max(K, 1)) * max(K, 1) * mean_a * mean_b + np.finfo(dtype).tiny


def rtol(dtype):
    """For the terms added to the dot products: the bias, and the buffer accumulate adds into."""
    return 4 * np.finfo(dtype).eps


def check_forward(backend, x, W, b=None, out=None):
    y = linear_forward(x, W, b, out=out, backend=backend)
    ref = ref64(linear_forward, x, W, b)
    N, C = x.shape
    assert y.dtype == x.dtype and y.shape == (N, W.shape[0])
    assert_close(y, ref, rtol=rtol(x.dtype), atol=gemm_atol(x.dtype, C, x, W),
                 what=f"{backend} y")
    return y


def check_backward(backend, x, W, dy, *, dx=None, dW=None, db=None, accumulate=False):
    """Runs the backward and compares with the reference (which adds into copies of the same
    starting buffers when accumulating)."""
    start = {k: (v.copy() if isinstance(v, np.ndarray) else v)
             for k, v in dict(dx=dx, dW=dW, db=db).items()}
    got = linear_backward(x, W, dy, dx=dx, dW=dW, db=db, accumulate=accumulate,
                          backend=backend)
    ref = ref64(linear_backward, x, W, dy, **start, accumulate=accumulate)
    N, C = x.shape
    OC = W.shape[0]
    Ks = {"dx": (OC, dy, W), "dW": (N, dy, x), "db": (N, dy, np.ones(1))}
    for name, g, r in zip(("dx", "dW", "db"), got, ref):
        if start[name] is False:
            assert g is None and r is None, name
            continue
        K, a, b = Ks[name]
        assert g.dtype == x.dtype, name
        assert_close(g, r, rtol=rtol(x.dtype), atol=gemm_atol(x.dtype, K, a, b),
                     what=f"{backend} {name}")
    return got


# ---------------------------------------------------------------------------------------------
# the reference is the spec: check it against calculus and against a worked example

def test_reference_matches_finite_differences():
    # L = sum(G * y(x, W, b)) for a fixed G: then dL/dy = G, and the backward of G is the gradient
    x, W, b, G = make_case(3, 4, 5, dtype=np.float64, seed=1)
    dx, dW, db = linear_backward(x, W, G, backend="numpy")

    def loss(x, W, b):
        return float(np.sum(G * linear_forward(x, W, b, backend="numpy")))

    for name, arg, grad in (("x", 0, dx), ("W", 1, dW), ("b", 2, db)):
        numeric = numeric_gradient(loss, [x, W, b], arg)
        assert_close(grad, numeric, rtol=1e-7, atol=1e-8, what=f"d{name} vs finite differences")


def test_worked_example(backend):
    # two tokens, C = 2 features, OC = 3 outputs, small integers: exact in any precision
    x = np.array([[1.0, 2.0], [3.0, -1.0]])              # (N, C)
    W = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, -1.0]])  # (OC, C)
    b = np.array([0.5, -0.5, 1.0])                       # (OC,)
    dy = np.array([[1.0, 0.0, -1.0], [0.0, 2.0, 1.0]])   # (N, OC)
    for dtype in (np.float64, np.float32):
        args = [a.astype(dtype) for a in (x, W, b, dy)]
        y = linear_forward(*args[:3], backend=backend)
        assert np.array_equal(y, [[1.5, 1.5, 1.0], [3.5, -1.5, 8.0]])
        dx, dW, db = linear_backward(args[0], args[1], args[3], backend=backend)
        assert np.array_equal(dx, [[-1.0, 1.0], [2.0, 1.0]])            # dy @ W
        assert np.array_equal(dW, [[1.0, 2.0], [6.0, -2.0], [2.0, -3.0]])  # dy.T @ x
        assert np.array_equal(db, [1.0, 2.0, 0.0])                      # dy.sum(0)


# ---------------------------------------------------------------------------------------------
# every backend against the reference

SHAPES = [(1, 1, 1), (1, 7, 3), (5, 1, 4), (3, 6, 1), (64, 64, 64), (37, 129, 65),
          (130, 17, 257)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("accumulate", [False, True], ids=["overwrite", "accumulate"])
def test_matches_reference(backend, threads, dtype, shape, bias, accumulate):
    x, W, b, dy = make_case(*shape, dtype=dtype, seed=sum(shape))
    N, C, OC = shape
    # outputs start as NaN: overwritten ones must not read them (a GEMM's beta = 0 must not
    # propagate NaN); accumulated ones start from finite values
    out = np.full((N, OC), np.nan, dtype=dtype)
    check_forward(backend, x, W, b if bias else None, out=out)
    rng = np.random.default_rng(1)
    dx = np.full((N, C), np.nan, dtype=dtype)
    dW = rng.standard_normal((OC, C)).astype(dtype) if accumulate else np.full((OC, C), np.nan,
                                                                                dtype=dtype)
    db = rng.standard_normal(OC).astype(dtype) if accumulate else None
    check_backward(backend, x, W, dy, dx=dx, dW=dW, db=db if bias else False,
                   accumulate=accumulate)


@pytest.fixture(scope="module")
def large_case():
    """(4096, 768, 3072), a GPT-2-small MLP layer; float64 reference computed once."""
    N, C, OC = 4096, 768, 3072
    x, W, b, dy = make_case(N, C, OC, seed=7)
    rng = np.random.default_rng(8)
    dW0 = rng.standard_normal((OC, C)).astype(np.float32)
    db0 = rng.standard_normal(OC).astype(np.float32)
    x64, W64, dy64 = (a.astype(np.float64) for a in (x, W, dy))
    ref = dict(y=x64 @ W64.T + b, dx=dy64 @ W64, dW=dy64.T @ x64, db=dy64.sum(axis=0))
    return (x, W, b, dy, dW0, db0), ref


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_large_shape(backend, threads, large_case, dtype):
    (x, W, b, dy, dW0, db0), ref = large_case
    x, W, b, dy, dW0, db0 = (a.astype(dtype) for a in (x, W, b, dy, dW0, db0))
    N, C = x.shape
    OC = W.shape[0]
    t = rtol(dtype)
    y = linear_forward(x, W, b, backend=backend)
    assert_close(y, ref["y"], rtol=t, atol=gemm_atol(dtype, C, x, W), what="y with bias")
    linear_forward(x, W, out=y, backend=backend)
    assert_close(y, ref["y"] - b, rtol=t, atol=gemm_atol(dtype, C, x, W), what="y")
    del y
    dx, dW, db = linear_backward(x, W, dy, backend=backend)
    assert_close(dx, ref["dx"], rtol=t, atol=gemm_atol(dtype, OC, dy, W), what="dx")
    assert_close(dW, ref["dW"], rtol=t, atol=gemm_atol(dtype, N, dy, x), what="dW")
    assert_close(db, ref["db"], rtol=t, atol=gemm_atol(dtype, N, dy, np.ones(1)), what="db")
    dW[...], db[...] = dW0, db0
    linear_backward(x, W, dy, dx=False, dW=dW, db=db, accumulate=True, backend=backend)
    assert_close(dW, ref["dW"] + dW0, rtol=t, atol=gemm_atol(dtype, N, dy, x), what="dW +=")
    assert_close(db, ref["db"] + db0, rtol=t, atol=gemm_atol(dtype, N, dy, np.ones(1)),
                 what="db +=")


@pytest.mark.parametrize("shape", [(0, 3, 4), (3, 0, 4), (3, 4, 0), (0, 0, 0)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("accumulate", [False, True], ids=["overwrite", "accumulate"])
def test_empty_shapes(backend, shape, accumulate):
    # N = 0: no rows, so dW and db are sums of nothing: 0 (or unchanged when accumulating);
    # C = 0: y is the bias alone and dx is empty; OC = 0: y is empty and dx is 0
    x, W, b, dy = make_case(*shape, dtype=np.float64)
    N, C, OC = shape
    y = linear_forward(x, W, b, out=np.full((N, OC), np.nan), backend=backend)
    assert np.array_equal(y, np.broadcast_to(b, (N, OC)))
    assert np.array_equal(linear_forward(x, W, backend=backend), np.zeros((N, OC)))
    dW0, db0 = np.full((OC, C), 2.0), np.full(OC, 3.0)
    dx, dW, db = linear_backward(x, W, dy, dx=np.full((N, C), np.nan), dW=dW0.copy(),
                                 db=db0.copy(), accumulate=accumulate, backend=backend)
    assert np.array_equal(dx, np.zeros((N, C)))
    if N == 0:
        assert np.array_equal(dW, dW0 if accumulate else np.zeros((OC, C)))
        assert np.array_equal(db, db0 if accumulate else np.zeros(OC))
    else:  # 3 rows: the order of 4 additions is the backend's
        assert_close(dW, dy.T @ x + accumulate * dW0, rtol=1e-15, atol=1e-15, what="dW")
        assert_close(db, dy.sum(0) + accumulate * db0, rtol=1e-15, atol=1e-15, what="db")


def test_skipped_gradients_are_none_and_untouched(backend):
    x, W, b, dy = make_case(9, 5, 7, seed=2)
    full = linear_backward(x, W, dy, backend=backend)
    dx, dW, db = linear_backward(x, W, dy, dx=False, backend=backend)
    assert dx is None and np.array_equal(dW, full[1]) and np.array_equal(db, full[2])
    dx, dW, db = linear_backward(x, W, dy, db=False, backend=backend)
    assert db is None and np.array_equal(dx, full[0]) and np.array_equal(dW, full[1])
    dW = np.zeros((7, 5), dtype=np.float32)
    assert linear_backward(x, W, dy, dx=False, dW=dW, db=False, backend=backend) == (None, dW,
                                                                                       None)
    assert np.array_equal(dW, full[1])


def test_accumulate_adds_and_dx_is_overwritten(backend):
    x, W, b, dy = make_case(33, 20, 11, dtype=np.float64, seed=3)
    dx, dW, db = np.full((33, 20), 5.0), np.zeros((11, 20)), np.zeros(11)
    for _ in range(3):  # three micro-batches of the same data
        linear_backward(x, W, dy, dx=dx, dW=dW, db=db, accumulate=True, backend=backend)
    assert_close(dx, dy @ W, rtol=1e-13, atol=1e-13, what="dx")
    assert_close(dW, 3 * (dy.T @ x), rtol=1e-13, atol=1e-12, what="dW")
    assert_close(db, 3 * dy.sum(0), rtol=1e-13, atol=1e-12, what="db")


def test_outputs_are_the_given_buffers(backend):
    x, W, b, dy = make_case(6, 4, 3, seed=4)
    out = np.empty((6, 3), dtype=np.float32)
    assert linear_forward(x, W, b, out=out, backend=backend) is out
    dx, dW, db = np.empty((6, 4), np.float32), np.empty((3, 4), np.float32), np.empty(3, np.float32)
    got = linear_backward(x, W, dy, dx=dx, dW=dW, db=db, backend=backend)
    assert got[0] is dx and got[1] is dW and got[2] is db


def test_same_bits_every_call_and_db_for_any_thread_count(backend):
    # GEMM results are deterministic for a fixed thread count; db sums each column in row order
    # in one thread, so its bits do not depend on the count at all
    x, W, b, dy = make_case(1000, 96, 300, seed=5)
    before = fasttrain.get_num_threads()
    results = {}
    try:
        for n in (1, 2, 3):
            fasttrain.set_num_threads(n)
            first = linear_backward(x, W, dy, backend=backend)
            again = linear_backward(x, W, dy, backend=backend)
            for a, b_ in zip(first, again):
                assert np.array_equal(a, b_), f"threads={n}"
            assert np.array_equal(linear_forward(x, W, b, backend=backend),
                                  linear_forward(x, W, b, backend=backend))
            results[n] = first
    finally:
        fasttrain.set_num_threads(before)
    assert np.array_equal(results[1][2], results[2][2])
    assert np.array_equal(results[1][2], results[3][2])


def test_python_threads_at_once_match_serial_calls(backend):
    cases = [make_case(64, 48, 80, seed=s) for s in range(6)]
    serial = [linear_backward(x, W, dy, backend=backend) for x, W, b, dy in cases]
    results = [None] * len(cases)

    def work(i):
        x, W, b, dy = cases[i]
        for _ in range(5):
            results[i] = linear_backward(x, W, dy, backend=backend)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(len(cases))]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    for got, want in zip(results, serial):
        for a, b in zip(got, want):
            assert np.array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# layouts: transposed inputs are read as they are, others copied, never read wrongly

@pytest.mark.parametrize("fortran", ["x", "W", "dy", "all"])
def test_fortran_ordered_inputs(backend, fortran):
    x, W, b, dy = make_case(37, 129, 65, seed=6)
    args = dict(x=x, W=W, dy=dy)
    for name in args:
        if fortran in (name, "all"):
            args[name] = np.asfortranarray(args[name])
            assert not args[name].flags.c_contiguous
    # Held to the reference's tolerance, not to the bits of the C-ordered call: a transposed
    # operand takes another GEMM micro-kernel (OpenBLAS's SkylakeX kernels round NT and NN
    # differently in the last bit, seen on a 16-core AVX-512 Xeon), and a Fortran-ordered dy is
    # summed for db in another order.
    check_forward(backend, args["x"], args["W"], b)
    check_backward(backend, args["x"], args["W"], args["dy"])


def test_transposed_views_are_not_copied():
    a = np.zeros((5, 3), dtype=np.float32)
    t = a.T
    assert _checks.gemm_operand(a) is a and _checks.gemm_operand(t) is t
    strided = np.zeros((5, 6), dtype=np.float32)[:, ::2]
    copied = _checks.gemm_operand(strided)
    assert copied.flags.c_contiguous and not np.may_share_memory(copied, strided)


def _unaligned(a):
    buf = np.zeros(a.nbytes + 1, dtype=np.uint8)
    view = buf[1:].view(a.dtype).reshape(a.shape)
    view[...] = a
    assert not view.flags.aligned
    return view


@pytest.mark.parametrize("layout", ["strided", "read-only", "big-endian", "unaligned",
                                    "negative-strides"])
def test_inputs_that_are_copied(backend, layout):
    x, W, b, dy = make_case(12, 10, 7, seed=9)
    want_y = linear_forward(x, W, b, backend=backend)
    want = linear_backward(x, W, dy, backend=backend)

    def given(a):
        if layout == "strided":
            wide = np.zeros((a.shape[0], 2 * a.shape[1]) if a.ndim == 2 else 2 * a.shape[0],
                            dtype=a.dtype)
            wide[..., ::2] = a
            return wide[..., ::2]
        if layout == "read-only":
            a = a.copy()
            a.flags.writeable = False
            return a
        if layout == "big-endian":
            return a.astype(a.dtype.newbyteorder(">"))
        if layout == "unaligned":
            return _unaligned(a)
        return np.flip(np.flip(a).copy())  # same values, negative strides
    y = linear_forward(given(x), given(W), given(b), backend=backend)
    got = linear_backward(given(x), given(W), given(dy), backend=backend)
    assert np.array_equal(y, want_y)
    for a, b_ in zip(got, want):
        assert np.array_equal(a, b_)


# ---------------------------------------------------------------------------------------------
# PyTorch as a third voice

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", [(1, 1, 1), (37, 129, 65), (256, 96, 384)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_matches_pytorch_autograd(backend, torch, dtype, shape, bias):
    x, W, b, dy = make_case(*shape, dtype=dtype, seed=10)
    N, C, OC = shape
    xt = torch.tensor(x, requires_grad=True)
    Wt = torch.tensor(W, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True) if bias else None
    yt = torch.nn.functional.linear(xt, Wt, bt)
    yt.backward(torch.tensor(dy))
    y = linear_forward(x, W, b if bias else None, backend=backend)
    dx, dW, db = linear_backward(x, W, dy, db=None if bias else False, backend=backend)
    t = 2 * rtol(dtype)  # two implementations' rounding, not one
    assert_close(y, yt.detach().numpy(), rtol=t, atol=2 * gemm_atol(dtype, C, x, W),
                 what="y vs torch")
    assert_close(dx, xt.grad.numpy(), rtol=t, atol=2 * gemm_atol(dtype, OC, dy, W),
                 what="dx vs torch")
    assert_close(dW, Wt.grad.numpy(), rtol=t, atol=2 * gemm_atol(dtype, N, dy, x),
                 what="dW vs torch")
    if bias:
        assert_close(db, bt.grad.numpy(), rtol=t, atol=2 * gemm_atol(dtype, N, dy, np.ones(1)),
                     what="db vs torch")


# ---------------------------------------------------------------------------------------------
# the BLAS's threads follow fasttrain's count, set once, not per call

def _blas_threads():
    import threadpoolctl

    return {lib["filepath"]: lib["num_threads"] for lib in threadpoolctl.threadpool_info()
            if lib["user_api"] == "blas"}


def test_set_num_threads_governs_every_blas():
    linear_forward(*make_case(2, 2, 2)[:2], backend="c")  # scipy's BLAS is loaded now
    before = fasttrain.get_num_threads()
    try:
        for n in (1, 2):
            fasttrain.set_num_threads(n)
            counts = _blas_threads()
            assert len(counts) >= 1 and set(counts.values()) == {n}, counts
    finally:
        fasttrain.set_num_threads(before)


def test_a_blas_loaded_later_gets_the_count():
    # scipy's OpenBLAS loads when the C backend's linear module is imported, after the count
    # was set: it must get the count then (a fresh process, where scipy.linalg is not loaded)
    code = """
import fasttrain, numpy as np, sys, threadpoolctl
fasttrain.set_num_threads(1)
assert 'scipy.linalg' not in sys.modules
fasttrain.linear_forward(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), backend='c')
libs = [l for l in threadpoolctl.threadpool_info() if l['user_api'] == 'blas']
print(len(libs), sorted({l['num_threads'] for l in libs}))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    n_libs, counts = result.stdout.splitlines()[-1].split(maxsplit=1)
    assert int(n_libs) >= 2 and counts.strip() == "[1]", result.stdout


def test_kernel_calls_do_not_reapply_the_thread_limit(backend, monkeypatch):
    linear_forward(*make_case(2, 2, 2)[:2], backend=backend)  # loaded
    import threadpoolctl

    def refuse(*args, **kwargs):
        raise AssertionError("threadpoolctl called on a kernel call")

    monkeypatch.setattr(threadpoolctl, "threadpool_limits", refuse)
    x, W, b, dy = make_case(20, 30, 40)
    linear_forward(x, W, b, backend=backend)
    linear_backward(x, W, dy, backend=backend)


# ---------------------------------------------------------------------------------------------
# bad input: a clear error before any memory is touched

def _good():
    x, W, b, dy = make_case(4, 3, 5, seed=11)
    return dict(x=x, W=W, b=b, dy=dy)


f32, f64 = np.float32, np.float64
FORWARD_BAD = [
    # (id, changes to the good arguments, exception, message fragment)
    ("x-list", dict(x=[[1.0, 2.0, 3.0]]), TypeError, "x must be a numpy.ndarray"),
    ("x-None", dict(x=None), TypeError, "x must be a numpy.ndarray"),
    ("x-int", dict(x=np.zeros((4, 3), dtype=np.int32)), TypeError, "x must be float32 or float64"),
    ("x-f16", dict(x=np.zeros((4, 3), dtype=np.float16)), TypeError, "float32 or float64"),
    ("x-1d", dict(x=np.zeros(3, dtype=f32)), ValueError, "x must be 2-D"),
    ("x-3d", dict(x=np.zeros((2, 2, 3), dtype=f32)), ValueError, r"x must be 2-D .*B\*T"),
    ("W-1d", dict(W=np.zeros(3, dtype=f32)), ValueError, "W must be 2-D"),
    ("W-C", dict(W=np.zeros((5, 4), dtype=f32)), ValueError,
     r"W must have shape \(OC, C\) = \(OC, 3\) to match x \(4, 3\), got \(5, 4\)"),
    ("W-transposed", dict(W=np.zeros((3, 5), dtype=f32)), ValueError, r"got \(3, 5\)"),
    ("W-f64", dict(W=np.zeros((5, 3), dtype=f64)), TypeError,
     "W must have the dtype of x, float32, got float64"),
    ("b-shape", dict(b=np.zeros(4, dtype=f32)), ValueError, r"b must have shape \(OC,\) = \(5,\)"),
    ("b-2d", dict(b=np.zeros((1, 5), dtype=f32)), ValueError, "b must be 1-D"),
    ("b-f64", dict(b=np.zeros(5, dtype=f64)), TypeError, "b must have the dtype of x"),
    ("b-list", dict(b=[0.0] * 5), TypeError, "b must be a numpy.ndarray"),
    ("out-shape", dict(out=np.zeros((5, 4), dtype=f32)), ValueError, r"out must have shape \(4, 5\)"),
    ("out-dtype", dict(out=np.zeros((4, 5), dtype=f64)), TypeError, "out must have dtype float32"),
    ("out-fortran", dict(out=np.zeros((5, 4), dtype=f32).T), ValueError, "C-contiguous"),
    ("out-readonly", "readonly-out", ValueError, "read-only"),
    ("out-is-x", "out-x", ValueError, "out overlaps x"),
    ("out-overlaps-b", "out-b", ValueError, "out overlaps b"),
    ("backend", dict(backend="cuda"), ValueError, "unknown backend 'cuda'"),
    ("blas-int", "huge", ValueError, r"N = 2147483648 exceeds the BLAS integer limit"),
]


@pytest.mark.parametrize("change,exc,message", [c[1:] for c in FORWARD_BAD],
                         ids=[c[0] for c in FORWARD_BAD])
def test_forward_bad_input_raises_before_touching_memory(change, exc, message):
    args = _good()
    del args["dy"]
    if change == "readonly-out":
        out = np.zeros((4, 5), dtype=f32)
        out.flags.writeable = False
        change = dict(out=out)
    elif change == "out-x":
        buf = np.zeros((4, 5), dtype=f32)
        change = dict(x=buf[:, :3], out=buf)
    elif change == "out-b":
        buf = np.zeros(25, dtype=f32)
        change = dict(b=buf[15:20], out=buf[:20].reshape(4, 5))
    elif change == "huge":  # 2**31 rows of nothing: a broadcast view, no memory behind it
        change = dict(x=np.broadcast_to(np.zeros((1, 3), dtype=f32), (2**31, 3)))
    args.update(change)
    watched = [a for a in args.values() if isinstance(a, np.ndarray) and a.flags.writeable]
    before = [a.copy() for a in watched]
    with pytest.raises(exc, match=message):
        linear_forward(**args)
    for a, b in zip(watched, before):
        assert np.array_equal(a, b, equal_nan=True), "memory changed before the error"


BACKWARD_BAD = [
    ("x-list", dict(x=[[1.0]]), TypeError, "x must be a numpy.ndarray"),
    ("W-f64", dict(W=np.zeros((5, 3), dtype=f64)), TypeError, "W must have the dtype of x"),
    ("W-C", dict(W=np.zeros((5, 2), dtype=f32)), ValueError, r"W must have shape \(OC, C\)"),
    ("dy-None", dict(dy=None), TypeError, "dy must be a numpy.ndarray"),
    ("dy-f64", dict(dy=np.zeros((4, 5), dtype=f64)), TypeError, "dy must have the dtype of x"),
    ("dy-1d", dict(dy=np.zeros(5, dtype=f32)), ValueError, "dy must be 2-D"),
    ("dy-N", dict(dy=np.zeros((3, 5), dtype=f32)), ValueError,
     r"dy must have shape \(N, OC\) = \(4, 5\) to match x \(4, 3\) and W \(5, 3\), got \(3, 5\)"),
    ("dy-OC", dict(dy=np.zeros((4, 6), dtype=f32)), ValueError, r"dy must have shape"),
    ("dx-shape", dict(dx=np.zeros((4, 4), dtype=f32)), ValueError, r"dx must have shape \(4, 3\)"),
    ("dx-True", dict(dx=True), TypeError, "dx must be a numpy.ndarray"),
    ("dW-shape", dict(dW=np.zeros((3, 5), dtype=f32)), ValueError, r"dW must have shape \(5, 3\)"),
    ("dW-False", dict(dW=False), TypeError, "dW must be a numpy.ndarray"),
    ("dW-dtype", dict(dW=np.zeros((5, 3), dtype=f64)), TypeError, "dW must have dtype float32"),
    ("dW-fortran", dict(dW=np.zeros((3, 5), dtype=f32).T), ValueError, "C-contiguous"),
    ("db-shape", dict(db=np.zeros(3, dtype=f32)), ValueError, r"db must have shape \(5,\)"),
    ("db-readonly", "readonly-db", ValueError, "db is read-only"),
    ("dx-is-x", "dx-x", ValueError, "dx overlaps x"),
    ("dW-overlaps-W", "dW-W", ValueError, "dW overlaps W"),
    ("db-overlaps-dy", "db-dy", ValueError, "db overlaps dy"),
    ("dW-overlaps-dx", "dW-dx", ValueError, "dW overlaps dx"),
    ("db-overlaps-dW", "db-dW", ValueError, "db overlaps dW"),
    ("accumulate-int", dict(accumulate=1), TypeError, "accumulate must be a bool"),
    ("accumulate-no-dW", dict(accumulate=True, db=np.zeros(5, dtype=f32)), ValueError,
     "accumulate=True adds into dW and db"),
    ("accumulate-no-db", dict(accumulate=True, dW=np.zeros((5, 3), dtype=f32)), ValueError,
     "db=False"),
    ("blas-int", "huge", ValueError, r"OC = 2147483648 exceeds the BLAS integer limit"),
]


@pytest.mark.parametrize("change,exc,message", [c[1:] for c in BACKWARD_BAD],
                         ids=[c[0] for c in BACKWARD_BAD])
def test_backward_bad_input_raises_before_touching_memory(change, exc, message):
    args = _good()
    del args["b"]
    if change == "readonly-db":
        db = np.zeros(5, dtype=f32)
        db.flags.writeable = False
        change = dict(db=db)
    elif change == "dx-x":
        change = dict(dx=args["x"])
    elif change == "dW-W":
        buf = np.zeros(16, dtype=f32)
        buf[:15] = args["W"].ravel()
        change = dict(W=buf[:15].reshape(5, 3), dW=buf[1:].reshape(5, 3))
    elif change == "db-dy":
        buf = np.zeros(21, dtype=f32)
        buf[:20] = args["dy"].ravel()
        change = dict(dy=buf[:20].reshape(4, 5), db=buf[16:])
    elif change == "dW-dx":
        buf = np.zeros(27, dtype=f32)
        change = dict(dx=buf[:12].reshape(4, 3), dW=buf[10:25].reshape(5, 3))
    elif change == "db-dW":
        buf = np.zeros(18, dtype=f32)
        change = dict(dW=buf[:15].reshape(5, 3), db=buf[13:])
    elif change == "huge":  # OC = 2**31 outputs of nothing: broadcast views
        change = dict(W=np.broadcast_to(np.zeros((1, 3), dtype=f32), (2**31, 3)),
                      dy=np.broadcast_to(np.zeros((1, 1), dtype=f32), (4, 2**31)))
    args.update(change)
    watched = [a for a in args.values() if isinstance(a, np.ndarray) and a.flags.writeable]
    before = [a.copy() for a in watched]
    with pytest.raises(exc, match=message):
        linear_backward(**args)
    for a, b in zip(watched, before):
        assert np.array_equal(a, b, equal_nan=True), "memory changed before the error"

"""AdamW, SGD and the gradient norm: every backend against the reference (bit for bit, across
dtypes, sizes, hyper-parameters and threads), 100 steps against torch.optim.AdamW / SGD and
torch.nn.utils.clip_grad_norm_, the parameter arena and its optimizers (aliasing, layout, weight
decay on one range, state round trip), and every bad input against its error."""
import tracemalloc

import numpy as np
import pytest

import fasttrain
from fasttrain import Arena, AdamW, SGD
from fasttrain.kernels import adamw_step, clip_coef, clip_grad_norm, sgd_step, sum_of_squares
from conftest import assert_close

DTYPES = [pytest.param(np.float32, id="f32"), pytest.param(np.float64, id="f64")]
SIZES = [1, 7, 1000003]


def randn(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def assert_same_bits(actual, desired, what):
    """Equal element for element (NaN matching NaN), else the largest differences."""
    if np.array_equal(actual, desired, equal_nan=True):
        return
    assert_close(actual, desired, rtol=0, atol=0, what=what)


# ---------------------------------------------------------------------------------------------
# every backend against the reference, bit for bit: the same IEEE operations in the same order

ADAMW_HYPER = {
    "defaults": dict(lr=1e-3),
    "decay+scale": dict(lr=3e-3, weight_decay=0.1, grad_scale=0.37),
    "small-betas": dict(lr=1e-2, beta1=0.3, beta2=0.5, eps=1e-3),  # lerp's other form
    "zero-betas": dict(lr=1e-2, beta1=0.0, beta2=0.0, weight_decay=1e-2),
    "late-step": dict(lr=5e-4, beta2=0.95, weight_decay=0.01, step0=10000),
}


def adamw_case(n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    param = randn(rng, n, dtype)                            # (n,)
    m = randn(rng, n, dtype, 0.1)                           # (n,) as after some steps
    v = np.abs(randn(rng, n, dtype, 0.01))                  # (n,) v >= 0
    grads = [randn(rng, n, dtype, s) for s in (1.0, 1e-3, 30.0)]
    return param, m, v, grads


def run_adamw(backend, param, m, v, grads, hyper):
    param, m, v = param.copy(), m.copy(), v.copy()
    hyper = dict(hyper)
    step0 = hyper.pop("step0", 0)
    for i, grad in enumerate(grads):
        adamw_step(param, grad, m, v, step=step0 + i + 1, backend=backend, **hyper)
    return param, m, v


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("hyper", list(ADAMW_HYPER), ids=list(ADAMW_HYPER))
def test_adamw_matches_reference(backend, threads, dtype, n, hyper):
    param, m, v, grads = adamw_case(n, dtype)
    got = run_adamw(backend, param, m, v, grads, ADAMW_HYPER[hyper])
    ref = run_adamw("numpy", param, m, v, grads, ADAMW_HYPER[hyper])
    for name, a, b in zip(("param", "m", "v"), got, ref):
        assert a.dtype == dtype
        assert_same_bits(a, b, f"{backend} {name}")
    assert not np.array_equal(got[0], param), "the step changed nothing"


SGD_HYPER = {
    "plain": dict(lr=0.1),
    "momentum": dict(lr=1e-2, momentum=0.9),
    "nesterov": dict(lr=1e-2, momentum=0.9, nesterov=True),
    "decay+scale": dict(lr=1e-2, momentum=0.5, weight_decay=1e-2, grad_scale=0.25),
    "nesterov+decay": dict(lr=3e-2, momentum=0.99, nesterov=True, weight_decay=1e-3),
    "plain+decay": dict(lr=0.1, weight_decay=0.1, grad_scale=2.0),
    "dampening": dict(lr=1e-2, momentum=0.9, dampening=0.3, weight_decay=1e-2),
}


def run_sgd(backend, param, buf, grads, hyper):
    param, buf = param.copy(), buf.copy()
    for grad in grads:
        sgd_step(param, grad, buf, backend=backend, **hyper)
    return param, buf


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("hyper", list(SGD_HYPER), ids=list(SGD_HYPER))
def test_sgd_matches_reference(backend, threads, dtype, n, hyper):
    param, buf, _, grads = adamw_case(n, dtype, seed=1)
    got = run_sgd(backend, param, buf, grads, SGD_HYPER[hyper])
    ref = run_sgd("numpy", param, buf, grads, SGD_HYPER[hyper])
    assert_same_bits(got[0], ref[0], f"{backend} param")
    assert_same_bits(got[1], ref[1], f"{backend} buf")
    if not SGD_HYPER[hyper].get("momentum"):
        assert np.array_equal(got[1], buf), "buf was touched with momentum == 0"


def test_sgd_without_momentum_needs_no_buffer(backend):
    param, _, _, grads = adamw_case(1000, np.float32)
    expected = run_sgd("numpy", param, np.zeros_like(param), grads, dict(lr=0.1))[0]
    got = param.copy()
    for grad in grads:
        sgd_step(got, grad, None, lr=0.1, backend=backend)
    assert_same_bits(got, expected, "param")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 7, 4097, 70001, 1000003, 5000011])
def test_sum_of_squares_matches_reference(backend, threads, dtype, n):
    x = randn(np.random.default_rng(n), n, dtype, 3.0)
    got = sum_of_squares(x, backend=backend)
    assert isinstance(got, float)
    assert_close(got, sum_of_squares(x, backend="numpy"), rtol=1e-13, atol=0,
                 what=f"{backend} sum of squares")
    if backend == "numba" and "c" in fasttrain.available_backends():
        assert got == sum_of_squares(x, backend="c")  # the same blocks and lanes


def test_threads_give_identical_bits(backend):
    n = 1000003  # chunks of 64 elements: the split moves with the thread count
    param, m, v, grads = adamw_case(n, np.float32, seed=2)
    hyper = ADAMW_HYPER["decay+scale"]
    results = []
    before = fasttrain.get_num_threads()
    try:
        for t in (1, 2, 3):
            fasttrain.set_num_threads(t)
            results.append((run_adamw(backend, param, m, v, grads, hyper),
                            run_sgd(backend, param, m, grads, SGD_HYPER["nesterov+decay"]),
                            sum_of_squares(grads[2], backend=backend)))
    finally:
        fasttrain.set_num_threads(before)
    for (adam, sgd, norm) in results[1:]:
        for a, b in zip(adam + sgd, results[0][0] + results[0][1]):
            assert np.array_equal(a, b)
        assert norm == results[0][2]


@pytest.mark.parametrize("dtype", DTYPES)
def test_grad_scale_is_prescaling_the_gradient(backend, dtype):
    param, m, v, grads = adamw_case(10007, dtype, seed=3)
    scale = 0.123
    scaled = run_adamw(backend, param, m, v, grads, dict(lr=1e-2, grad_scale=scale))
    prescaled = run_adamw(backend, param, m, v, [g * dtype(scale) for g in grads], dict(lr=1e-2))
    for a, b in zip(scaled, prescaled):
        assert np.array_equal(a, b)
    sgd = dict(lr=1e-2, momentum=0.9, weight_decay=0.1)
    scaled = run_sgd(backend, param, m, grads, dict(sgd, grad_scale=scale))
    prescaled = run_sgd(backend, param, m, [g * dtype(scale) for g in grads], sgd)
    for a, b in zip(scaled, prescaled):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_nan_and_inf_gradients_propagate_like_pytorch(backend, torch, optimizer):
    rng = np.random.default_rng(4)
    param = randn(rng, 1000, np.float32)
    grad = randn(rng, 1000, np.float32)
    grad[[3, 500]] = np.nan
    grad[[7, 999]] = [np.inf, -np.inf]
    tp = torch.tensor(param.copy(), requires_grad=True)
    tp.grad = torch.tensor(grad)
    state = [np.zeros_like(param), np.zeros_like(param)]
    if optimizer == "adamw":
        torch.optim.AdamW([tp], lr=1e-2, weight_decay=0.1).step()
        adamw_step(param, grad, *state, step=1, lr=1e-2, weight_decay=0.1, backend=backend)
    else:
        torch.optim.SGD([tp], lr=1e-2, momentum=0.9, weight_decay=0.1).step()
        sgd_step(param, grad, state[0], lr=1e-2, momentum=0.9, weight_decay=0.1,
                 backend=backend)
    expected = tp.detach().numpy()
    bad = ~np.isfinite(grad)
    assert np.array_equal(np.isnan(param), np.isnan(expected))
    assert np.isnan(param[bad]).all() if optimizer == "adamw" else not np.isfinite(param[bad]).any()
    assert_close(param[~bad], expected[~bad], rtol=1e-6, atol=1e-7, what="finite elements")


# ---------------------------------------------------------------------------------------------
# 100 steps against PyTorch, through the arena and its optimizers

# A small model's parameters: (name, shape, decayed)
MODEL = [("wte", (300, 32), True), ("fc.weight", (64, 32), True), ("fc.bias", (64,), False),
         ("ln.weight", (32,), False), ("head.weight", (300, 64), True), ("ln.bias", (32,), False)]


def make_model(dtype, seed=5):
    rng = np.random.default_rng(seed)
    arena = Arena(dtype=dtype)
    for name, shape, decay in MODEL:
        arena.add(name, shape, decay=decay)
    arena.build()
    for name, shape, _ in MODEL:
        arena[name][...] = randn(rng, shape, dtype)
    return arena


def torch_model(torch, arena, weight_decay):
    tensors = {name: torch.tensor(arena[name].copy(), requires_grad=True) for name in arena.names}
    groups = [{"params": [t for n, t in tensors.items() if arena.decays(n)],
               "weight_decay": weight_decay},
              {"params": [t for n, t in tensors.items() if not arena.decays(n)],
               "weight_decay": 0.0}]
    return tensors, groups


def run_against_torch(torch, backend, dtype, make_opt, make_torch_opt, weight_decay, clip):
    """100 steps on both sides from the same values and gradients; the largest difference."""
    arena = make_model(dtype)
    tensors, groups = torch_model(torch, arena, weight_decay)
    opt, topt = make_opt(arena), make_torch_opt(groups)
    rng = np.random.default_rng(6)
    for it in range(100):
        lr = 1e-2 * (1 - it / 100)  # a schedule: step(lr=)
        for name in arena.names:
            g = randn(rng, arena.shape(name), dtype, rng.uniform(0.01, 3.0))
            arena.grad(name)[...] = g
            tensors[name].grad = torch.tensor(g)
        scale = 1.0
        if clip:
            norm = clip_grad_norm(arena.grads, clip, backend=backend)
            tnorm = torch.nn.utils.clip_grad_norm_(list(tensors.values()), clip)
            assert_close(norm, tnorm.item(), rtol=1e-6 if dtype == np.float32 else 1e-12,
                         atol=0, what="total norm")
            scale = clip_coef(norm, clip)
        for g in topt.param_groups:
            g["lr"] = lr
        opt.step(lr=lr, grad_scale=scale)
        topt.step()
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    worst = 0.0
    for name, t in tensors.items():
        expected = t.detach().numpy()
        scale = np.abs(expected).max()
        assert_close(arena[name], expected, rtol=rtol, atol=rtol * scale, what=name)
        worst = max(worst, float(np.abs(arena[name] - expected).max() / scale))
    return opt, topt, tensors, worst


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("betas,weight_decay,clip", [((0.9, 0.999), 0.1, None),
                                                     ((0.9, 0.95), 0.01, 1.0),
                                                     ((0.3, 0.5), 0.0, 0.5)],
                         ids=["default-betas", "gpt-betas+clip", "small-betas+clip"])
def test_adamw_100_steps_match_pytorch(backend, torch, dtype, betas, weight_decay, clip,
                                       record_property):
    opt, topt, tensors, worst = run_against_torch(
        torch, backend, dtype,
        lambda arena: AdamW(arena, lr=1e-2, betas=betas, weight_decay=weight_decay,
                            backend=backend),
        lambda groups: torch.optim.AdamW(groups, lr=1e-2, betas=betas),
        weight_decay, clip)
    record_property("max_diff_over_max_abs", worst)  # float32: about 1e-7 (one or two ulp)
    assert opt.step_count == 100
    for name, t in tensors.items():  # the state agrees too
        state = topt.state[t]
        span = opt.arena.span(name)
        for mine, theirs in ((opt.m, state["exp_avg"]), (opt.v, state["exp_avg_sq"])):
            theirs = theirs.numpy().ravel()
            assert_close(mine[span], theirs, rtol=1e-5 if dtype == np.float32 else 1e-11,
                         atol=1e-5 * np.abs(theirs).max(), what=f"{name} state")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_adamw_amsgrad_matches_reference_and_pytorch(backend, threads, torch, dtype, n):
    """v_max (AMSGrad): every backend the reference's bits (v_max starts above v, so the
    maximum matters; a NaN in v propagates), and torch.optim.AdamW(amsgrad=True)."""
    param, m, v, grads = adamw_case(n, dtype, seed=5)
    v_max = v * dtype(2)
    hyper = dict(lr=1e-2, weight_decay=0.1)
    if n > 1:
        grads[1][n // 2] = np.nan
    got, ref = [], []
    for out, be in ((got, backend), (ref, "numpy")):
        p, m1, v1, vm = param.copy(), m.copy(), v.copy(), v_max.copy()
        for i, g in enumerate(grads):
            adamw_step(p, g, m1, v1, step=i + 1, v_max=vm, backend=be, **hyper)
        out += [p, m1, v1, vm]
    for name, a, b in zip(("param", "m", "v", "v_max"), got, ref):
        assert_same_bits(a, b, f"{backend} {name}")
    if n > 1:
        assert np.isnan(got[3][n // 2]) and np.isnan(got[0][n // 2])
        return
    t = torch.tensor(param.copy(), requires_grad=True)  # one element, no NaN: against torch
    topt = torch.optim.AdamW([t], **hyper, amsgrad=True)
    topt.state[t].update(step=torch.tensor(0.0), exp_avg=torch.tensor(m.copy()),
                         exp_avg_sq=torch.tensor(v.copy()), max_exp_avg_sq=torch.tensor(v_max))
    for g in grads:
        t.grad = torch.tensor(g.copy())
        topt.step()
    assert_close(got[0], t.detach().numpy(), rtol=1e-6 if dtype == np.float32 else 1e-14,
                 atol=0, what="param vs torch")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum,nesterov,weight_decay,clip",
                         [(0.0, False, 0.0, None), (0.9, False, 1e-2, None),
                          (0.9, True, 1e-3, 1.0), (0.5, True, 0.0, 0.5)],
                         ids=["plain", "momentum+decay", "nesterov+decay+clip", "nesterov+clip"])
def test_sgd_100_steps_match_pytorch(backend, torch, dtype, momentum, nesterov, weight_decay,
                                     clip, record_property):
    _, _, _, worst = run_against_torch(
        torch, backend, dtype,
        lambda arena: SGD(arena, lr=1e-2, momentum=momentum, nesterov=nesterov,
                          weight_decay=weight_decay, backend=backend),
        lambda groups: torch.optim.SGD(groups, lr=1e-2, momentum=momentum, nesterov=nesterov),
        weight_decay, clip)
    record_property("max_diff_over_max_abs", worst)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_dampening_matches_pytorch(backend, torch, dtype):
    """dampening: torch's first step copies the gradient undampened (call with dampening=0 on
    a fresh buffer), later ones add (1 - dampening) * g."""
    param, _, _, grads = adamw_case(1001, dtype, seed=4)
    hyper = dict(lr=1e-2, momentum=0.9, weight_decay=1e-2)
    p, buf = param.copy(), np.zeros_like(param)
    t = torch.tensor(param.copy(), requires_grad=True)
    topt = torch.optim.SGD([t], **hyper, dampening=0.3)
    for i, g in enumerate(grads * 3):
        sgd_step(p, g, buf, **hyper, dampening=0.3 if i else 0.0, backend=backend)
        t.grad = torch.tensor(g.copy())
        topt.step()
    assert_close(p, t.detach().numpy(), rtol=1e-5 if dtype == np.float32 else 1e-12,
                 atol=1e-6 if dtype == np.float32 else 1e-14, what="param vs torch")
    assert_close(buf, topt.state[t]["momentum_buffer"].numpy(), rtol=1e-5, atol=1e-6,
                 what="buf vs torch")


# ---------------------------------------------------------------------------------------------
# gradient norm and clipping

@pytest.mark.parametrize("dtype", DTYPES)
def test_clip_grad_norm_matches_pytorch_and_writes_nothing(backend, torch, dtype):
    rng = np.random.default_rng(7)
    grads = [randn(rng, shape, dtype, 0.3) for shape in [(100, 30), (30,), (7, 11, 13)]]
    before = [g.copy() for g in grads]
    tgrads = [torch.tensor(g.copy(), requires_grad=True) for g in grads]
    for t, g in zip(tgrads, grads):
        t.grad = torch.tensor(g.copy())
    tnorm = torch.nn.utils.clip_grad_norm_(tgrads, 1.0).item()
    norm = clip_grad_norm(grads, 1.0, backend=backend)
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    assert_close(norm, tnorm, rtol=rtol, atol=0, what="norm")
    assert norm > 1.0  # so torch did clip
    for g, b in zip(grads, before):
        assert np.array_equal(g, b)
    coef = clip_coef(norm, 1.0)
    for g, t in zip(grads, tgrads):
        assert_close(g * dtype(coef), t.grad.numpy(), rtol=rtol * 4, atol=0, what="clipped")
    flat = np.concatenate([g.ravel() for g in grads])
    assert_close(clip_grad_norm(flat, 1.0, backend=backend), norm, rtol=1e-14, atol=0,
                 what="one buffer vs a list")


def test_norm_of_nan_and_inf(backend):
    x = np.ones(100000, dtype=np.float32)
    assert clip_grad_norm(x, 1.0, backend=backend) == pytest.approx(np.sqrt(1e5))
    x[12345] = np.inf
    assert clip_grad_norm(x, 1.0, backend=backend) == np.inf
    x[99999] = np.nan
    assert np.isnan(clip_grad_norm(x, 1.0, backend=backend))
    assert sum_of_squares(np.zeros(0, dtype=np.float32), backend=backend) == 0.0
    big = np.full(1000, 3e38, dtype=np.float32)  # squares in double: no overflow
    assert np.isfinite(sum_of_squares(big, backend=backend))


def test_clip_coef_is_torchs_factor():
    assert clip_coef(0.5, 1.0) == 1.0
    assert clip_coef(4.0, 1.0) == 1.0 / (4.0 + 1e-6)
    assert np.isnan(clip_coef(float("nan"), 1.0))  # a NaN norm poisons the step, as in torch
    assert clip_coef(float("inf"), 1.0) == 0.0


def test_sum_of_squares_copies_strided_input(backend):
    x = randn(np.random.default_rng(8), (100, 60), np.float32)
    assert_close(sum_of_squares(x[:, ::3], backend=backend),
                 sum_of_squares(np.ascontiguousarray(x[:, ::3]), backend="numpy"),
                 rtol=1e-13, atol=0, what="strided")


# ---------------------------------------------------------------------------------------------
# the arena

def test_arena_views_alias_the_buffers():
    arena = make_model(np.float32)
    w = arena["fc.weight"]
    span = arena.span("fc.weight")
    assert w.shape == (64, 32) and np.shares_memory(w, arena.params)
    arena.params[span.start + 33] = 42.0           # writing the buffer changes the view
    assert w[1, 1] == 42.0
    w[0, 2] = -7.0                                  # and writing the view changes the buffer
    assert arena.params[span.start + 2] == -7.0
    g = arena.grad("fc.weight")
    arena.grads[span.start + 5] = 3.0
    assert g[0, 5] == 3.0 and np.shares_memory(g, arena.grads)
    assert not np.shares_memory(arena.params, arena.grads)
    arena.zero_grad()
    assert not arena.grads.any() and g[0, 5] == 0.0


def test_arena_layout():
    arena = make_model(np.float32)
    assert arena.names == tuple(name for name, _, _ in MODEL)
    assert arena.num_params == sum(int(np.prod(s)) for _, s, _ in MODEL)
    assert arena.params.shape == arena.grads.shape == (arena.size,)
    assert arena.params.dtype == np.float32 and arena.params.flags.c_contiguous
    spans = [arena.span(name) for name, _, _ in MODEL]
    decayed = [s for s, (_, _, d) in zip(spans, MODEL) if d]
    rest = [s for s, (_, _, d) in zip(spans, MODEL) if not d]
    # decayed parameters first, in the order added, then the others; each on a cache line
    assert [s.start for s in decayed] == sorted(s.start for s in decayed)
    assert max(s.stop for s in decayed) <= arena.decay_size <= min(s.start for s in rest)
    assert [s.start for s in rest] == sorted(s.start for s in rest)
    assert arena.decay == slice(0, arena.decay_size)
    for name in arena.names:
        assert arena[name].ctypes.data % 64 == 0 and arena.grad(name).ctypes.data % 64 == 0
    covered = np.zeros(arena.size, dtype=bool)
    for s in spans:
        assert not covered[s].any()
        covered[s] = True
    assert not arena.params[~covered].any()  # the gaps are zeros


def test_arena_float64_and_empty_parameter():
    arena = Arena(dtype=np.float64)
    arena.add("w", (3, 0))
    arena.add("b", 5, decay=False)
    arena.build()
    assert arena["w"].shape == (3, 0) and arena["b"].dtype == np.float64
    assert arena.decay_size == 0 and arena.size == 8


@pytest.mark.parametrize("case,exc,message", [
    ("duplicate", ValueError, "already in the arena"),
    ("after-build", RuntimeError, "already built"),
    ("build-twice", RuntimeError, "already built"),
    ("before-build", RuntimeError, "not built yet"),
    ("unknown", KeyError, "no parameter 'nope'"),
    ("bad-shape", ValueError, "integers >= 0"),
    ("negative-shape", ValueError, "integers >= 0"),
    ("bad-name", TypeError, "non-empty str"),
    ("bad-dtype", TypeError, "float32 or float64"),
    ("unbuilt-optimizer", RuntimeError, "build"),
])
def test_arena_errors(case, exc, message):
    arena = Arena()
    arena.add("w", (2, 3))
    with pytest.raises(exc, match=message):
        if case == "duplicate":
            arena.add("w", 4)
        elif case == "after-build":
            arena.build().add("b", 3)
        elif case == "build-twice":
            arena.build().build()
        elif case == "before-build":
            arena["w"]
        elif case == "unknown":
            arena.build()["nope"]
        elif case == "bad-shape":
            arena.add("b", (2.5,))
        elif case == "negative-shape":
            arena.add("b", (-1, 2))
        elif case == "bad-name":
            arena.add("", 3)
        elif case == "bad-dtype":
            Arena(dtype=np.int32)
        else:
            AdamW(arena, lr=1e-3)


# ---------------------------------------------------------------------------------------------
# the optimizers over the arena

@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_weight_decay_only_on_the_decayed_range(backend, optimizer):
    arena = make_model(np.float32)
    before = arena.params.copy()
    lr, wd = 0.1, 0.5
    if optimizer == "adamw":
        opt = AdamW(arena, lr=lr, weight_decay=wd, backend=backend)
        factor = np.float32(1 - lr * wd)         # zero gradient: m = v = 0, the update is 0
    else:
        opt = SGD(arena, lr=lr, weight_decay=wd, backend=backend)
        factor = None                            # g = wd * p, p -= lr * g
    opt.step()
    d = arena.decay
    if factor is not None:
        assert np.array_equal(arena.params[d], before[d] * factor)
    else:
        expected = before[d] + np.float32(-lr) * (np.float32(0) + np.float32(wd) * before[d])
        assert np.array_equal(arena.params[d], expected)
    assert np.array_equal(arena.params[d.stop:], before[d.stop:])
    for name in arena.names:
        changed = not np.array_equal(arena[name], before[arena.span(name)].reshape(
            arena.shape(name)))
        assert changed == arena.decays(name), name


def fill_grads(arena, rng):
    for name in arena.names:
        arena.grad(name)[...] = randn(rng, arena.shape(name), arena.dtype)


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_state_round_trip_is_bit_exact(backend, optimizer):
    def make(arena):
        if optimizer == "adamw":
            return AdamW(arena, lr=1e-2, weight_decay=0.1, backend=backend)
        return SGD(arena, lr=1e-2, momentum=0.9, nesterov=True, weight_decay=0.1,
                   backend=backend)

    straight = make_model(np.float32)
    opt = make(straight)
    rng = np.random.default_rng(9)
    for it in range(20):
        if it == 10:  # a checkpoint: copies of the parameters and the optimizer's state
            saved = (straight.params.copy(),
                     {k: a.copy() for k, a in opt.state_arrays().items()}, opt.step_count)
            rng_state = rng.bit_generator.state
        fill_grads(straight, rng)
        opt.step(lr=1e-2 * (1 - it / 20))

    resumed = make_model(np.float32, seed=123)  # different values, overwritten by the load
    opt2 = make(resumed)
    np.copyto(resumed.params, saved[0])
    opt2.load_state(saved[1], saved[2])
    rng.bit_generator.state = rng_state
    for it in range(10, 20):
        fill_grads(resumed, rng)
        opt2.step(lr=1e-2 * (1 - it / 20))
    assert opt2.step_count == opt.step_count == 20
    assert np.array_equal(resumed.params, straight.params)
    for name, a in opt.state_arrays().items():
        assert np.array_equal(opt2.state_arrays()[name], a)


def test_state_arrays_and_load_state_checks():
    arena = make_model(np.float32)
    opt = AdamW(arena, lr=1e-3)
    assert sorted(opt.state_arrays()) == ["m", "v"]
    assert opt.state_arrays()["m"] is opt.m and opt.m.shape == (arena.size,)
    assert SGD(arena, lr=1e-3).state_arrays() == {}
    assert list(SGD(arena, lr=1e-3, momentum=0.9).state_arrays()) == ["momentum_buffer"]
    good = {k: a.copy() for k, a in opt.state_arrays().items()}
    with pytest.raises(ValueError, match="exactly"):
        opt.load_state({"m": good["m"]}, 3)
    with pytest.raises(ValueError, match="shape"):
        opt.load_state({"m": good["m"][:-1], "v": good["v"]}, 3)
    with pytest.raises(ValueError, match="dtype"):
        opt.load_state({"m": good["m"].astype(np.float64), "v": good["v"]}, 3)
    with pytest.raises(ValueError, match="step_count must be >= 0"):
        opt.load_state(good, -1)
    good["m"][:] = 1.0
    opt.load_state(good, 3)
    assert opt.step_count == 3 and (opt.m == 1.0).all() and opt.m is not good["m"]


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_at_most_two_kernel_calls_per_step(monkeypatch, optimizer):
    import fasttrain.optim as optim

    calls = []
    name = "adamw_step" if optimizer == "adamw" else "sgd_step"
    real = getattr(optim, name)
    monkeypatch.setattr(optim, name, lambda *a, **k: calls.append(k["weight_decay"]) or real(*a, **k))
    arena = make_model(np.float32)
    opt = (AdamW if optimizer == "adamw" else SGD)(arena, lr=1e-3, weight_decay=0.1)
    opt.step()
    assert calls == [0.1, 0.0]
    only_matrices = Arena()
    only_matrices.add("w", (4, 4))
    only_matrices.build()
    calls.clear()
    (AdamW if optimizer == "adamw" else SGD)(only_matrices, lr=1e-3, weight_decay=0.1).step()
    assert calls == [0.1]


@pytest.mark.parametrize("backend", ["c", "numba"])
def test_step_allocates_no_array(backend):
    if backend not in fasttrain.available_backends():
        pytest.skip(f"backend {backend} is not available")
    arena = make_model(np.float32)
    fill_grads(arena, np.random.default_rng(10))
    opts = [AdamW(arena, lr=1e-3, weight_decay=0.1, backend=backend),
            SGD(arena, lr=1e-3, momentum=0.9, weight_decay=0.1, backend=backend),
            SGD(arena, lr=1e-3, backend=backend)]
    for opt in opts:
        opt.step()  # compiled and warm
    numpy_domain = tracemalloc.DomainFilter(True, np.lib.tracemalloc_domain)
    tracemalloc.start()
    try:
        for opt in opts:
            opt.step(grad_scale=0.5)
        snapshot = tracemalloc.take_snapshot().filter_traces([numpy_domain])
    finally:
        tracemalloc.stop()
    assert sum(stat.size for stat in snapshot.statistics("lineno")) == 0


def test_optimizer_hyper_parameters_are_checked():
    arena = make_model(np.float32)
    with pytest.raises(ValueError, match="lr must be >= 0.0 and finite, got -1"):
        AdamW(arena, lr=-1)
    with pytest.raises(ValueError, match=r"beta2 must be in \[0.0, 1.0\), got 1.0"):
        AdamW(arena, lr=1e-3, betas=(0.9, 1.0))
    with pytest.raises(TypeError, match="betas must be a pair"):
        AdamW(arena, lr=1e-3, betas=0.9)
    with pytest.raises(ValueError, match="eps must be > 0.0"):
        AdamW(arena, lr=1e-3, eps=0)
    with pytest.raises(ValueError, match="weight_decay must be >= 0.0"):
        SGD(arena, lr=1e-3, weight_decay=-0.1)
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0"):
        SGD(arena, lr=1e-3, nesterov=True)
    with pytest.raises(TypeError, match="Arena"):
        AdamW(arena.params, lr=1e-3)
    opt = AdamW(arena, lr=1e-3)
    with pytest.raises(ValueError, match="lr must be"):
        opt.step(lr=float("nan"))
    assert opt.step_count == 0 and not opt.m.any()  # nothing happened


# ---------------------------------------------------------------------------------------------
# bad input: a clear error before any memory is touched

def _good_adamw():
    rng = np.random.default_rng(11)
    param, grad, m, v = (randn(rng, (4, 5), np.float32) for _ in range(4))
    return dict(param=param, grad=grad, m=m, v=np.abs(v), step=1, lr=1e-3)


def _readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


BAD_ADAMW = [
    # (id, change: dict or a function of the good arguments, exception, message fragment)
    ("param-list", dict(param=[[0.0] * 5] * 4), TypeError, "param must be a numpy.ndarray"),
    ("grad-None", dict(grad=None), TypeError, "grad must be a numpy.ndarray"),
    ("param-int", lambda a: dict(param=a["param"].astype(np.int32)), TypeError, "float32 or float64"),
    ("m-f16", lambda a: dict(m=a["m"].astype(np.float16)), TypeError, "m must be float32 or float64"),
    ("v-f64", lambda a: dict(v=a["v"].astype(np.float64)), TypeError, "v has dtype float64 but param has float32"),
    ("grad-big-endian", lambda a: dict(grad=a["grad"].astype(">f4")), TypeError, "native byte order"),
    ("grad-shape", lambda a: dict(grad=a["grad"][:3]), ValueError, r"grad has shape \(3, 5\) but param has \(4, 5\)"),
    ("m-flat", lambda a: dict(m=a["m"].ravel()), ValueError, "m has shape"),
    ("param-fortran", lambda a: dict(param=np.asfortranarray(a["param"])), ValueError, "param must be C-contiguous"),
    ("grad-strided", lambda a: dict(grad=np.repeat(a["grad"], 2, axis=1)[:, ::2]), ValueError, "grad must be C-contiguous"),
    ("param-readonly", lambda a: dict(param=_readonly(a["param"])), ValueError, "param is read-only"),
    ("v-readonly", lambda a: dict(v=_readonly(a["v"])), ValueError, "v is read-only"),
    ("m-is-v", lambda a: dict(m=a["v"]), ValueError, "m and v overlap"),
    ("grad-is-param", lambda a: dict(grad=a["param"]), ValueError, "param and grad overlap"),
    ("overlapping", "overlapping", ValueError, "param and m overlap"),
    ("lr-negative", dict(lr=-1e-3), ValueError, r"lr must be >= 0.0 and finite, got -0.001"),
    ("lr-nan", dict(lr=float("nan")), ValueError, "lr must be >= 0.0 and finite, got nan"),
    ("lr-inf", dict(lr=float("inf")), ValueError, "lr must be"),
    ("lr-str", dict(lr="1e-3"), TypeError, "lr must be a real number"),
    ("beta1-one", dict(beta1=1.0), ValueError, r"beta1 must be in \[0.0, 1.0\), got 1.0"),
    ("beta1-negative", dict(beta1=-0.1), ValueError, "beta1 must be in"),
    ("beta2-high", dict(beta2=1.5), ValueError, r"beta2 must be in \[0.0, 1.0\), got 1.5"),
    ("eps-zero", dict(eps=0.0), ValueError, "eps must be > 0.0 and finite, got 0.0"),
    ("eps-negative", dict(eps=-1e-8), ValueError, "eps must be > 0.0"),
    ("weight-decay-negative", dict(weight_decay=-0.1), ValueError, "weight_decay must be >= 0.0 and finite, got -0.1"),
    ("step-zero", dict(step=0), ValueError, r"step must be >= 1 \(steps count from 1\), got 0"),
    ("step-float", dict(step=1.0), TypeError, "step must be an integer"),
    ("step-bool", dict(step=True), TypeError, "step must be an integer"),
    ("grad-scale-str", dict(grad_scale="1"), TypeError, "grad_scale must be a real number"),
    ("backend", dict(backend="cuda"), ValueError, "unknown backend 'cuda'"),
]


@pytest.mark.parametrize("change,exc,message", [b[1:] for b in BAD_ADAMW],
                         ids=[b[0] for b in BAD_ADAMW])
def test_adamw_bad_input_raises_before_touching_memory(change, exc, message):
    args = _good_adamw()
    if change == "overlapping":
        buf = np.zeros(21, dtype=np.float32)
        change = dict(param=buf[:20].reshape(4, 5), m=buf[1:].reshape(4, 5))
    elif callable(change):
        change = change(args)
    args.update(change)
    watched = [a for a in args.values() if isinstance(a, np.ndarray)]
    before = [a.copy() for a in watched]
    with pytest.raises(exc, match=message):
        adamw_step(**args)
    for a, b in zip(watched, before):
        assert np.array_equal(a, b, equal_nan=True), "memory changed before the error"


BAD_SGD = [
    ("momentum-negative", dict(momentum=-0.9), ValueError, "momentum must be >= 0.0 and finite, got -0.9"),
    ("nesterov-no-momentum", dict(momentum=0.0, nesterov=True), ValueError, "nesterov=True needs momentum > 0"),
    ("nesterov-str", dict(nesterov="yes"), TypeError, "nesterov must be True or False"),
    ("buf-None", dict(buf=None), ValueError, "buf .* is required with momentum=0.9"),
    ("buf-shape", dict(buf=np.zeros(20, dtype=np.float32)), ValueError, "buf has shape"),
    ("buf-is-grad", "buf-is-grad", ValueError, "grad and buf overlap"),
    ("lr-negative", dict(lr=-0.1), ValueError, "lr must be >= 0.0"),
    ("weight-decay-nan", dict(weight_decay=float("nan")), ValueError, "weight_decay must be"),
]


@pytest.mark.parametrize("change,exc,message", [b[1:] for b in BAD_SGD],
                         ids=[b[0] for b in BAD_SGD])
def test_sgd_bad_input_raises_before_touching_memory(change, exc, message):
    a = _good_adamw()
    args = dict(param=a["param"], grad=a["grad"], buf=a["m"], lr=0.1, momentum=0.9)
    args.update(dict(buf=args["grad"]) if change == "buf-is-grad" else change)
    watched = [x for x in args.values() if isinstance(x, np.ndarray)]
    before = [x.copy() for x in watched]
    with pytest.raises(exc, match=message):
        sgd_step(**args)
    for x, b in zip(watched, before):
        assert np.array_equal(x, b), "memory changed before the error"


def test_norm_bad_input():
    with pytest.raises(TypeError, match="x must be a numpy.ndarray"):
        sum_of_squares([1.0, 2.0])
    with pytest.raises(TypeError, match="float32 or float64"):
        sum_of_squares(np.ones(3, dtype=np.int64))
    with pytest.raises(ValueError, match="max_norm must be > 0.0"):
        clip_grad_norm(np.ones(3, dtype=np.float32), 0.0)
    with pytest.raises(TypeError, match=r"grads\[1\] must be a numpy.ndarray"):
        clip_grad_norm([np.ones(3, dtype=np.float32), [1.0]], 1.0)
    with pytest.raises(ValueError, match="max_norm must be"):
        clip_coef(1.0, -1.0)


def test_empty_arrays_are_a_no_op(backend):
    e = [np.zeros(0, dtype=np.float32) for _ in range(4)]
    adamw_step(*e, step=1, lr=1e-3, backend=backend)
    sgd_step(*e[:3], lr=1e-3, momentum=0.9, backend=backend)

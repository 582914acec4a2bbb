"""fasttrain.torch: the kernels as PyTorch operators (gradcheck in float64, stock ops in float32,
torch.compile), the argument checks, and the arena optimizers against torch.optim's."""
import copy
import math
import subprocess
import sys

import pytest

import fasttrain.kernels  # noqa: F401  (the C backend before torch: fasttrain/threads.py)

torch = pytest.importorskip("torch", reason="PyTorch is the oracle of these tests")
import torch.nn.functional as TF  # noqa: E402

import fasttrain.torch as ft  # noqa: E402
from fasttrain.models.torch_gpt import TorchGPT  # noqa: E402

F64 = dict(dtype=torch.float64)


def randn(*shape, dtype=torch.float64, requires_grad=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype).requires_grad_(requires_grad)


def targets(N, V, ignore=(), seed=1):
    t = torch.randint(0, V, (N,), generator=torch.Generator().manual_seed(seed))
    for i in ignore:
        t[i] = -100
    return t


def close(a, b, tol, what=""):
    diff = (a - b).abs().max().item() if a.numel() else 0.0
    assert diff <= tol, f"{what}: largest difference {diff:.3g} > {tol}"


# ---------------------------------------------------------------------------------------------
# importing

def test_import_without_torch_says_how_to_install():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import fasttrain, fasttrain.models.gpt, fasttrain.optim\n"
            "try:\n    import fasttrain.torch\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install torch" in out.stdout


def test_fasttrain_itself_never_imports_torch():
    code = "import sys, fasttrain, fasttrain.optim, fasttrain.arena; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------
# gradcheck in float64: every function, every option the kernels have

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cross_entropy_gradcheck(reduction, label_smoothing):
    logits, t = randn(7, 5), targets(7, 5, ignore=[2])
    f = lambda z: ft.cross_entropy(z, t, reduction=reduction, label_smoothing=label_smoothing)
    assert torch.autograd.gradcheck(f, (logits,))
    close(f(logits), TF.cross_entropy(logits, t, reduction=reduction,
                                      label_smoothing=label_smoothing), 1e-12, "loss")


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("reduction,label_smoothing", [("mean", 0.0), ("sum", 0.1)])
def test_linear_cross_entropy_gradcheck(bias, reduction, label_smoothing):
    x, W, b = randn(6, 4), randn(9, 4, seed=1), randn(9, seed=2) if bias else None
    t = targets(6, 9, ignore=[0])
    kw = dict(reduction=reduction, label_smoothing=label_smoothing)
    inputs = (x, W, b) if bias else (x, W)
    assert torch.autograd.gradcheck(lambda *a: ft.linear_cross_entropy(a[0], a[1], t, *a[2:], **kw),
                                    inputs)
    ref = TF.cross_entropy(TF.linear(x, W, b), t, **kw)
    close(ft.linear_cross_entropy(x, W, t, b, **kw), ref, 1e-12, "loss")


def torch_loss(logits, t, reduction="mean", label_smoothing=0.0, weight=None,
               lse_square_scale=0.0, softcap=None, ignore_index=-100):
    """The loss options as PyTorch formulas: soft cap (Gemma 2) on the logits, then
    F.cross_entropy, plus the z-loss (PaLM) of each kept row; "mean" divides the z-loss by the
    number of kept rows."""
    z = logits if softcap is None else softcap * torch.tanh(logits / softcap)
    kw = dict(weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing)
    kept = (t != ignore_index).to(z.dtype)
    zloss = lse_square_scale * torch.logsumexp(z, dim=1) ** 2 * kept
    if reduction == "none":
        return TF.cross_entropy(z, t, reduction="none", **kw) + zloss
    if reduction == "sum":
        return TF.cross_entropy(z, t, reduction="sum", **kw) + zloss.sum()
    return TF.cross_entropy(z, t, reduction="mean", **kw) + zloss.sum() / kept.sum()


LOSS_OPTIONS = [dict(weight=True), dict(lse_square_scale=1e-2), dict(softcap=2.0),
                dict(weight=True, lse_square_scale=0.1, softcap=1.5, label_smoothing=0.1)]


def _options(opts, V, dtype=torch.float64):
    opts = dict(opts)
    if opts.pop("weight", False):
        opts["weight"] = torch.linspace(0.2, 2.0, V, dtype=dtype)
    return opts


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("opts", LOSS_OPTIONS, ids=lambda o: "+".join(o))
def test_cross_entropy_options_gradcheck(reduction, opts):
    logits, t = randn(7, 5) * 3, targets(7, 5, ignore=[2])
    opts = _options(opts, 5)
    f = lambda z: ft.cross_entropy(z, t, reduction=reduction, **opts)
    assert torch.autograd.gradcheck(f, (logits.detach().requires_grad_(),))
    close(f(logits), torch_loss(logits, t, reduction, **opts), 1e-12, "loss")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("opts", LOSS_OPTIONS, ids=lambda o: "+".join(o))
def test_linear_cross_entropy_options_gradcheck(reduction, opts):
    x, W, b = randn(6, 4), randn(9, 4, seed=1), randn(9, seed=2)
    t = targets(6, 9, ignore=[0])
    opts = _options(opts, 9)
    opts["ce_weight"] = opts.pop("weight", None)
    f = lambda x, W, b: ft.linear_cross_entropy(x, W, t, b, reduction=reduction, **opts)
    # for "none", gradcheck's upstream gradients are one-hot rows: the second kernel pass
    assert torch.autograd.gradcheck(f, (x, W, b))
    torch_opts = dict(opts, weight=opts["ce_weight"])
    del torch_opts["ce_weight"]
    ref = torch_loss(TF.linear(x, W, b), t, reduction, **torch_opts)
    close(f(x, W, b), ref, 1e-12, "loss")


def test_an_ignore_index_of_a_real_class():
    x, W = randn(8, 4), randn(5, 4, seed=1)
    t = torch.tensor([0, 2, 1, 2, 4, 3, 2, 0])  # class 2 ignored, rows 1, 3, 6
    for reduction in ("mean", "none"):
        kw = dict(ignore_index=2, reduction=reduction)
        close(ft.cross_entropy(x @ W.T, t, **kw), TF.cross_entropy(x @ W.T, t, **kw), 1e-12,
              "cross_entropy")
        ours = grads_of(lambda x, W: ft.linear_cross_entropy(x, W, t, **kw), x, W)
        ref = grads_of(lambda x, W: TF.cross_entropy(TF.linear(x, W), t, **kw), x, W)
        for a, r in zip([ours[0], *ours[1]], [ref[0], *ref[1]]):
            close(a, r, 1e-12, f"linear_cross_entropy {reduction}")


def test_linear_cross_entropy_none_under_any_upstream_gradient():
    # per-row upstream gradients (the second pass), the same for every row (the saved
    # gradients scaled), and all rows ignored but one; (B, T, C) input gives (B, T) losses
    x, W, b = randn(2, 3, 4), randn(5, 4, seed=1), randn(5, seed=2)
    t = targets(6, 5, ignore=[1]).view(2, 3)
    for upstream in (torch.arange(6, **F64).view(2, 3), torch.full((2, 3), 0.25, **F64)):
        ours = grads_of(lambda *a: ft.linear_cross_entropy(a[0], a[1], t, a[2], reduction="none")
                        * upstream, x, W, b)
        ref = grads_of(lambda *a: TF.cross_entropy(TF.linear(*a).view(6, 5), t.view(6),
                                                   reduction="none").view(2, 3) * upstream,
                       x, W, b)
        assert ours[0].shape == (2, 3)
        for a, r in zip([ours[0], *ours[1]], [ref[0], *ref[1]]):
            close(a, r, 1e-12, "linear_cross_entropy none")


def test_loss_options_float32_match_torch():
    f32 = dict(dtype=torch.float32)
    x, W, b = randn(64, 32, **f32), randn(300, 32, **f32, seed=1), randn(300, **f32, seed=2)
    t = targets(64, 300, ignore=[3, 9])
    opts = _options(dict(weight=True, lse_square_scale=1e-3, softcap=5.0,
                         label_smoothing=0.1), 300, torch.float32)
    for reduction in ("mean", "none"):
        up = torch.linspace(0.5, 1.5, 64) if reduction == "none" else torch.tensor(1.0)
        lce = dict(opts, ce_weight=opts["weight"])
        del lce["weight"]
        ours = grads_of(lambda *a: ft.linear_cross_entropy(a[0], a[1], t, a[2],
                                                           reduction=reduction, **lce) * up,
                        x, W, b)
        ref = grads_of(lambda *a: torch_loss(TF.linear(*a), t, reduction, **opts) * up, x, W, b)
        close(ours[0], ref[0], 2e-5 * 64, f"linear_cross_entropy {reduction} loss")
        for name, a, r in zip("xWb", ours[1], ref[1]):
            close(a, r, 2e-6, f"linear_cross_entropy {reduction} d{name}")
        logits = TF.linear(x, W, b).detach().requires_grad_()
        ours = grads_of(lambda z: ft.cross_entropy(z, t, reduction=reduction, **opts) * up,
                        logits)
        ref = grads_of(lambda z: torch_loss(z, t, reduction, **opts) * up, logits)
        close(ours[0], ref[0], 2e-5 * 64, f"cross_entropy {reduction} loss")
        close(ours[1][0], ref[1][0], 1e-6, f"cross_entropy {reduction} dlogits")


def test_second_derivatives_are_refused_not_silently_wrong():
    x, W, t = randn(6, 4), randn(5, 4, seed=1), targets(6, 5)
    for loss in (lambda: ft.cross_entropy(x @ W.T, t), lambda: ft.linear_cross_entropy(x, W, t)):
        with pytest.raises(RuntimeError, match="first derivatives only"):
            torch.autograd.grad(loss(), x, create_graph=True)
    (g,) = torch.autograd.grad(ft.gelu(x).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="no autograd formula"):
        g.sum().backward()  # the backward op has none: PyTorch's own error


@pytest.mark.parametrize("affine", ["both", "weight", "none"])
def test_layer_norm_gradcheck(affine):
    x = randn(2, 3, 8)
    w = randn(8, seed=1) if affine != "none" else None
    b = randn(8, seed=2) if affine == "both" else None
    inputs = tuple(a for a in (x, w, b) if a is not None)

    def f(*a):
        it = iter(a[1:])
        return ft.layer_norm(a[0], (8,), next(it) if w is not None else None,
                             next(it) if b is not None else None, 1e-5)
    assert torch.autograd.gradcheck(f, inputs)
    close(f(*inputs), TF.layer_norm(x, (8,), w, b, 1e-5), 1e-12, "y")


def test_gelu_gradcheck():
    x = randn(3, 17) * 3
    assert torch.autograd.gradcheck(ft.gelu, (x.detach().requires_grad_(),))
    close(ft.gelu(x), TF.gelu(x, approximate="tanh"), 1e-12, "y")


@pytest.mark.parametrize("is_causal", [True, False])
@pytest.mark.parametrize("scale", [None, 0.3])
def test_scaled_dot_product_attention_gradcheck(is_causal, scale):
    q, k, v = (randn(2, 2, 5, 3, seed=s) for s in range(3))
    f = lambda *a: ft.scaled_dot_product_attention(*a, is_causal=is_causal, scale=scale)
    assert torch.autograd.gradcheck(f, (q, k, v))
    close(f(q, k, v), TF.scaled_dot_product_attention(q, k, v, is_causal=is_causal, scale=scale),
          1e-12, "y")


def test_attention_packed_gradcheck():
    qkv = randn(2, 5, 12)  # C = 4, 2 heads
    assert torch.autograd.gradcheck(lambda a: ft.attention(a, 2), (qkv,))


# ---------------------------------------------------------------------------------------------
# float32 against the stock ops, gradients included, and where gradients go

def grads_of(f, *inputs):
    inputs = [a.detach().clone().requires_grad_(a.requires_grad) for a in inputs]
    out = f(*inputs)
    out.backward(torch.ones_like(out) if out.dim() else None)
    return out.detach(), [a.grad for a in inputs]


def test_float32_matches_torch_and_grads_go_only_where_asked():
    f32 = dict(dtype=torch.float32)
    x, W = randn(64, 32, **f32), randn(300, 32, **f32, seed=1, requires_grad=False)
    b, t = randn(300, **f32, seed=2), targets(64, 300, ignore=[3, 9])
    ours = grads_of(lambda x, W, b: ft.linear_cross_entropy(x, W, t, b, label_smoothing=0.1),
                    x, W, b)
    ref = grads_of(lambda x, W, b: TF.cross_entropy(TF.linear(x, W, b), t, label_smoothing=0.1),
                   x, W, b)
    close(ours[0], ref[0], 1e-5, "loss")
    close(ours[1][0], ref[1][0], 1e-6, "dx")
    assert ours[1][1] is None  # W does not require grad: no gradient is made for it
    close(ours[1][2], ref[1][2], 1e-6, "db")

    logits = randn(64, 300, **f32)
    for reduction in ("mean", "sum", "none"):
        ours = grads_of(lambda z: ft.cross_entropy(z, t, reduction=reduction), logits)
        ref = grads_of(lambda z: TF.cross_entropy(z, t, reduction=reduction), logits)
        close(ours[0], ref[0], 2e-5, f"cross_entropy {reduction}")
        close(ours[1][0], ref[1][0], 1e-6, f"dlogits {reduction}")

    h, w, bb = randn(4, 16, 48, **f32), randn(48, **f32, seed=1), randn(48, **f32, seed=2)
    ours = grads_of(lambda *a: ft.layer_norm(a[0], (48,), a[1], a[2]) ** 2, h, w, bb)
    ref = grads_of(lambda *a: TF.layer_norm(a[0], (48,), a[1], a[2]) ** 2, h, w, bb)
    for a, r in zip([ours[0], *ours[1]], [ref[0], *ref[1]]):
        close(a, r, 5e-4, "layer_norm")

    ours = grads_of(lambda a: ft.gelu(a) ** 2, h)
    ref = grads_of(lambda a: TF.gelu(a, approximate="tanh") ** 2, h)
    close(ours[0], ref[0], 1e-5, "gelu")
    close(ours[1][0], ref[1][0], 1e-5, "gelu dx")

    q, k, v = (randn(2, 4, 33, 16, **f32, seed=s) for s in range(3))
    ours = grads_of(lambda *a: ft.scaled_dot_product_attention(*a, is_causal=True) ** 2, q, k, v)
    ref = grads_of(lambda *a: TF.scaled_dot_product_attention(*a, is_causal=True) ** 2, q, k, v)
    for a, r in zip([ours[0], *ours[1]], [ref[0], *ref[1]]):
        close(a, r, 5e-5, "attention")


def test_cross_entropy_none_takes_a_per_row_upstream_gradient():
    logits, t = randn(6, 4), targets(6, 4, ignore=[1])
    w = torch.arange(6, **F64)
    ours = grads_of(lambda z: (ft.cross_entropy(z, t, reduction="none") * w).sum(), logits)
    ref = grads_of(lambda z: (TF.cross_entropy(z, t, reduction="none") * w).sum(), logits)
    close(ours[1][0], ref[1][0], 1e-12, "dlogits")


def test_linear_cross_entropy_scales_by_the_upstream_gradient_and_takes_3d_input():
    x, W, t = randn(2, 3, 4), randn(5, 4, seed=1), targets(6, 5).view(2, 3)
    ours = grads_of(lambda x, W: 2.5 * ft.linear_cross_entropy(x, W, t), x, W)
    ref = grads_of(lambda x, W: 2.5 * TF.cross_entropy(TF.linear(x, W).view(6, 5), t.view(6)),
                   x, W)
    for a, r in zip([ours[0], *ours[1]], [ref[0], *ref[1]]):
        close(a, r, 1e-12, "linear_cross_entropy")


def test_non_contiguous_inputs_are_copied_and_correct():
    logits = randn(5, 7).detach().t().requires_grad_()  # (7, 5), a transposed view
    t = targets(7, 5)
    ours = grads_of(lambda z: ft.cross_entropy(z, t), logits)
    ref = grads_of(lambda z: TF.cross_entropy(z, t), logits)
    close(ours[1][0], ref[1][0], 1e-12, "dlogits")
    x = randn(4, 6).detach()[:, ::2].requires_grad_()  # strided columns
    close(ft.layer_norm(x, (3,)), TF.layer_norm(x, (3,)), 1e-12, "layer_norm")


def test_no_grad_forward_and_modules():
    x, W, t = randn(6, 4), randn(5, 4, seed=1), targets(6, 5)
    with torch.no_grad():
        loss = ft.nn.LinearCrossEntropyLoss(label_smoothing=0.1)(x, W, t)
    close(loss, TF.cross_entropy(TF.linear(x, W), t, label_smoothing=0.1), 1e-12, "loss")
    ln, ref = ft.nn.LayerNorm(4, **F64), torch.nn.LayerNorm(4, **F64)
    ref.load_state_dict(ln.state_dict())
    close(ln(x), ref(x), 1e-12, "LayerNorm")
    close(ft.nn.GELU()(x), torch.nn.GELU(approximate="tanh")(x), 1e-12, "GELU")
    w = torch.linspace(0.5, 2, 5, **F64)
    lce = ft.nn.LinearCrossEntropyLoss(reduction="none", ce_weight=w, softcap=3.0,
                                       lse_square_scale=1e-2)
    close(lce(x, W, t), torch_loss(TF.linear(x, W), t, "none", weight=w, softcap=3.0,
                                   lse_square_scale=1e-2), 1e-12, "LinearCrossEntropyLoss")
    ce = ft.nn.CrossEntropyLoss(weight=w, label_smoothing=0.1, lse_square_scale=1e-2)
    assert "weight" in ce.state_dict()  # torch's buffer, as torch.nn.CrossEntropyLoss has it
    close(ce(x @ W.T, t), torch_loss(x @ W.T, t, weight=w, label_smoothing=0.1,
                                     lse_square_scale=1e-2), 1e-12, "CrossEntropyLoss")


# ---------------------------------------------------------------------------------------------
# what is refused, named

@pytest.mark.parametrize("call,name", [
    (lambda: ft.cross_entropy(randn(3, 4), targets(3, 4), weight=randn(4)), "class weights"),
    (lambda: ft.linear_cross_entropy(randn(3, 4), randn(5, 4), targets(3, 5), ce_weight=randn(5)),
     "class weights"),
    (lambda: ft.cross_entropy(randn(3, 4), targets(3, 4), reduce=False), "reduce=False"),
    (lambda: ft.cross_entropy(randn(2, 4, 3), targets(2, 3).view(2, 1)), "shape"),
    (lambda: ft.gelu(randn(3), approximate="none"), "approximate='none'"),
    (lambda: ft.layer_norm(randn(3, 4, 5), (4, 5)), "normalized_shape"),
    (lambda: ft.scaled_dot_product_attention(*(randn(1, 1, 3, 2),) * 3, dropout_p=0.1),
     "dropout_p"),
    (lambda: ft.scaled_dot_product_attention(*(randn(1, 1, 3, 2),) * 3,
                                             attn_mask=torch.ones(3, 3, dtype=torch.bool)),
     "attn_mask"),
    (lambda: ft.scaled_dot_product_attention(randn(1, 1, 3, 2), randn(1, 1, 4, 2),
                                             randn(1, 1, 4, 2)), "self-attention"),
    (lambda: ft.AdamW([torch.zeros(2, requires_grad=True)], capturable=True), "capturable"),
    (lambda: ft.SGD([torch.zeros(2, requires_grad=True)], differentiable=True),
     "differentiable"),
    (lambda: ft.nn.LayerNorm((3, 4)), "normalized_shape"),
])
def test_unsupported_arguments_raise_naming_them(call, name):
    with pytest.raises(NotImplementedError, match=name.replace("(", r"\(")):
        call()


@pytest.mark.parametrize("call,error,words", [
    (lambda: ft.cross_entropy(torch.zeros(3, 4, dtype=torch.float16), targets(3, 4)), TypeError,
     "float16"),
    (lambda: ft.gelu(torch.zeros(3, dtype=torch.bfloat16)), TypeError, "bfloat16"),
    (lambda: ft.gelu(torch.zeros(3, device="meta")), ValueError, "device meta"),
    (lambda: ft.linear_cross_entropy(randn(3, 4), randn(5, 4, dtype=torch.float32),
                                     targets(3, 5)), TypeError, "weight has dtype torch.float32"),
    (lambda: ft.cross_entropy(randn(3, 4), torch.zeros(3)), TypeError, "integer"),
    (lambda: ft.cross_entropy(randn(3, 4), torch.tensor([0, 1, 7])), ValueError, "targets"),
    (lambda: ft.attention(randn(1, 3, 12), 5), ValueError, "n_head=5"),
    (lambda: ft.AdamW([torch.zeros(2, dtype=torch.float16, requires_grad=True)]), TypeError,
     "float16"),
    (lambda: ft.AdamW([torch.zeros(2, requires_grad=True), torch.zeros(2, **F64)]), TypeError,
     "one dtype"),
])
def test_bad_input_raises_naming_it(call, error, words):
    with pytest.raises(error, match=words):
        call()


# ---------------------------------------------------------------------------------------------
# torch.compile: each op is one opaque node; the model around it compiles, forward and backward

def test_a_compiled_model_calling_the_ops_works():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = TorchGPT(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8)
    ft.patch(model)
    x, y = torch.randint(0, 11, (2, 8)), torch.randint(0, 11, (2, 8))
    loss = model(x, y)
    loss.backward()
    eager = loss.detach()
    want = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    # aot_eager: Dynamo's graph capture and AOTAutograd's forward/backward graphs, no codegen
    # (inductor's C++ compile takes minutes on this machine; it only lowers the ops around ours)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    loss_c = compiled(x, y)
    loss_c.backward()
    close(loss_c.detach(), eager, 1e-6, "compiled loss")
    for n, p in model.named_parameters():
        close(p.grad, want[n], 1e-6, f"compiled grad {n}")

    # reduction="none" under per-row weights: the second kernel pass, also one opaque node
    torch._dynamo.reset()
    h, W, t = torch.randn(6, 8), torch.randn(11, 8).requires_grad_(), torch.randint(0, 11, (6,))
    rows = torch.linspace(0.1, 1.0, 6)
    f = lambda W: (ft.linear_cross_entropy(h, W, t, reduction="none") * rows).sum()
    (want,) = torch.autograd.grad(f(W), W)
    (got,) = torch.autograd.grad(torch.compile(f, backend="aot_eager", fullgraph=True)(W), W)
    close(got, want, 1e-6, "compiled reduction='none'")


# ---------------------------------------------------------------------------------------------
# the optimizers against torch.optim

class Small(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(12, 32)
        self.ln = torch.nn.LayerNorm(32)
        self.fc2 = torch.nn.Linear(32, 5)

    def forward(self, x):
        return self.fc2(torch.tanh(self.ln(self.fc1(x))))


def groups(model, wd=0.1):
    ps = list(model.parameters())
    return [{"params": [p for p in ps if p.dim() >= 2], "weight_decay": wd},
            {"params": [p for p in ps if p.dim() < 2], "weight_decay": 0.0, "lr": 2e-3}]


def batches(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, 12, generator=g), torch.randint(0, 5, (16,), generator=g))
            for _ in range(n)]


def train(model, opt, data, sched=None, clip=1.0):
    for x, y in data:
        loss = TF.cross_entropy(model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        opt.zero_grad()
        if sched is not None:
            sched.step()


def cosine(total):
    return lambda it: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(it, total) / total))


def assert_same_params(a, b, tol):
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        close(p.detach(), q.detach(), tol, n)


def test_adamw_matches_torch_fused_over_200_steps():
    torch.manual_seed(0)
    ref = Small()
    ours = copy.deepcopy(ref)
    opt_ref = torch.optim.AdamW(groups(ref), lr=1e-2, fused=True)
    opt = ft.AdamW(groups(ours), lr=1e-2)
    assert opt.defaults["weight_decay"] == 1e-2 and opt.defaults["betas"] == (0.9, 0.999)
    data = batches(200)
    train(ref, opt_ref, data, torch.optim.lr_scheduler.LambdaLR(opt_ref, cosine(200)))
    train(ours, opt, data, torch.optim.lr_scheduler.LambdaLR(opt, cosine(200)))
    assert opt.param_groups[0]["lr"] == opt_ref.param_groups[0]["lr"]
    assert_same_params(ours, ref, 5e-6)
    # the params and grads are views of the arena: one buffer, 64-byte aligned ranges
    base = opt._flat_params.data_ptr()
    for p in ours.parameters():
        assert 0 <= p.data_ptr() - base < opt._flat_params.numel() * 4
        assert (p.data_ptr() - base) % 64 == 0
        assert p.grad.data_ptr() - opt._flat_grads.data_ptr() == p.data_ptr() - base


@pytest.mark.parametrize("first", ["fasttrain", "torch"])
def test_adamw_state_dict_switches_both_ways(first):
    torch.manual_seed(1)
    model = Small()
    make = {"fasttrain": lambda m: ft.AdamW(groups(m), lr=5e-3, betas=(0.9, 0.95)),
            "torch": lambda m: torch.optim.AdamW(groups(m), lr=5e-3, betas=(0.9, 0.95),
                                                 fused=True)}
    second = "torch" if first == "fasttrain" else "fasttrain"
    data = batches(20, seed=3)
    opt = make[first](model)
    train(model, opt, data[:10])
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    assert set(saved_opt["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    train(model, opt, data[10:])                      # uninterrupted, with the first optimizer

    other = Small()
    other.load_state_dict(saved_model)
    opt2 = make[second](other)
    opt2.load_state_dict(copy.deepcopy(saved_opt))  # torch's steps the loaded tensors in place
    train(other, opt2, data[10:])                     # resumed with the other one
    assert_same_params(other, model, 5e-6)
    assert float(opt2.state_dict()["state"][0]["step"]) == 20

    again = Small()                                   # and with the same one: the same bits
    again.load_state_dict(saved_model)
    opt3 = make[first](again)
    opt3.load_state_dict(saved_opt)
    train(again, opt3, data[10:])
    assert_same_params(again, model, 0.0)


def test_adamw_maximize_amsgrad_and_sgd_match_torch():
    for make_ours, make_ref in [
        (lambda ps: ft.AdamW(ps, lr=1e-2, maximize=True),
         lambda ps: torch.optim.AdamW(ps, lr=1e-2, maximize=True)),
        (lambda ps: ft.AdamW(ps, lr=1e-2, amsgrad=True),
         lambda ps: torch.optim.AdamW(ps, lr=1e-2, amsgrad=True, fused=True)),
        (lambda ps: ft.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
         lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
        (lambda ps: ft.SGD(ps, lr=0.05, momentum=0.8, dampening=0.3),
         lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.8, dampening=0.3)),
        (lambda ps: ft.SGD(ps, lr=0.05, maximize=True, weight_decay=1e-2),
         lambda ps: torch.optim.SGD(ps, lr=0.05, maximize=True, weight_decay=1e-2)),
    ]:
        torch.manual_seed(2)
        ref = Small()
        ours = copy.deepcopy(ref)
        opt_ref, opt = make_ref(groups(ref)), make_ours(groups(ours))
        data = batches(30, seed=4)
        train(ref, opt_ref, data)
        train(ours, opt, data)
        assert_same_params(ours, ref, 5e-6)
        # the state_dict loads into torch's, and torch's into ours: both continue alike
        other, again = copy.deepcopy(ours), copy.deepcopy(ref)
        opt_t, opt_f = make_ref(groups(other)), make_ours(groups(again))
        opt_t.load_state_dict(copy.deepcopy(opt.state_dict()))
        opt_f.load_state_dict(copy.deepcopy(opt_ref.state_dict()))
        more = batches(5, seed=8)
        train(other, opt_t, more)
        train(again, opt_f, more)
        assert_same_params(again, other, 5e-6)


def test_params_without_grad_are_skipped_and_replaced_grads_taken_back():
    torch.manual_seed(3)
    ref = Small()
    ours = copy.deepcopy(ref)
    opt_ref = torch.optim.AdamW(ref.parameters(), lr=1e-2)
    opt = ft.AdamW(ours.parameters(), lr=1e-2)
    for model, o in ((ref, opt_ref), (ours, opt)):
        for x, y in batches(5, seed=5):
            model.zero_grad(set_to_none=True)  # the model's own: grads become None
            TF.cross_entropy(model(x), y).backward()
            model.fc2.bias.grad = None         # one param gets no gradient: skipped
            o.step()
    assert_same_params(ours, ref, 1e-6)
    assert len(opt.state[ours.fc2.bias]) == 0


def test_add_param_group_and_replaced_data_keep_matching_torch():
    torch.manual_seed(4)
    ref = Small()
    ours = copy.deepcopy(ref)
    g_ref, g_ours = groups(ref), groups(ours)
    opt_ref = torch.optim.AdamW(g_ref[:1], lr=1e-2, fused=True)
    opt = ft.AdamW(g_ours[:1], lr=1e-2)
    data = batches(10, seed=6)
    train(ref, opt_ref, data[:5])
    train(ours, opt, data[:5])
    opt_ref.add_param_group(g_ref[1])
    opt.add_param_group(g_ours[1])                     # a new, larger arena; the state moves
    for p in ours.parameters():
        p.data = p.data.clone()                        # other code replaces .data
    train(ref, opt_ref, data[5:])
    train(ours, opt, data[5:])
    assert_same_params(ours, ref, 5e-6)
    assert ours.fc1.weight.data_ptr() == opt._flat_params.data_ptr()  # back in the arena


# ---------------------------------------------------------------------------------------------
# a nanoGPT-style model with fasttrain's kernels and AdamW swapped in

def test_torch_gpt_patched_trains_like_the_stock_model():
    torch.manual_seed(0)
    stock = TorchGPT(vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32)
    fast = ft.patch(copy.deepcopy(stock))
    assert isinstance(fast.ln_f, ft.nn.LayerNorm)
    opt_s = torch.optim.AdamW(stock.param_groups(0.1), lr=3e-3, betas=(0.9, 0.95), fused=True)
    opt_f = ft.AdamW(fast.param_groups(0.1), lr=3e-3, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(7)
    curves = {"stock": [], "fast": []}
    for _ in range(50):
        x = torch.randint(0, 64, (4, 16), generator=g)
        y = torch.roll(x, -1, dims=1)
        for name, model, opt in (("stock", stock, opt_s), ("fast", fast, opt_f)):
            loss = model(x, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            curves[name].append(loss.item())
    diff = max(abs(a - b) for a, b in zip(curves["stock"], curves["fast"]))
    assert diff <= 1e-4, f"loss curves differ by {diff:.3g}"
    assert curves["fast"][-1] < curves["fast"][0] - 0.5  # and it learned


def test_bench_case_contenders_compute_the_same_step():
    from fasttrain.bench import torch_face

    for case in torch_face.cases(torch_face.TINY, ["torch"]):
        calls = case.setup(case.contenders)
        results = {name: call() for name, call in calls.items()}
        if case.op == "train step":  # the same first loss from the same weights and batch
            losses = list(results.values())
            assert max(losses) - min(losses) < 1e-5, results

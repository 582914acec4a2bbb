"""The GPT (fasttrain.models.GPT): equal to the same model in PyTorch (logits, loss, every
gradient, 50 AdamW steps with warmup, cosine and clipping), GPT-2's initialisation, no
allocation after the first step, the key/value-cache decoder equal to the full forward, and
everything the MLP's training loop offers (resume, NaN guard, accumulation, sample, eval)."""
import json
import math
import tracemalloc

import numpy as np
import pytest

from fasttrain import checkpoint
from fasttrain.config import TrainConfig
from fasttrain.data import IGNORE_INDEX, all_windows
from fasttrain.models import GPT
from fasttrain.train import CHECKPOINT, TrainingError, train
from conftest import assert_close

SHAPE = dict(vocab_size=61, block_size=16, n_layer=2, n_head=2, n_embd=24)


def gpt(backend=None, dtype=np.float32, seed=0, **kw):
    """A small GPT with its biases and LN parameters moved off 0 and 1, so their gradients and
    their place in the forward are tested too."""
    model = GPT(**{**SHAPE, **kw}, backend=backend, dtype=dtype)
    model.init(seed)
    noise = np.random.default_rng(seed + 1)
    for name in model.arena.names:
        if model.arena[name].ndim == 1:
            model.arena[name][...] += noise.standard_normal(model.arena.shape(name)) * 0.1
    return model


def batch(B=3, T=13, V=61, seed=2):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_forward_and_gradients_match_pytorch(torch, backend, dtype):
    from fasttrain.models.torch_gpt import TorchGPT

    model = gpt(backend, dtype)
    x, y = batch()
    x[0, 3], y[1, 5] = 60, 0   # the vocabulary's ends
    ref = TorchGPT.like(model)
    tight = dtype == np.float64
    rtol = 1e-10 if tight else 1e-5
    ref_logits = ref.logits(torch.tensor(x)).detach().numpy()
    assert_close(model.logits(x), ref_logits, rtol=rtol, atol=rtol * np.abs(ref_logits).max(),
                 what="logits")
    ref_loss = ref(torch.tensor(x), torch.tensor(y))
    ref_loss.backward()
    model.arena.zero_grad()
    loss = model.forward_backward(x, y)
    assert loss == pytest.approx(ref_loss.item(), rel=rtol)
    assert model.loss(x, y) == pytest.approx(ref_loss.item(), rel=rtol)
    rtol = 1e-10 if tight else 1e-4
    for name, g in ref.grads().items():  # every gradient tensor, as llm.c's test_gpt2
        assert_close(model.arena.grad(name), g, rtol=rtol, atol=rtol * np.abs(g).max(),
                     what=name)


def test_fifty_adamw_steps_match_pytorch(torch):
    """Warmup, cosine decay, clipping (it engages: max norm 0.5), weight decay on matrices and
    embeddings only: losses and final parameters within 1e-4 of torch.optim.AdamW's."""
    from fasttrain.models.torch_gpt import TorchGPT
    from fasttrain.optim import AdamW
    from fasttrain.schedule import learning_rate
    from fasttrain.train import train_step

    model = gpt()
    ref = TorchGPT.like(model)
    steps, lr, clip = 50, 3e-3, 0.5
    opt = AdamW(model.arena, lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    ref_opt = torch.optim.AdamW(ref.param_groups(0.1), lr=lr, betas=(0.9, 0.95))
    rng = np.random.default_rng(3)
    clipped = 0
    for step in range(steps):
        x, y = rng.integers(0, 61, (4, 16)), rng.integers(0, 61, (4, 16))
        y[:, ::2] = x[:, ::2]  # something to learn
        rate = learning_rate(step, lr=lr, min_lr=lr / 10, warmup=5, steps=steps,
                             schedule="cosine")
        loss, norm = train_step(model, opt, [(x, y)], rate, clip)
        for group in ref_opt.param_groups:
            group["lr"] = rate
        ref_loss = ref(torch.tensor(x), torch.tensor(y))
        ref_loss.backward()
        ref_norm = torch.nn.utils.clip_grad_norm_(ref.parameters(), clip).item()
        ref_opt.step()
        ref_opt.zero_grad()
        clipped += norm > clip
        assert loss == pytest.approx(ref_loss.item(), rel=1e-4), f"step {step + 1}"
        assert norm == pytest.approx(ref_norm, rel=1e-4), f"step {step + 1}"
    assert clipped > 5 and loss < math.log(61) - 0.3
    for name, p in ref.named_parameters():
        want = p.detach().numpy()
        assert_close(model.arena[name], want, rtol=1e-4, atol=1e-4 * np.abs(want).max(),
                     what=name)


def test_gpt2_initialisation_and_parameter_count():
    L, C, V, T = 4, 64, 300, 32
    model = GPT(vocab_size=V, block_size=T, n_layer=L, n_head=4, n_embd=C)
    model.init(0)
    a = model.arena
    # nanoGPT's count with the head tied: wte + wpe + L blocks + ln_f
    assert model.num_params == V * C + T * C + L * (12 * C * C + 13 * C) + 2 * C
    assert "lm_head.weight" not in a  # tied: the head is wte
    assert np.std(a["wte.weight"]) == pytest.approx(0.02, rel=0.03)
    assert np.std(a["h.0.mlp.c_fc.weight"]) == pytest.approx(0.02, rel=0.03)
    for name in ("h.1.attn.c_proj.weight", "h.3.mlp.c_proj.weight"):
        assert np.std(a[name]) == pytest.approx(0.02 / math.sqrt(2 * L), rel=0.03), name
    assert np.all(a["h.2.ln_1.weight"] == 1) and np.all(a["ln_f.weight"] == 1)
    assert np.all(a["h.2.attn.c_attn.bias"] == 0) and np.all(a["ln_f.bias"] == 0)
    # weight decay: matrices and embeddings only
    assert all(a.decays(n) == (a[n].ndim == 2) for n in a.names)
    again = GPT(vocab_size=V, block_size=T, n_layer=L, n_head=4, n_embd=C)
    again.init(0)
    assert np.array_equal(again.arena.params, a.params)


def test_tied_head_gets_both_gradients():
    """wte's gradient is the head's (dlogits.T @ lnf) plus the embedding's scatter: checked by
    finite differences of the loss in one entry of a row the batch reads."""
    model = gpt(dtype=np.float64)
    x, y = batch()
    model.arena.zero_grad()
    model.forward_backward(x, y)
    v = int(x[0, 0])
    h, w = 1e-6, model.arena["wte.weight"]
    w[v, 3] += h
    up = model.loss(x, y)
    w[v, 3] -= 2 * h
    down = model.loss(x, y)
    w[v, 3] += h
    assert model.arena.grad("wte.weight")[v, 3] == pytest.approx((up - down) / (2 * h), rel=1e-6)


def test_no_allocation_after_the_first_step():
    """After the first step of a shape, a step allocates no activation: what tracemalloc sees
    is the kernels' per-call scratch (attention: O(threads x T x hs); the fused head: a chunk
    of logits), well under a tenth of the activations."""
    model = gpt(block_size=64, n_embd=64, n_head=4)
    x, y = batch(B=4, T=64)
    model.arena.zero_grad()
    model.forward_backward(x, y)                      # makes the (4, 64) buffers
    buf = model._buffers[(4, 64)]
    activations = sum(b.nbytes for o in (buf, *buf.layers) for b in vars(o).values()
                      if isinstance(b, np.ndarray))
    tracemalloc.start()
    try:
        model.forward_backward(x, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < activations / 10, f"{peak} bytes allocated in a step ({activations} kept)"
    assert list(model._buffers) == [(4, 64)]


def test_decoder_equals_the_full_forward_and_slides():
    model = gpt(block_size=12)
    tokens = list(np.random.default_rng(5).integers(0, 61, 40))
    decoder = model.decoder()
    logits = decoder.feed(tokens[:3])
    for i in range(3, len(tokens)):
        window = tokens[:i][-12:] if len(decoder.tokens) == 12 else decoder.tokens
        if len(decoder.tokens) == i:   # nothing slid yet: the window is the whole text
            full = model.logits(np.array([tokens[:i]]))[0, -1]
            assert_close(logits, full, rtol=1e-5, atol=1e-5, what=f"token {i}")
        else:                          # slid: the cache holds the last tokens, in order
            assert decoder.tokens == tokens[i - len(decoder.tokens):i]
            full = model.logits(np.array([window]))[0, -1]
            assert_close(logits, full, rtol=1e-5, atol=1e-5, what=f"token {i} (slid)")
        logits = decoder.feed([tokens[i]])
    assert 6 <= len(decoder.tokens) <= 12
    with pytest.raises(ValueError, match="token ids"):
        decoder.feed([61])
    with pytest.raises(ValueError, match="at least one"):
        decoder.feed([])


@pytest.mark.parametrize("n", [16, 17, 40, 33])
def test_evaluation_windows_predict_every_token_once(n):
    """all_windows(sequence=True): non-overlapping windows, the last one ending at the split's
    end with its already-counted targets ignored: each target 1..n-1 exactly once."""
    tokens = np.arange(n)
    seen = []
    for x, y in all_windows(tokens, 8, 3, sequence=True):
        assert np.array_equal(x[:, 1:], x[:, :-1] + 1)
        ok = y != IGNORE_INDEX
        assert np.array_equal(y[ok], (x + 1)[ok])
        seen += list(y[ok])
    assert sorted(seen) == list(range(1, n))


def test_bad_input_is_refused():
    model = gpt()
    with pytest.raises(ValueError, match="block_size"):
        model.loss(np.zeros((2, 17), np.int64), np.zeros((2, 17), np.int64))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        model.loss(np.zeros(5, np.int64), np.zeros(5, np.int64))
    with pytest.raises(ValueError, match="target"):
        model.loss(np.zeros((1, 4), np.int64), np.full((1, 4), 61))
    with pytest.raises(ValueError, match="n_head"):
        GPT(vocab_size=10, block_size=4, n_layer=1, n_head=5, n_embd=24)


# ----------------------------------------------------------------------------------------------
# the training loop with model=gpt

def tiny(corpus_file, out_dir, **kw):
    base = dict(data=str(corpus_file), model="gpt", n_layer=2, n_head=2, n_embd=16,
                block_size=16, batch_size=8, steps=40, warmup=5, lr=1e-2, min_lr=1e-3,
                eval_interval=20, checkpoint_interval=10, log_interval=10, sample_tokens=20,
                out_dir=str(out_dir))
    return TrainConfig(**{**base, **kw})


def test_training_the_gpt_lowers_the_loss_and_samples(corpus_file, tmp_path):
    from fasttrain.sample import evaluate_text, generate, load_run

    summary = train(tiny(corpus_file, tmp_path / "run", steps=100), progress=False)
    records = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in records if r["split"] == "val"]
    assert val[0]["loss"] == pytest.approx(math.log(256), abs=0.1)
    assert val[-1]["loss"] < val[0]["loss"] - 1.5
    train_rec = [r for r in records if r["split"] == "train"]
    assert train_rec[0]["tokens_per_s"] > 0
    cfg, model, tok = load_run(tmp_path / "run")
    assert isinstance(model, GPT) and cfg.model == "gpt"
    text = generate(model, tok, "The ", 50, temperature=0.8, top_k=20, seed=1)
    assert text.startswith("The ") and text == generate(model, tok, "The ", 50,
                                                        temperature=0.8, top_k=20, seed=1)
    assert len(generate(model, tok, "", 5, seed=1).encode()) >= 1
    assert evaluate_text(tmp_path / "run")["loss"] == pytest.approx(summary["val_loss"])


def test_gpt_resume_after_ctrl_c_is_bit_exact(corpus_file, tmp_path, monkeypatch):
    import fasttrain.train as train_module
    from test_train import ctrl_c_at_batch

    train(tiny(corpus_file, tmp_path / "full", steps=25), progress=False)
    expected, _ = checkpoint.load(tmp_path / "full" / CHECKPOINT)
    original = ctrl_c_at_batch(monkeypatch, 12)
    cut = tiny(corpus_file, tmp_path / "cut", steps=25)
    assert train(cut, progress=False)["step"] == 12
    monkeypatch.setattr(train_module.Batches, "next", original)
    train(cut, resume=True, progress=False)
    got, meta = checkpoint.load(tmp_path / "cut" / CHECKPOINT)
    assert meta["step"] == 25
    for name in expected:
        assert np.array_equal(got[name], expected[name]), name


def test_gpt_gradient_accumulation_and_nan_guard(corpus_file, tmp_path, monkeypatch):
    from fasttrain.data import Batches, Corpus
    from fasttrain.train import build, train_step

    cfg = tiny(corpus_file, tmp_path / "run", optimizer="sgd", grad_clip=0.0)
    corpus = Corpus.prepare(tmp_path / "run", cfg.data, "bytes", 0, 0.1, cfg.window)
    x, y = Batches(corpus.train, cfg.window, 8, seed=0, sequence=True).next()
    params = []
    for k in (1, 4):
        model, opt = build(cfg, corpus)
        for _ in range(3):
            train_step(model, opt, [(x[i::k], y[i::k]) for i in range(k)], 0.5, 0.0)
        params.append(model.arena.params.copy())
    assert_close(params[1], params[0], rtol=1e-5, atol=1e-6, what="accumulated vs one batch")

    from test_train import nan_loss_at_call

    nan_loss_at_call(monkeypatch, GPT, 15)
    with pytest.raises(TrainingError, match="step 15: loss nan"):
        train(tiny(corpus_file, tmp_path / "nan", steps=30), progress=False)
    assert checkpoint.load(tmp_path / "nan" / CHECKPOINT)[1]["step"] == 10


def test_a_checkpoint_of_another_shape_is_refused(corpus_file, tmp_path):
    train(tiny(corpus_file, tmp_path / "run", steps=10), progress=False)
    from fasttrain.train import resolve_config

    cfg = resolve_config({"out_dir": str(tmp_path / "run"), "n_layer": "3", "steps": "20"},
                         None, resume=True)
    with pytest.raises(checkpoint.CheckpointError, match="n_layer=2"):
        train(cfg, resume=True, progress=False)


def test_temperature_and_lr_sweep_take_the_gpt(corpus_file, tmp_path):
    from fasttrain.dynamics.lrsweep import sweep
    from fasttrain.dynamics.temperature import distributions
    from fasttrain.sample import load_run, read_prompt

    train(tiny(corpus_file, tmp_path / "run", steps=20), progress=False)
    r = distributions(tmp_path / "run", "The ", [0.5, 1.0, 2.0])
    entropies = [d["entropy"] for d in r["temperatures"]]
    assert entropies == sorted(entropies) and r["vocab_size"] == 256
    _, model, tok = load_run(tmp_path / "run")
    _, logits = read_prompt(model, tok, "The ")
    assert_close(logits, model.logits(np.array([list(tok.encode("The "))]))[0, -1],
                 rtol=1e-5, atol=1e-5, what="the prompt's logits")
    results = sweep([1e-3, 3.0], 15, tiny(corpus_file, tmp_path / "sweep"), tmp_path / "sweep",
                    log=lambda msg: None)
    assert math.isfinite(results[0]["val_loss"]) and results[0]["losses"][-1] < math.log(256)
    assert results[1]["diverged_at"] is not None or results[1]["val_loss"] > results[0]["val_loss"]

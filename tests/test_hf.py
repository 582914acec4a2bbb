"""GPT-2 checkpoints in the Hugging Face layout (fasttrain.hf), against `transformers` itself: a
small random GPT2LMHeadModel saved with save_pretrained (no download) loads into fasttrain with
the same logits, loss, greedy continuation and fine-tuning step; a fasttrain run exports to a
folder transformers loads with the same logits, and that fasttrain reads back bit for bit; bad
folders are refused by name, with nothing written."""
import json
import shutil

import numpy as np
import pytest

from fasttrain import hf
from fasttrain.cli import main
from fasttrain.config import ConfigError, TrainConfig
from fasttrain.train import train
from conftest import STRICT, assert_close

SHAPE = dict(n_layer=2, n_head=2, n_embd=64, vocab_size=300, n_positions=64)


@pytest.fixture(scope="session")
def transformers(torch):
    if STRICT:
        import transformers

        return transformers
    return pytest.importorskip("transformers", reason="transformers is not installed "
                                                      "(it is in fasttrain[test])")


@pytest.fixture(scope="session")
def hf_folder(transformers, torch, corpus_file, tmp_path_factory):
    """A random GPT-2 of SHAPE saved by save_pretrained, with a byte-level BPE of 300 tokens
    (trained on the test corpus) as its tokenizer.json. Its biases and LayerNorm parameters are
    moved off 0 and 1 and its weights drawn at 0.2 (not 0.02), so their places are tested and
    the logits are far apart enough for a greedy continuation to be well defined."""
    from fasttrain.data import BPETokenizer

    folder = tmp_path_factory.mktemp("hf") / "gpt2-tiny"
    config = transformers.GPT2Config(**SHAPE, initializer_range=0.2, resid_pdrop=0.0,
                                     embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0,
                                     eos_token_id=0)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(folder)
    tok = BPETokenizer.train(corpus_file.read_text(), SHAPE["vocab_size"])
    assert tok.vocab_size == SHAPE["vocab_size"]
    tok.save(folder)
    return folder


def hf_model(transformers, folder):
    model = transformers.GPT2LMHeadModel.from_pretrained(folder)
    model.eval()
    return model


def batch(B=3, T=64, V=300, seed=2):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))


# ----------------------------------------------------------------------------------------------
# in

def test_logits_and_loss_equal_transformers(transformers, torch, hf_folder):
    ckpt = hf.open_folder(hf_folder)
    assert (ckpt.n_layer, ckpt.n_embd, ckpt.vocab_size, ckpt.eps) == (2, 64, 300, 1e-5)
    model = ckpt.model()
    ref = hf_model(transformers, hf_folder)
    x, y = batch()
    x[0, 3], y[1, 5] = 299, 0   # the vocabulary's ends
    with torch.no_grad():
        want = ref(torch.tensor(x)).logits
        want_loss = torch.nn.functional.cross_entropy(want.view(-1, 300), torch.tensor(y).view(-1))
    want = want.numpy()
    assert_close(model.logits(x), want, rtol=1e-5, atol=1e-5 * np.abs(want).max(), what="logits")
    assert model.loss(x, y) == pytest.approx(want_loss.item(), rel=1e-5)
    # a shorter block_size reads wpe's first rows
    short = ckpt.model(block_size=16)
    assert_close(short.logits(x[:, :16]), want[:, :16], rtol=1e-5,
                 atol=1e-5 * np.abs(want).max(), what="logits at block_size 16")


def test_bare_keys_buffers_and_float16_load(transformers, torch, hf_folder, tmp_path):
    """The released GPT-2's spelling: no "transformer." prefix, the causal-mask buffers
    h.L.attn.bias stored along; a float16 file is read as float32."""
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(hf_folder / hf.WEIGHTS))
    bare = {k.removeprefix(hf.PREFIX): v for k, v in tensors.items()}
    for l in range(2):
        bare[f"h.{l}.attn.bias"] = np.tril(np.ones((64, 64), np.float32))[None, None]
    folder = tmp_path / "bare"
    shutil.copytree(hf_folder, folder)
    save_file(bare, str(folder / hf.WEIGHTS), metadata={"format": "pt"})
    want = hf.open_folder(hf_folder).model().arena.params
    assert np.array_equal(hf.open_folder(folder).model().arena.params, want)
    save_file({k: v.astype(np.float16) for k, v in bare.items()}, str(folder / hf.WEIGHTS))
    half = hf.open_folder(folder).model().arena.params
    assert half.dtype == np.float32 and np.allclose(half, want, rtol=1e-3, atol=1e-3)


def test_greedy_sample_equals_generate(transformers, torch, hf_folder):
    from fasttrain.sample import generate

    ckpt = hf.open_folder(hf_folder)
    model, tok = ckpt.model(), ckpt.tokenizer()

    class Recorder:  # the tokenizer, keeping the ids generate() decodes
        vocab_size = tok.vocab_size
        encode = staticmethod(tok.encode)

        def decode(self, tokens):
            self.ids = [int(t) for t in tokens]
            return tok.decode(tokens)

    rec = Recorder()
    prompt = "The expression "
    text = generate(model, rec, prompt, 20, temperature=0)
    ids = torch.tensor(tok.encode(prompt).astype(np.int64)[None])
    with torch.no_grad():
        out = hf_model(transformers, hf_folder).generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=20, do_sample=False,
            pad_token_id=0)
    assert rec.ids == out[0, ids.shape[1]:].tolist()
    assert text == prompt + tok.decode(rec.ids)


def test_one_fine_tuning_step_equals_pytorch(transformers, torch, hf_folder):
    """fasttrain's AdamW step (clipped) from the checkpoint, against the same step of
    torch.optim.AdamW on transformers' model: every gradient within 1e-5 of its tensor's
    largest, every parameter within 1e-5.

    Where a gradient is within its rounding of 0, Adam's first step lr * g / (|g| + eps) is
    anything in [-lr, lr] in either implementation (here one of 12288 elements of a c_attn
    weight, |g| 3.6e-7 of 0.048, moves 1.6e-5 apart): those elements, |g| < 1e-4 of the
    tensor's largest, are held to the step's bound instead."""
    from fasttrain.optim import AdamW
    from fasttrain.train import train_step

    model = hf.open_folder(hf_folder).model()
    ref = hf_model(transformers, hf_folder)
    lr, clip = 1e-3, 0.5
    opt = AdamW(model.arena, lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    params = list(ref.parameters())  # lm_head.weight is wte.weight: listed once
    ref_opt = torch.optim.AdamW(
        [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
         {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
        lr=lr, betas=(0.9, 0.95))
    x, y = batch(B=4, seed=5)
    loss, norm = train_step(model, opt, [(x, y)], lr, clip)
    logits = ref(torch.tensor(x)).logits
    ref_loss = torch.nn.functional.cross_entropy(logits.view(-1, 300), torch.tensor(y).view(-1))
    ref_loss.backward()
    ref_norm = torch.nn.utils.clip_grad_norm_(ref.parameters(), clip).item()
    ref_opt.step()
    assert loss == pytest.approx(ref_loss.item(), rel=1e-5)
    assert norm == pytest.approx(ref_norm, rel=1e-4) and norm > clip  # clipping engaged
    state, scale = ref.state_dict(), min(1.0, clip / norm)
    tested = 0
    for key, got in hf.hf_tensors(model).items():
        name = key.removeprefix(hf.PREFIX)
        grad = model.arena.grad(name) * scale
        grad = grad.T if name.endswith(hf.CONV1D) else grad
        want_grad = ref.get_parameter(key).grad.numpy()
        top = np.abs(want_grad).max()
        assert_close(grad, want_grad, rtol=1e-5, atol=1e-5 * top, what=f"{key} gradient")
        want = state[key].detach().numpy()
        sure = np.abs(want_grad) >= 1e-4 * top
        assert_close(got[sure], want[sure], rtol=1e-5, atol=1e-5 * np.abs(want).max(), what=key)
        assert np.abs(got - want).max() <= 2 * lr, key
        tested += np.count_nonzero(sure)
    assert tested > 0.99 * model.num_params  # (here 99.76%)


def test_eval_of_a_folder_equals_transformers(transformers, torch, hf_folder, tmp_path, capsys):
    from fasttrain.data import IGNORE_INDEX, all_windows, builtin_corpus

    text = tmp_path / "text.txt"
    text.write_text(builtin_corpus()[100_000:103_000])
    r = hf.evaluate_folder(hf_folder, str(text))
    assert r["window"] == 64
    tokens = hf.open_folder(hf_folder).tokenizer().encode(text.read_text())
    assert r["tokens"] == len(tokens) > 200
    ref, total, count = hf_model(transformers, hf_folder), 0.0, 0
    for x, y in all_windows(tokens, 64, 4, sequence=True):
        with torch.no_grad():
            logits = ref(torch.tensor(x)).logits
        total += torch.nn.functional.cross_entropy(
            logits.view(-1, 300), torch.tensor(y).view(-1), ignore_index=IGNORE_INDEX,
            reduction="sum").item()
        count += int(np.count_nonzero(y != IGNORE_INDEX))
    assert count == len(tokens) - 1
    assert r["loss"] == pytest.approx(total / count, rel=1e-5)
    assert main(["eval", "--init_from", str(hf_folder), "--data", str(text)]) == 0
    assert f"loss {r['loss']:.4f}" in capsys.readouterr().out


@pytest.fixture(scope="module")
def text_file(corpus_file, tmp_path_factory):
    """The fine-tuning runs' data: the test corpus's first 20 kB (~7k tokens of the BPE)."""
    path = tmp_path_factory.mktemp("text") / "text.txt"
    path.write_text(corpus_file.read_text()[:20_000])
    return path


def tiny(data, out_dir, **kw):
    """test_gpt's tiny GPT run, shorter and at a fine-tuning learning rate."""
    from test_gpt import tiny as gpt_run

    short = dict(steps=6, warmup=2, lr=1e-3, min_lr=1e-4, eval_interval=3,
                 checkpoint_interval=3, log_interval=3, sample_tokens=10)
    return gpt_run(data, out_dir, **{**short, **kw})


def test_fine_tuning_run_starts_from_the_checkpoint(transformers, torch, hf_folder, text_file,
                                                    tmp_path):
    from tokenizers import Tokenizer

    from fasttrain.data import Corpus
    from fasttrain.sample import evaluate, generate, load_run

    run = tmp_path / "run"
    cfg = tiny(text_file, run, init_from=str(hf_folder), block_size=32)
    train(cfg, progress=False)
    saved = json.loads((run / "config.json").read_text())
    assert (saved["n_embd"], saved["n_layer"], saved["tokenizer"]) == (64, 2, "hf")
    corpus = Corpus.open(run)
    tok = hf.open_folder(hf_folder).tokenizer()
    text = text_file.read_text()
    assert np.array_equal(np.concatenate([corpus.train, corpus.val]), tok.encode(text))
    whole = Tokenizer.from_file(str(hf_folder / hf.TOKENIZER)).encode(text).ids
    assert tok.encode(text).tolist() == whole  # as transformers' tokenizer encodes the text
    # the first evaluation (step 0) is the checkpoint's own loss on the validation split
    records = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    first = next(r for r in records if r["split"] == "val")
    start = evaluate(hf.open_folder(hf_folder).model(32), corpus.val, 32, 8)
    assert first["step"] == 0 and first["loss"] == pytest.approx(start, rel=1e-6)
    _, model, run_tok = load_run(run)
    assert generate(model, run_tok, "The ", 10, temperature=0).startswith("The ")
    # out again: the fine-tuned model, with GPT-2's tokenizer, into transformers
    out = tmp_path / "out"
    assert main(["export", "--run", str(run), "--hf", str(out)]) == 0
    ref = hf_model(transformers, out)
    x, _ = batch(T=32)
    want = ref(torch.tensor(x)).logits.detach().numpy()
    assert_close(model.logits(x), want, rtol=1e-5, atol=1e-5 * np.abs(want).max(), what="logits")
    assert hf.open_folder(out).tokenizer().encode(text).tolist() == tok.encode(text).tolist()


def test_lr_sweep_starts_every_rate_from_the_checkpoint(hf_folder, text_file, tmp_path):
    from fasttrain.data import Batches, Corpus
    from fasttrain.dynamics.lrsweep import sweep

    cfg = tiny(text_file, tmp_path / "cfg", init_from=str(hf_folder), block_size=32)
    results = sweep([1e-4, 1e-2], 2, cfg, tmp_path / "sweep", log=lambda *a: None)
    # step 1's loss is taken before any update: the checkpoint's own loss on the first batch
    corpus = Corpus.open(tmp_path / "sweep")
    model = hf.open_folder(hf_folder).model(32)
    x, y = Batches(corpus.train, 32, cfg.batch_size, seed=cfg.seed + 1, sequence=True).next()
    want = model.loss(x, y)
    assert [r["losses"][0] for r in results] == [pytest.approx(want, rel=1e-6)] * 2


def test_resume_needs_no_folder_and_a_used_out_dir_must_match(hf_folder, text_file,
                                                              tmp_path):
    """A fine-tuning run resumes from its own checkpoint (the folder may be gone); a new run
    into an out_dir whose corpus another tokenizer encoded is refused, before it writes."""
    from fasttrain.train import resolve_config

    folder, run = tmp_path / "gpt2", tmp_path / "run"
    shutil.copytree(hf_folder, folder)
    train(tiny(text_file, run, init_from=str(folder), steps=3, block_size=32), progress=False)
    train(tiny(text_file, run, init_from=str(folder), steps=3, block_size=32),
          progress=False)  # again, from the folder: the corpus (same tokenizer) is reused
    shutil.rmtree(folder)
    cfg = resolve_config({"out_dir": str(run), "steps": "6"}, None, resume=True)
    assert train(cfg, resume=True, progress=False)["step"] == 6
    bytes_run = tmp_path / "bytes"
    train(tiny(text_file, bytes_run, steps=1), progress=False)
    before = sorted(p.name for p in bytes_run.iterdir())
    with pytest.raises(hf.HFError, match="tokenised with another tokenizer"):
        train(tiny(text_file, bytes_run, init_from=str(hf_folder), steps=1, block_size=32),
              progress=False)
    assert sorted(p.name for p in bytes_run.iterdir()) == before


def test_round_trip_of_a_fasttrain_run(transformers, torch, text_file, tmp_path):
    """A GPT trained from random weights with the byte tokenizer: exported, transformers gives
    the same logits and its tokenizer the same ids; read back, the same bits."""
    from fasttrain.sample import load_run

    run, out = tmp_path / "run", tmp_path / "exported"
    train(tiny(text_file, run, layer_norm_epsilon=1e-6), progress=False)
    _, model, _ = load_run(run)
    assert main(["export", "--run", str(run), "--hf", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    ref = hf_model(transformers, out)
    assert ref.config.layer_norm_epsilon == 1e-6 and ref.config.n_positions == 16
    x, _ = batch(T=16, V=256)
    want = ref(torch.tensor(x)).logits.detach().numpy()
    assert_close(model.logits(x), want, rtol=1e-5, atol=1e-5 * np.abs(want).max(), what="logits")
    back = hf.open_folder(out).model()
    assert back.eps == 1e-6 and np.array_equal(back.arena.params, model.arena.params)
    text = "Byte by byte: é, ∑, \n\t and 🙂."
    auto = transformers.AutoTokenizer.from_pretrained(out)
    assert auto(text)["input_ids"] == list(text.encode("utf-8"))
    assert auto.decode(list(text.encode("utf-8"))) == text
    # the folder exists now: a second export refuses it and leaves it as it was
    before = (out / hf.WEIGHTS).read_bytes()
    with pytest.raises(hf.HFError, match="not an empty folder"):
        hf.export_run(run, out)
    assert (out / hf.WEIGHTS).read_bytes() == before


def test_an_mlp_run_does_not_export(text_file, tmp_path):
    run = tmp_path / "mlp"
    train(TrainConfig(data=str(text_file), context=4, n_embd=8, hidden=16, batch_size=16,
                      steps=2, eval_interval=2, sample_tokens=0, out_dir=str(run)),
          progress=False)
    assert main(["export", "--run", str(run), "--hf", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# ----------------------------------------------------------------------------------------------
# bad folders: each a clear error, nothing written

def _config_field(key, value):
    def change(folder):
        config = json.loads((folder / hf.CONFIG).read_text())
        config[key] = value
        (folder / hf.CONFIG).write_text(json.dumps(config))
    return change


def _tensors(edit):
    def change(folder):
        from safetensors.numpy import load_file, save_file

        tensors = load_file(str(folder / hf.WEIGHTS))
        edit(tensors)
        save_file(tensors, str(folder / hf.WEIGHTS))
    return change


def _truncate(folder):
    data = (folder / hf.WEIGHTS).read_bytes()
    (folder / hf.WEIGHTS).write_bytes(data[:-1000])


def _set(tensors, key, value):
    tensors[key] = value


BAD = {
    "no config": (lambda f: (f / hf.CONFIG).unlink(), r"config\.json: no such file"),
    "no weights": (lambda f: (f / hf.WEIGHTS).unlink(), r"model\.safetensors: no such file"),
    "no tokenizer": (lambda f: (f / hf.TOKENIZER).unlink(), r"tokenizer\.json: no such file"),
    "relu": (_config_field("activation_function", "relu"), r"activation_function is 'relu'"),
    "exact gelu": (_config_field("activation_function", "gelu"), r"activation_function is 'gelu'"),
    "untied": (_config_field("tie_word_embeddings", False), "tie_word_embeddings"),
    "bert": (_config_field("model_type", "bert"), "model_type"),
    "n_inner": (_config_field("n_inner", 100), "n_inner"),
    "vocab": (_config_field("vocab_size", 301), "wte.weight has shape"),
    "wrong shape": (_tensors(lambda t: _set(t, "transformer.h.1.mlp.c_fc.weight",
                                            np.zeros((256, 64), np.float32))),
                    r"transformer\.h\.1\.mlp\.c_fc\.weight has shape \(256, 64\).*\(64, 256\)"),
    "missing tensor": (_tensors(lambda t: t.pop("transformer.ln_f.bias")), "no tensor ln_f.bias"),
    "stray tensor": (_tensors(lambda t: _set(t, "transformer.h.2.ln_1.weight",
                                             np.ones(64, np.float32))), "h.2.ln_1.weight"),
    "truncated": (_truncate, "corrupt or truncated"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_folder_is_refused_by_name_with_nothing_written(hf_folder, text_file, tmp_path,
                                                              case):
    from fasttrain.checkpoint import CheckpointError

    change, message = BAD[case]
    folder = tmp_path / "bad"
    shutil.copytree(hf_folder, folder)
    change(folder)
    run = tmp_path / "run"
    with pytest.raises(CheckpointError, match=message):
        train(tiny(text_file, run, init_from=str(folder)), progress=False)
    assert not run.exists()
    with pytest.raises(CheckpointError, match=message):
        hf.evaluate_folder(folder, str(text_file))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad"]


def test_init_from_settings_that_cannot_work(hf_folder, text_file, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"block_size \(128\) is more than the n_positions"):
        train(tiny(text_file, run, init_from=str(hf_folder), block_size=128), progress=False)
    with pytest.raises(ConfigError, match="model = 'gpt'"):
        train(tiny(text_file, run, init_from=str(hf_folder), model="mlp"), progress=False)
    with pytest.raises(ConfigError, match="set init_from"):
        tiny(text_file, run, tokenizer="hf").validate()
    assert not run.exists()
    assert main(["eval", "--init_from", str(hf_folder)]) == 2        # no --data
    assert main(["eval", "--init_from", str(tmp_path / "none"), "--data",
                 str(text_file)]) == 2                              # no folder

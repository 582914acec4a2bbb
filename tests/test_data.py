"""Corpora, tokenizers, the split and batches."""
import functools
import json

import numpy as np
import pytest

import fasttrain.data
from fasttrain.data import (BUILTIN, STDLIB, Batches, ByteTokenizer, Corpus, DataError, all_windows,
                            builtin_corpus, load_text, split_by_file, stdlib_corpus, stdlib_files)


def test_builtin_corpus_is_the_python_reference():
    text = builtin_corpus()
    assert len(text) > 400_000
    assert "assert" in text and "statement" in text
    assert load_text(BUILTIN) == text


def test_stdlib_corpus_is_the_library_split_by_file():
    root, files = stdlib_files()
    assert sum(map(len, files.values())) > 5_000_000 and len(files) > 300
    assert list(files) == sorted(files)
    assert "os.py" in files and "json/decoder.py" in files
    for rel in files:  # no tests, no installed packages, no generated tables
        skipped = {"test", "tests", "idle_test", "site-packages", "pydoc_data"}
        assert not skipped & set(rel.split("/")), rel
    assert "encodings/cp1252.py" not in files and "encodings/utf_8.py" in files

    train, val, info = stdlib_corpus(0.1)
    assert (train, val, info) == stdlib_corpus(0.1)  # deterministic
    assert info["train_files"] + info["val_files"] == len(files) and info["val_files"] > 10
    assert 0.1 <= len(val.encode()) / (len(train.encode()) + len(val.encode())) < 0.13
    assert load_text(STDLIB) == "\n\n".join(b.decode() for b in files.values())


def test_split_by_file_holds_whole_files_out():
    rng = np.random.default_rng(0)
    sizes = {f"pkg{i % 7}/m{i}.py": int(s) for i, s in enumerate(rng.lognormal(8, 1.5, 500))}
    train, val = split_by_file(sizes, 0.2)
    assert train == sorted(train) and val == sorted(val)
    assert not set(train) & set(val) and set(train) | set(val) == set(sizes)
    val_bytes, total = sum(sizes[r] for r in val), sum(sizes.values())
    assert 0.2 * total <= val_bytes < 0.2 * total + max(sizes.values())  # filled to the share
    assert len({r.split("/")[0] for r in val}) == 7   # a spread, not one package
    # a file's place depends on its path, not on the order the sizes come in
    assert split_by_file(dict(reversed(sizes.items())), 0.2) == (train, val)


def test_stdlib_exclusions(tmp_path):
    files = {"a.py": b"import os\n", "pkg/b.py": "s = '\u00e9'\n".encode(),
             "notes.txt": b"not python", "bad.py": b"x = '\xff'\n",
             "encodings/cp0.py": b'""" Codec cp0 generated from X with gencodec.py.\n"""',
             "test/test_a.py": b"", "lib2to3/tests/t.py": b"", "idlelib/idle_test/t.py": b"",
             "site-packages/pkg/m.py": b"", "pydoc_data/topics.py": b""}
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    root, got = stdlib_files(tmp_path)
    assert root == tmp_path and list(got) == ["a.py", "pkg/b.py"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no Python files"):
        stdlib_files(tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        stdlib_files(tmp_path / "missing")


def test_files_and_folders(tmp_path):
    (tmp_path / "b.txt").write_text("second")
    (tmp_path / "a.txt").write_text("first")
    assert load_text(str(tmp_path / "a.txt")) == "first"
    assert load_text(str(tmp_path)) == "first\n\nsecond"  # sorted, joined


@pytest.mark.parametrize("kind,message", [("missing", "no such file"), ("empty", "empty"),
                                          ("empty-folder", "holds no files")])
def test_unusable_corpora(tmp_path, kind, message):
    path = tmp_path / "x"
    if kind == "empty":
        path.write_text("")
    elif kind == "empty-folder":
        path.mkdir()
    with pytest.raises(DataError, match=message):
        load_text(str(path))


def test_byte_tokenizer_round_trip():
    tok = ByteTokenizer()
    text = "héllo, wörld ✓"
    ids = tok.encode(text)
    assert ids.dtype == np.uint8 and tok.vocab_size == 256
    assert tok.decode(ids) == text


def test_bpe_tokenizer_round_trip(tmp_path):
    pytest.importorskip("tokenizers", reason="the bpe extra (tokenizers) is not installed")
    from fasttrain.data import BPETokenizer

    text = builtin_corpus()[:50_000]
    tok = BPETokenizer.train(text, 400)
    ids = tok.encode(text[:1000])
    assert ids.dtype == np.uint16 and len(ids) < 1000  # merges make it shorter than bytes
    assert tok.decode(ids) == text[:1000]
    tok.save(tmp_path)
    assert BPETokenizer.load(tmp_path).decode(ids) == text[:1000]


def test_bpe_encodes_in_pieces_as_it_would_whole():
    """encode cuts the text before line breaks that precede a non-space: the same ids as the
    tokenizers package gives for the whole text, also where whitespace runs meet the cuts."""
    pytest.importorskip("tokenizers", reason="the bpe extra (tokenizers) is not installed")
    from fasttrain.data import BPETokenizer

    code = stdlib_files()[1]["textwrap.py"].decode()
    # lines with trailing blanks, so merges such as "  " + "\n" exist and wrong cuts show
    tok = BPETokenizer.train(code + builtin_corpus()[:20_000] + "x = 1  \n\t\r\n" * 300, 600)
    rng = np.random.default_rng(0)
    alphabet = list("\n\n  \t\rab1'sé.:") + ["'ll", "\r\n", "  \n", "\n\n", "def "]
    texts = [code, builtin_corpus()[:30_000], ""]
    texts += ["".join(rng.choice(alphabet, rng.integers(1, 40))) for _ in range(500)]
    for text in texts:
        whole = tok._tok.encode(text, add_special_tokens=False).ids
        assert tok.encode(text).tolist() == whole, repr(text[:80])


def test_prepare_splits_and_reopens(tmp_path):
    src = tmp_path / "corpus.txt"
    src.write_text("abcdefghij" * 100)
    corpus = Corpus.prepare(tmp_path / "run", str(src), "bytes", 0, 0.1, context=8)
    assert len(corpus.train) == 900 and len(corpus.val) == 100
    assert bytes(corpus.train[:3]) == b"abc"
    src.write_text("changed")  # a resumed run keeps its tokens, whatever the source became
    again = Corpus.prepare(tmp_path / "run", str(src), "bytes", 0, 0.1, context=8)
    assert np.array_equal(again.train, corpus.train)


def test_prepare_stdlib_splits_by_file(tmp_path):
    corpus = Corpus.prepare(tmp_path / "run", STDLIB, "bytes", 0, 0.1, context=8)
    train, val, info = stdlib_corpus(0.1)
    assert bytes(corpus.train) == train.encode() and bytes(corpus.val) == val.encode()
    meta = json.loads((tmp_path / "run" / "data.json").read_text())
    assert meta["source"] == STDLIB and meta["train_tokens"] == len(corpus.train)
    assert meta["train_files"] == info["train_files"] and meta["val_files"] == info["val_files"]


def test_stdlib_bpe_is_trained_on_the_train_files(tmp_path, monkeypatch):
    """The tokenizer never saw the validation files: a word only they hold is not one token."""
    pytest.importorskip("tokenizers", reason="the bpe extra (tokenizers) is not installed")
    root = tmp_path / "lib"
    root.mkdir()
    for i in range(40):
        code = f"def function_{i}(value):\n    return value + {i}\n"
        (root / f"m{i:02d}.py").write_text(code * 20)
    sizes = {p.name: p.stat().st_size for p in root.iterdir()}
    _, val = split_by_file(sizes, 0.1)
    word = "zyxwvutsrq"
    (root / val[0]).write_text((root / val[0]).read_text() + f"{word} = 1\n" * 200)
    monkeypatch.setattr(fasttrain.data, "stdlib_corpus",
                        functools.partial(stdlib_corpus, root=root))
    corpus = Corpus.prepare(tmp_path / "run", STDLIB, "bpe", 400, 0.1, context=8)
    assert len(corpus.tokenizer.encode(word)) > 3              # unseen: spelled in pieces
    assert len(corpus.tokenizer.encode(" function")) == 1      # seen 720 times: one token
    assert corpus.tokenizer.decode(corpus.val) == stdlib_corpus(0.1, root)[1]


@pytest.mark.parametrize("text", ["x", "0123456789"])
def test_corpus_shorter_than_the_context_is_refused(tmp_path, text):
    src = tmp_path / "tiny.txt"
    src.write_text(text)
    (tmp_path / "run").mkdir()
    with pytest.raises(DataError, match="fewer than context"):
        Corpus.prepare(tmp_path / "run", str(src), "bytes", 0, 0.1, context=8)


def test_batches_are_windows_and_resume_exactly():
    tokens = np.arange(1000, dtype=np.uint16)
    b = Batches(tokens, context=4, batch_size=16, seed=1)
    x, y = b.next()
    assert x.shape == (16, 4) and y.shape == (16,)
    assert np.array_equal(x[:, 1:] - x[:, :-1], np.ones((16, 3)))  # consecutive tokens
    assert np.array_equal(y, x[:, -1] + 1)                          # the next one
    state = b.state()
    expected = [b.next()[0].copy() for _ in range(3)]
    b2 = Batches(tokens, context=4, batch_size=16, seed=999)
    b2.set_state(state)
    assert all(np.array_equal(b2.next()[0], e) for e in expected)


def test_all_windows_cover_the_split_once():
    tokens = np.arange(50, dtype=np.uint8)
    ys = np.concatenate([y for _, y in all_windows(tokens, context=5, batch_size=7)])
    assert np.array_equal(ys, np.arange(5, 50))

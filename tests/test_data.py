"""Corpora, tokenizers, the split and batches."""
import numpy as np
import pytest

from fasttrain.data import (BUILTIN, Batches, ByteTokenizer, Corpus, DataError, all_windows,
                            builtin_corpus, load_text)


def test_builtin_corpus_is_the_python_reference():
    text = builtin_corpus()
    assert len(text) > 400_000
    assert "assert" in text and "statement" in text
    assert load_text(BUILTIN) == text


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


def test_prepare_splits_and_reopens(tmp_path):
    src = tmp_path / "corpus.txt"
    src.write_text("abcdefghij" * 100)
    corpus = Corpus.prepare(tmp_path / "run", str(src), "bytes", 0, 0.1, context=8)
    assert len(corpus.train) == 900 and len(corpus.val) == 100
    assert bytes(corpus.train[:3]) == b"abc"
    src.write_text("changed")  # a resumed run keeps its tokens, whatever the source became
    again = Corpus.prepare(tmp_path / "run", str(src), "bytes", 0, 0.1, context=8)
    assert np.array_equal(again.train, corpus.train)


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

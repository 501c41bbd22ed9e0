"""Windows in an index: written by build, kept by update, read and used by the searcher."""

import json

import numpy as np
import pytest

from indexer.build import build_index
from indexer.errors import IndexCorrupt
from indexer.store import WINDOW_OWNERS, WINDOWS, current_generation, open_index
from indexer.update import update_index
from search import Searcher
from tests.conftest import TOY, write_jsonl
from tests.fakes import FakeEncoder


class WordTokenizer:
    """One token per whitespace word; ids given in order of first sight, so decoding is
    exact and the same in every process (Python's str hash is salted per process, and its
    collisions made windows, and so search results, differ from run to run)."""

    def __init__(self):
        self.ids: dict[str, int] = {}
        self.words: list[str] = []

    def __call__(self, texts, add_special_tokens, truncation):
        out = []
        for t in texts:
            row = []
            for w in t.split():
                if w not in self.ids:
                    self.ids[w] = len(self.words)
                    self.words.append(w)
                row.append(self.ids[w])
            out.append(row)
        return {"input_ids": out}

    def decode(self, ids):
        return " ".join(self.words[i] for i in ids)


class WindowingEncoder(FakeEncoder):
    """The fake encoder with a word tokenizer, so builds cut windows (a 4-word window)."""

    def __init__(self):
        super().__init__()
        self.tokenizer = WordTokenizer()


@pytest.fixture
def small_windows(monkeypatch):
    from indexer import windows

    monkeypatch.setattr(windows, "WINDOW", 8)   # 6 content tokens
    monkeypatch.setattr(windows, "STRIDE", 4)
    real_split = windows.split
    monkeypatch.setattr(windows, "split", lambda tok, texts, window=8, stride=4:
                        real_split(tok, texts, window, stride))


def test_build_writes_windows_and_search_uses_them(tmp_path, toy_file, small_windows):
    enc = WindowingEncoder()
    build_index([toy_file], tmp_path / "ix", enc)
    handle = open_index(tmp_path / "ix")
    assert handle.windows is not None and handle.manifest["windows"]["count"] == len(handle.windows)
    owners = np.repeat(np.arange(handle.count), np.diff(handle.window_ptr))
    assert set(owners.tolist()) == set(range(len(TOY)))  # every toy text is longer than 6 words
    s = Searcher(tmp_path / "ix", enc)
    hits = s.search("one step image generator", k=2, mode="dense")
    assert hits[0].id == "2401.00002"
    row = handle.papers.row_of("2401.00002")
    whole = float(np.asarray(handle.vectors[row]) @ enc.encode(["one step image generator"])[0])
    from indexer import windows

    best = windows.best_window(handle.windows, handle.window_ptr, np.array([row]),
                               enc.encode(["one step image generator"])[0])[0]
    assert hits[0].score == pytest.approx(0.3 * whole + 0.7 * max(whole, best), abs=1e-5)
    assert best > whole  # the window holding the words scores above the whole text


def test_build_without_windows_and_with_a_plain_encoder(tmp_path, toy_file, fake_encoder):
    build_index([toy_file], tmp_path / "a", fake_encoder)  # no tokenizer: no windows
    assert open_index(tmp_path / "a").windows is None
    build_index([toy_file], tmp_path / "b", WindowingEncoder(), with_windows=False)
    assert open_index(tmp_path / "b").manifest["windows"] is None


def test_update_keeps_windows_of_unchanged_papers_and_adds_new_ones(tmp_path, toy_file,
                                                                     small_windows):
    enc = WindowingEncoder()
    build_index([toy_file], tmp_path / "ix", enc)
    before = open_index(tmp_path / "ix")
    old_ptr = before.window_ptr.copy()
    old_first = np.asarray(before.windows[old_ptr[0]:old_ptr[1]]).copy()
    new = write_jsonl(tmp_path / "new.jsonl", [
        {"id": "2401.00009", "title": "Sparse attention for very long documents",
         "abstract": "We make attention sparse so transformers read whole books at once."},
        {**TOY[1], "abstract": "A changed abstract about distilling diffusion into one step."}])
    report = update_index([new], tmp_path / "ix", enc)
    assert report.added == 1 and report.changed == 1
    after = open_index(tmp_path / "ix")
    assert after.count == 6 and after.windows is not None
    assert np.all(np.diff(after.window_ptr) > 0)  # every paper has its windows
    np.testing.assert_array_equal(np.asarray(after.windows[after.window_ptr[0]:after.window_ptr[1]]),
                                  old_first)  # unchanged paper: same windows


def test_windows_that_do_not_fit_are_refused(tmp_path, toy_file, small_windows):
    build_index([toy_file], tmp_path / "ix", WindowingEncoder())
    gen = current_generation(tmp_path / "ix")
    manifest = json.loads((gen / "manifest.json").read_text())
    owners = np.load(gen / WINDOW_OWNERS)
    np.save(gen / WINDOW_OWNERS, owners[::-1].copy())  # same size, no longer ascending
    with pytest.raises(IndexCorrupt, match="windows"):
        open_index(tmp_path / "ix")
    (gen / WINDOWS).unlink()
    with pytest.raises(IndexCorrupt, match="missing"):
        open_index(tmp_path / "ix")
    assert (manifest["windows"]["tokens"], manifest["windows"]["stride"]) == (8, 4)  # as cut


def test_update_that_only_refreshes_metadata_keeps_windows(tmp_path, toy_file, small_windows):
    enc = WindowingEncoder()
    build_index([toy_file], tmp_path / "ix", enc)
    before = open_index(tmp_path / "ix")
    n_windows = len(before.windows)
    refreshed = write_jsonl(tmp_path / "r.jsonl", [{**TOY[0], "upvotes": 99}])
    report = update_index([refreshed], tmp_path / "ix", enc)
    assert report.refreshed == 1 and report.encoded == 0
    after = open_index(tmp_path / "ix")
    assert len(after.windows) == n_windows and after.papers.papers([0])[0].upvotes == 99


def test_windows_are_stored_in_float16_even_for_float32_vectors(tmp_path, toy_file, small_windows):
    build_index([toy_file], tmp_path / "ix", WindowingEncoder())
    handle = open_index(tmp_path / "ix")
    assert handle.windows.dtype == np.float16 and handle.vectors.dtype == np.float32

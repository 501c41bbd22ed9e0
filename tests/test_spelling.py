"""Spelling correction from an index's own vocabulary."""

import pytest

from indexer import lexical
from search.spelling import Speller, correct, max_edits

VOCAB = {"gaussian": 40, "splatting": 30, "splitting": 5, "diffusion": 90, "distillation": 12,
         "model": 300, "models": 250, "transformer": 80, "transformers": 60, "attention": 70,
         "retrieval": 44, "augmented": 20, "generation": 66, "one": 200, "step": 50}


@pytest.mark.parametrize(("typed", "fixed"), [
    ("gausian spaltting", "gaussian splatting"),      # deletion and transposition
    ("difusion distilation", "diffusion distillation"),
    ("retreival augmented generation", "retrieval augmented generation"),
    ("Transfromer attention", "Transformer attention"),  # the typed capital stays
])
def test_corrects_unknown_words(typed, fixed):
    assert correct(typed, VOCAB) == fixed


def test_known_words_and_short_words_are_kept():
    assert correct("gaussian splatting", VOCAB) is None
    assert correct("one step model", VOCAB) is None
    assert correct("xyz abc", VOCAB) is None  # three letters: never corrected
    assert max_edits("abcd") == 1 and max_edits("abcdef") == 2 and max_edits("abc") == 0


def test_real_words_are_not_turned_into_other_words_with_another_first_letter():
    vocab = {"under": 500, "machine": 300, "become": 200, "models": 100}
    assert correct("murder", vocab) is None      # not "under"
    assert correct("vaccine", vocab) is None     # not "machine"
    assert correct("genome", vocab) is None      # not "become"


def test_a_vocabulary_of_the_wrong_shape_is_refused(tmp_path):
    from indexer.lexical import WORDS_FILE, load

    r = lexical.build(["graph networks", "graph models"], ["message passing", "more graphs"])
    lexical.save(r, tmp_path)
    assert load(tmp_path).words["graph"] == 2
    for bad in ('{"attention": "x"}', '["a", "b"]', '{"a": 1.5}'):
        (tmp_path / WORDS_FILE).write_text(bad)
        with pytest.raises(ValueError, match="document frequency"):
            load(tmp_path)


def test_far_words_are_not_replaced():
    assert correct("quantum chromodynamics", VOCAB) is None


def test_ties_go_to_the_more_frequent_word():
    assert Speller(VOCAB).closest("splbtting") == "splatting"  # 1 edit from both; df 30 > 5


def test_words_known_in_another_form_are_kept():
    assert correct("splats", VOCAB, known=lambda w: w == "splats") is None


def test_empty_vocabulary_means_no_suggestion():
    assert correct("gausian", {}) is None


def test_surface_words_count_documents_not_occurrences():
    words = lexical.surface_words(["Gaussian gaussian splatting", "Gaussian fields", "ab cd"],
                                  min_df=1)
    assert words["gaussian"] == 2 and words["splatting"] == 1 and "ab" not in words
    assert lexical.surface_words(["Gaussian once", "gaussian twice"], min_df=2) == {"gaussian": 2}
    assert list(lexical.surface_words(["b\u00e4r aaa aaa", "aaa ccc"], limit=1)) == ["aaa"]

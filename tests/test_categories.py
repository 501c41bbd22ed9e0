"""arXiv category names: golden values, any case, None for what is not a category."""

import pytest

from indexer.categories import CATEGORIES, category_name


@pytest.mark.parametrize(("code", "name"), [
    ("cs.CL", "Computation and Language"),
    ("cs.LG", "Machine Learning"),
    ("stat.ML", "Machine Learning"),
    ("cs.CV", "Computer Vision and Pattern Recognition"),
    ("math.AP", "Analysis of PDEs"),
    ("math.ST", "Statistics Theory"),
    ("astro-ph.CO", "Cosmology and Nongalactic Astrophysics"),
    ("cond-mat.stat-mech", "Statistical Mechanics"),
    ("physics.data-an", "Data Analysis, Statistics and Probability"),
    ("q-bio.NC", "Neurons and Cognition"),
    ("q-fin.TR", "Trading and Market Microstructure"),
    ("eess.IV", "Image and Video Processing"),
    ("econ.EM", "Econometrics"),
    ("hep-th", "High Energy Physics - Theory"),
    ("nucl-ex", "Nuclear Experiment"),
    ("gr-qc", "General Relativity and Quantum Cosmology"),
    ("quant-ph", "Quantum Physics"),
    ("nlin.SI", "Exactly Solvable and Integrable Systems"),
    ("astro-ph", "Astrophysics"),  # the archive itself, on papers before 2009
])
def test_official_names(code, name):
    assert category_name(code) == name


def test_any_case_and_surrounding_space():
    assert category_name("CS.cl") == category_name(" cs.CL ") == "Computation and Language"
    assert category_name("COND-MAT.STR-EL") == "Strongly Correlated Electrons"


@pytest.mark.parametrize("code", ["", "cs", "cs.XX", "68T50", "I.2.7", "na", "cs.AI, cs.LG",
                                  "physics", None, 3])
def test_not_a_category(code):
    assert category_name(code) is None


def test_every_archive_is_covered():
    archives = {code.split(".")[0] for code in CATEGORIES}
    assert {"cs", "math", "physics", "astro-ph", "cond-mat", "nlin", "q-bio", "q-fin", "stat",
            "eess", "econ", "hep-ex", "hep-lat", "hep-ph", "hep-th", "nucl-ex", "nucl-th",
            "gr-qc", "quant-ph", "math-ph"} <= archives
    assert sum(code.startswith("cs.") for code in CATEGORIES) == 40
    assert len({code.casefold() for code in CATEGORIES}) == len(CATEGORIES)

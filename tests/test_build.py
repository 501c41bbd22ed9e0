import io
import re
import time

import pytest

from indexer.build import build_index, collect_papers
from indexer.errors import BadRecord, IndexNotFound, PapersiftError
from indexer.store import open_index, read_manifest
from tests.conftest import TOY, write_jsonl
from tests.fakes import FakeEncoder


def test_build_writes_every_paper(toy_index):
    handle = open_index(toy_index)
    assert handle.count == len(TOY)
    assert handle.vectors.shape == (len(TOY), 64)
    assert handle.papers.row_of("2401.00003") == 2


def test_duplicate_ids_later_record_wins(tmp_path, fake_encoder):
    a = write_jsonl(tmp_path / "a.jsonl", [
        {"id": "2401.00001v1", "title": "old title"},
        {"id": "2401.00002", "title": "other"},
    ])
    b = write_jsonl(tmp_path / "b.jsonl", [{"id": "arXiv:2401.00001v2", "title": "new title"}])
    papers, problems, duplicates = collect_papers([a, b])
    assert [(p.id, p.title) for p in papers] == [("2401.00001", "new title"), ("2401.00002", "other")]
    assert duplicates == 1 and problems == []
    report = build_index([a, b], tmp_path / "ix", fake_encoder)
    assert (report.papers, report.duplicates) == (2, 1)


def test_bad_lines_skipped_and_counted(tmp_path, fake_encoder):
    path = write_jsonl(tmp_path / "p.jsonl", TOY[:2] + ["{broken", {"id": "x"}])
    seen = []
    report = build_index([path], tmp_path / "ix", fake_encoder, on_problem=seen.append)
    assert report.papers == 2 and report.skipped == 2
    assert [str(p) for p in seen] == [
        f"{path}:3: invalid JSON (Expecting property name enclosed in double quotes at column 2)",
        f"{path}:4: neither title nor abstract",
    ]


def test_strict_stops_at_first_bad_line_and_writes_nothing(tmp_path, fake_encoder):
    path = write_jsonl(tmp_path / "p.jsonl", TOY[:2] + [{"id": "x"}])
    root = tmp_path / "ix"
    with pytest.raises(BadRecord, match=r"p.jsonl:3: neither title nor abstract"):
        build_index([path], root, fake_encoder, strict=True)
    assert fake_encoder.calls == []
    with pytest.raises(IndexNotFound):
        read_manifest(root)


def test_strict_keeps_previous_generation(toy_index, tmp_path, fake_encoder):
    before = read_manifest(toy_index)[0]
    bad = write_jsonl(tmp_path / "bad.jsonl", ["nope"])
    with pytest.raises(BadRecord):
        build_index([bad], toy_index, fake_encoder, strict=True)
    assert read_manifest(toy_index)[0] == before


def test_no_valid_papers_is_an_error(tmp_path, fake_encoder):
    path = write_jsonl(tmp_path / "p.jsonl", ["{}", "[]"])
    with pytest.raises(PapersiftError, match=r"no valid papers in .*p.jsonl \(2 bad lines\)"):
        build_index([path], tmp_path / "ix", fake_encoder)


def test_progress_reports_every_paper(tmp_path, fake_encoder, toy_file):
    seen = []
    build_index([toy_file], tmp_path / "ix", fake_encoder, on_progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (len(TOY), len(TOY))


def test_import_precomputed_vectors(tmp_path, fake_encoder, toy_file):
    import numpy as np

    from search import Searcher

    vecs = fake_encoder.encode([f"{r['title']}. {r['abstract']}" for r in TOY]) * 3.0
    np.save(tmp_path / "v.npy", vecs)
    report = build_index([toy_file], tmp_path / "ix", None, vectors_path=tmp_path / "v.npy",
                         model_name=fake_encoder.name)
    assert report.papers == len(TOY) and fake_encoder.calls == [len(TOY)]  # only our own call
    s = Searcher(tmp_path / "ix", fake_encoder)  # same model name: queries may use it
    assert s.index.manifest["model"]["fingerprint"] == "imported"
    assert np.allclose(np.linalg.norm(np.asarray(s.index.vectors), axis=1), 1.0, atol=1e-5)
    assert s.search("distil a diffusion model into one step", k=1)[0].id == "2401.00002"
    from indexer.errors import ModelMismatch
    from tests.fakes import FakeEncoder

    with pytest.raises(ModelMismatch):
        Searcher(tmp_path / "ix", FakeEncoder(name="fake/other"))


@pytest.mark.parametrize(
    ("array", "message"),
    [
        ("wrong_rows", "4 vectors but 5 paper records"),
        ("nan", "row 2 has NaN or infinite values"),
        ("zero", "row 1 has zero or unmeasurable norm"),
        ("one_d", "expected a 2-D float array"),
        ("ints", "expected a 2-D float array"),
    ],
)
def test_import_rejects_bad_vectors(tmp_path, toy_file, array, message):
    import numpy as np

    good = np.random.default_rng(0).standard_normal((len(TOY), 8)).astype(np.float32)
    bad = {"wrong_rows": good[:4], "one_d": good[0], "ints": good.astype(np.int64)}.get(array)
    if array == "nan":
        bad = good.copy()
        bad[2, 3] = np.nan
    if array == "zero":
        bad = good.copy()
        bad[1] = 0
    np.save(tmp_path / "v.npy", bad)
    with pytest.raises(PapersiftError, match=message):
        build_index([toy_file], tmp_path / "ix", None, vectors_path=tmp_path / "v.npy",
                    model_name="m")
    assert not (tmp_path / "ix" / "CURRENT").exists()


def test_import_needs_every_line_valid(tmp_path):
    import numpy as np

    path = write_jsonl(tmp_path / "p.jsonl", TOY[:2] + ["{bad"])
    np.save(tmp_path / "v.npy", np.ones((2, 4), np.float32))
    with pytest.raises(BadRecord, match="every line must be a paper when --vectors is given"):
        build_index([path], tmp_path / "ix", None, vectors_path=tmp_path / "v.npy",
                    model_name="m")


class SlowLoadingEncoder(FakeEncoder):
    """A fake whose model takes `delay` seconds to load, as a real one takes ~20 s."""

    def __init__(self, delay: float = 0.3, log: list | None = None):
        super().__init__()
        self.delay = delay
        self.log = [] if log is None else log

    def load(self, texts: int = 0) -> None:
        time.sleep(self.delay)
        self.log.append(("load", texts))

    def encode(self, texts):
        assert self.log, "encoded before the model was loaded"
        return super().encode(texts)


def test_the_model_loads_in_its_own_phase_before_encoding(tmp_path, toy_file):
    log = []
    encoder = SlowLoadingEncoder(0.3, log)
    report = build_index([toy_file], tmp_path / "ix", encoder, on_phase=log.append,
                         on_progress=lambda done, total: log.append((done, total)))
    assert log == ["loading model", ("load", len(TOY)), "encoding", (len(TOY), len(TOY)),
                   "encoding passages", "writing index"]
    assert report.load_seconds >= 0.3 > report.encode_seconds
    assert report.seconds >= report.load_seconds + report.encode_seconds


def test_build_line_counts_papers_per_second_over_encoding_only(run, tmp_path, toy_file,
                                                                monkeypatch):
    from ui import cli

    monkeypatch.setattr(cli, "make_encoder", lambda *a, **k: SlowLoadingEncoder(0.5))
    code, out, _ = run("build", toy_file, "--index", tmp_path / "ix")
    assert code == 0
    m = re.search(r"Indexed 5 papers \(0 bad lines skipped, 0 duplicates merged\) in ([\d.]+) s "
                  r"\(model loaded in ([\d.]+) s; encoded in ([\d.]+) s, ([\d,]+) papers/s\); "
                  r"index [\d.]+ KB at ", out)
    assert m, out
    total, load, encode, speed = (float(g.replace(",", "")) for g in m.groups())
    assert load >= 0.5 and total >= load and encode < 0.5
    assert speed > 5 / 0.5  # with the load in it, it could not exceed 10 papers/s


def test_progress_bar_names_each_phase(monkeypatch):
    from rich.console import Console

    from ui import clikit

    screen = io.StringIO()
    monkeypatch.setattr(clikit, "err", Console(file=screen, force_terminal=True, width=120))
    with clikit.encode_progress() as (on_progress, on_phase):
        on_phase("loading model")
        loading = screen.getvalue()
        on_phase("encoding")
        on_progress(3, 10)
    assert "loading model" in loading and "encoding" not in loading and "/?" not in loading
    assert "3/10" in screen.getvalue()

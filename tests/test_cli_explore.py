"""`papersift map`, `recommend`, `list ...` and `digest`, run as a user runs them."""

import json

import bibtexparser

from tests.test_cli import one_line_error, papersift


def test_map_then_show(topic_index):
    proc = papersift("map", "--index", topic_index, "--clusters", "4", "--json", check=0)
    made = json.loads(proc.stdout)
    assert made["info"]["method"] == "pca" and made["info"]["count"] == 48
    assert sorted(c["size"] for c in made["clusters"]) == [12, 12, 12, 12]
    labels = [c["label"] for c in made["clusters"]]
    assert len(set(labels)) == 4 and all(labels)
    assert "map         4 topics, pca layout, seed 42" in papersift(
        "info", "--index", topic_index, check=0).stdout
    shown = papersift("map", "--index", topic_index, "--show", check=0)
    assert "4 topics of 48 papers (pca layout, seed 42" in shown.stdout
    assert labels[0] in shown.stdout


def test_map_errors(topic_index, tmp_path):
    one_line_error(papersift("map", "--index", topic_index, "--show"), 2, "has no map yet")
    one_line_error(papersift("map", "--index", topic_index, "--method", "tsne"), 2, "--method")
    one_line_error(papersift("map", "--index", tmp_path / "none"), 1, "no index at")


def test_recommend_like_unlike_and_from_a_list(topic_index):
    proc = papersift("recommend", "--index", topic_index, "--like", "graphs-00", "--like",
                     "graphs-01", "--unlike", "proteins-00", "-k", "5", "--json", check=0)
    ids = [json.loads(line)["id"] for line in proc.stdout.splitlines()]
    assert len(ids) == 5 and all(i.startswith("graphs-") for i in ids)
    papersift("list", "add", "G", "graphs-03", "graphs-04", "--index", topic_index, check=0)
    proc = papersift("recommend", "--index", topic_index, "--list", "G", "--method", "svm",
                     "-k", "3", check=0)
    assert "More like 2 papers (svm)" in proc.stdout
    one_line_error(papersift("recommend", "--index", topic_index), 2, "--like")
    one_line_error(papersift("recommend", "--index", topic_index, "--like", "nope"), 1, "nope")
    one_line_error(papersift("recommend", "--index", topic_index, "--like", "graphs-00",
                             "--unlike", "graphs-00"), 2, "both liked and unliked")


def test_list_commands_export_and_import(topic_index, tmp_path):
    papersift("list", "create", "Reading group", check=0)
    proc = papersift("list", "add", "Reading group", "diffusion-00", "retrieval-05",
                     "--index", topic_index, check=0)
    assert "Saved 2 new papers" in proc.stdout
    one_line_error(papersift("list", "add", "Reading group", "nope", "--index", topic_index), 1,
                   "nope")
    assert papersift("list", "show", "Reading group", "--json", check=0).stdout.count("\n") == 2
    assert "Reading group  (2 papers" in papersift("list", "ls", check=0).stdout
    bib = tmp_path / "out.bib"
    papersift("list", "export", "Reading group", "--out", bib, check=0)
    library = bibtexparser.parse_string(bib.read_text())
    assert len(library.entries) == 2 and not library.failed_blocks
    csv_text = papersift("list", "export", "Reading group", "--format", "csv", check=0).stdout
    assert csv_text.splitlines()[0].startswith("id,title,authors")
    # Import the exported file under a new name, plus one entry the index lacks.
    bib.write_text(bib.read_text() + "\n@misc{gone, title={Not indexed anywhere}}\n")
    proc = papersift("list", "import", bib, "--name", "Copy", "--index", topic_index, check=0)
    assert "3 entries, 2 found in the index, 2 new in 'Copy'" in proc.stdout
    assert "not in the index: gone: Not indexed anywhere" in proc.stderr
    papersift("list", "remove", "Copy", "diffusion-00", check=0)
    papersift("list", "rename", "Copy", "Copy 2", check=0)
    assert "1 papers" in papersift("list", "ls", check=0).stdout
    papersift("list", "delete", "Copy 2", check=0)
    one_line_error(papersift("list", "show", "Copy 2"), 1, "no reading list named 'Copy 2'")
    one_line_error(papersift("list", "export", "Reading group", "--format", "ris"), 2, "--format")
    one_line_error(papersift("list", "import", tmp_path / "none.bib", "--name", "x", "--index",
                             topic_index), 1, "none.bib: cannot read")


def test_digest_writes_markdown_and_html(topic_index, tmp_path):
    papersift("list", "add", "P", "proteins-00", "--index", topic_index, check=0)
    proc = papersift("digest", "--list", "P", "--since", "2024-06-01", "--until", "2024-12-31",
                     "--out", tmp_path / "d", "--index", topic_index, check=0)
    assert "Digest of" in proc.stdout
    md = (tmp_path / "d" / "papersift-digest-p-2024-06-01.md").read_text()
    assert md.startswith("# papersift digest: P")
    assert "proteins" in md.lower()
    one_line_error(papersift("digest", "--since", "2024-01-01", "--index", topic_index), 2,
                   "exactly one of --list")
    one_line_error(papersift("digest", "--list", "P", "--since", "01/02/2024"), 2, "--since")
    one_line_error(papersift("digest", "--list", "P", "--since", "2024-01-01", "--smtp",
                             "localhost:25", "--index", topic_index), 2, "--smtp and --to")

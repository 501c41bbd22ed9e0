"""The Explore map's figure (ui/explore_map.py): colours, numbers that keep apart, the
faint papers outside the filters, escaping. No model, no Streamlit."""

import itertools
import json

import numpy as np
import pytest

from indexer.atlas import Atlas
from ui.explore_map import (
    CIRCLE_PX,
    delta_e,
    label_offsets,
    map_figure,
    palette,
    topic_colours,
)

HOSTILE = "<script>alert(1)</script>"


@pytest.mark.parametrize("n", [2, 12, 30])
def test_no_two_topic_colours_look_alike(n):
    colours = palette(n)
    assert len(set(colours)) == n
    closest = min(delta_e(a, b) for a, b in itertools.combinations(colours, 2))
    assert closest >= 25, closest  # Dark24 + Light24 had two pinks 2.4 apart


def test_topic_colours_are_neither_grey_nor_near_the_page_backgrounds():
    for colour in palette(30):
        assert min(delta_e(colour, bg) for bg in ("#ffffff", "#0e1117", "#969696")) >= 25


def test_neighbouring_topics_get_the_most_different_colours():
    centres = np.array([(i % 5, i // 5) for i in range(20)], dtype=float)  # a 5 x 4 grid
    colours = topic_colours(centres, list(range(20, 0, -1)))
    assert sorted(colours) == sorted(palette(20))
    neighbours = [delta_e(colours[i], colours[j]) for i, j in itertools.combinations(range(20), 2)
                  if np.linalg.norm(centres[i] - centres[j]) == 1]
    pairs = [delta_e(a, b) for a, b in itertools.combinations(colours, 2)]
    assert np.median(neighbours) > np.median(pairs) * 1.2


def boxes(xy, offsets):
    """Each number's box in pixels, as label_offsets sizes it."""
    return [(x + dx - (7 * len(str(i)) + 6) / 2, y + dy - 7.5, x + dx + (7 * len(str(i)) + 6) / 2,
             y + dy + 7.5) for i, ((x, y), (dx, dy)) in enumerate(zip(xy, offsets, strict=True), start=1)]


def test_numbers_of_a_tight_bunch_of_results_do_not_overlap():
    rng = np.random.default_rng(3)
    xy = np.concatenate([rng.normal(0, 6, (14, 2)), rng.normal(80, 6, (6, 2))])  # pixels
    offsets = label_offsets(xy, px_per_unit=1.0)
    placed = boxes(xy, offsets)
    for a, b in itertools.combinations(placed, 2):
        assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    r = CIRCLE_PX / 2
    for box, (cx, cy) in itertools.product(placed, xy):  # no number covers a circle
        assert not (box[0] < cx + r and cx - r < box[2] and box[1] < cy + r and cy - r < box[3])
    assert all(np.hypot(dx, dy) <= r + 60 for dx, dy in offsets)


def tiny_atlas():
    coords = np.array([[0, 0], [1, 0], [0, 1], [5, 5], [6, 5], [5, 6]], dtype=np.float32)
    return Atlas(coords=coords, clusters=np.array([0, 0, 0, 1, 1, 1], dtype=np.int32),
                 labels=[f"{HOSTILE} topic", "plain topic"], terms=[[], []])


def test_filtered_map_colours_the_passing_papers_and_greys_the_rest():
    points = {"rows": np.array([0, 1, 3]), "faint": np.array([2, 4, 5]), "passing": 3,
              "hover": ["a", "b", "c"], "ids": ["p0", "p1", "p3"]}
    fig = map_figure(tiny_atlas(), points, [(3, "p3", f"{HOSTILE} title"), (0, "p0", "x")],
                     HOSTILE)
    faint = [t for t in fig.data if t.name == "outside the filters"][0]
    assert faint.x.tolist() == [0.0, 6.0, 5.0] and faint.hoverinfo == "skip"
    spec = json.loads(fig.to_json())
    topics = [t for t in spec["data"] if t.get("customdata") and "results" not in t.get("legendgroup", "")]
    assert [t["customdata"] for t in topics] == [["p0", "p1"], ["p3"]]
    assert topics[0]["marker"]["color"] != topics[1]["marker"]["color"]
    assert [a["text"] for a in spec["layout"]["annotations"]] == ["1", "2"]
    ring = [t for t in spec["data"] if t.get("name", "").startswith("results for")][0]
    assert ring["customdata"] == ["p3", "p0"]
    assert spec["layout"]["legend"]["orientation"] == "h" and spec["layout"]["legend"]["y"] < 0
    text = fig.to_json()
    assert "<script" not in text and "&lt;script&gt;" in text

"""The Explore map as a plotly figure: one colour per topic, the papers outside the
filters in faint grey, and the question's best results circled and numbered.

Plain functions of arrays, no Streamlit, so tests can build a figure and read it. Every
untrusted string (titles, topic labels, the question) reaches plotly HTML-escaped.
"""

from __future__ import annotations

import functools
import html
import itertools
import math

import numpy as np

from ui import render

FAINT = "rgba(150,150,150,0.22)"  # papers outside the filters
RING, HALO = "#ffd60a", "rgba(10,10,10,0.9)"  # a bright ring on a dark halo: seen on any theme
LABEL_FONT = {"size": 11, "color": "#111"}
LABEL_BG = "rgba(255,255,255,0.92)"  # numbers in white boxes: readable on light and dark pages
PHONE_PX = 360  # the narrowest plot: numbers are kept apart at this scale
CIRCLE_PX = 16
LEGEND_CHARS = 22  # short legend entries fit two or three to a row on a phone


# ---------------------------------------------------------------- colours


def _lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of sRGB colours given as 0-255 rows."""
    c = np.asarray(rgb, dtype=float) / 255.0
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = c @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                        [0.0193, 0.1192, 0.9505]]).T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                     200 * (f[..., 1] - f[..., 2])], axis=-1)


def _rgb(colour: str) -> list[int]:
    return [int(colour[i:i + 2], 16) for i in (1, 3, 5)]


def delta_e(a: str, b: str) -> float:
    """CIE76 colour difference of two '#rrggbb' colours (about 2.3 is just noticeable)."""
    return float(np.linalg.norm(_lab(_rgb(a)) - _lab(_rgb(b))))


@functools.cache
def palette(n: int) -> tuple[str, ...]:
    """`n` colours, each as unlike the ones before it as possible (greedy max-min distance
    in CIELAB, as in Glasbey et al. 2007), kept away from the white and dark page
    backgrounds and the faint grey, with lightness and chroma that read on both themes."""
    grid = np.array(list(itertools.product(range(0, 256, 15), repeat=3)), dtype=float)
    lab = _lab(grid)
    usable = (lab[:, 0] >= 45) & (lab[:, 0] <= 80) & (np.hypot(lab[:, 1], lab[:, 2]) >= 30)
    grid, lab = grid[usable], lab[usable]
    avoid = _lab(np.array([[255, 255, 255], [14, 17, 23], [150, 150, 150]]))
    nearest = np.linalg.norm(lab[:, None] - avoid[None], axis=-1).min(axis=1)
    picked = []
    for _ in range(n):
        i = int(np.argmax(nearest))
        picked.append("#{:02x}{:02x}{:02x}".format(*grid[i].astype(int)))
        nearest = np.minimum(nearest, np.linalg.norm(lab - lab[i], axis=1))
    return tuple(picked)


def topic_colours(centroids: np.ndarray, sizes: list[int]) -> list[str]:
    """One palette colour per topic. The largest topic first, each takes the unused colour
    most unlike the colours of its nearest topics on the map, so neighbours differ most."""
    n = len(centroids)
    colours = palette(n)
    lab = _lab(np.array([_rgb(c) for c in colours]))
    gaps = np.linalg.norm(centroids[:, None] - centroids[None], axis=-1)
    chosen: dict[int, int] = {}
    for c in sorted(range(n), key=lambda c: -sizes[c]):
        near = [o for o in np.argsort(gaps[c])[1:5] if o in chosen]
        free = [k for k in range(n) if k not in chosen.values()]
        if near:
            worst = [min(np.linalg.norm(lab[k] - lab[chosen[o]]) for o in near) for k in free]
            chosen[c] = free[int(np.argmax(worst))]
        else:
            chosen[c] = free[0]
    return [colours[chosen[c]] for c in range(n)]


# ---------------------------------------------------------------- numbers


def label_offsets(xy: np.ndarray, px_per_unit: float) -> list[tuple[float, float]]:
    """Pixel offsets (right, up) for the numbers 1..n of circled points at `xy`, chosen in
    turn among rings of 8 directions so that no number covers another number or a circle.

    Args:
        xy: (n, 2) map coordinates of the circled points, best result first.
        px_per_unit: screen pixels per map unit (the narrowest plot's, to be safe).
    """
    centres = np.asarray(xy, dtype=float) * px_per_unit
    r = CIRCLE_PX / 2
    boxes: list[tuple[float, float, float, float]] = []  # placed numbers: x0, y0, x1, y1
    offsets = []
    for i, (x, y) in enumerate(centres, start=1):
        w, h = 7 * len(str(i)) + 6, 15
        best, fewest = (0.0, r + h / 2 + 1), math.inf
        for dist, k in itertools.product((r + 9, r + 18, r + 30, r + 44, r + 60), range(8)):
            angle = math.pi / 2 - k * math.pi / 4  # up first, then clockwise
            dx, dy = dist * math.cos(angle), dist * math.sin(angle)
            box = (x + dx - w / 2, y + dy - h / 2, x + dx + w / 2, y + dy + h / 2)
            hits = sum(_overlap(box, b) for b in boxes) + sum(
                _overlap(box, (cx - r, cy - r, cx + r, cy + r)) for cx, cy in centres)
            if hits < fewest:
                best, fewest = (dx, dy), hits
            if hits == 0:
                break
        boxes.append((x + best[0] - w / 2, y + best[1] - h / 2,
                      x + best[0] + w / 2, y + best[1] + h / 2))
        offsets.append(best)
    return offsets


def _overlap(a, b, gap: float = 1.0) -> bool:
    return a[0] < b[2] + gap and b[0] < a[2] + gap and a[1] < b[3] + gap and b[1] < a[3] + gap


# ---------------------------------------------------------------- the figure


def map_figure(atlas, points: dict, highlight: list[tuple[int, str, str]], query: str):
    """The map: coloured topics for `points["rows"]`, grey for `points["faint"]`, and the
    `highlight` results (row, id, title; best first) circled and numbered."""
    import plotly.graph_objects as go

    rows, faint = points["rows"], points["faint"]
    scatter = go.Scattergl if len(rows) + len(faint) > 5000 else go.Scatter
    fig = go.Figure()
    if len(faint):
        fig.add_trace(scatter(x=atlas.coords[faint, 0], y=atlas.coords[faint, 1], mode="markers",
                              name="outside the filters", hoverinfo="skip", legendrank=2000,
                              marker={"size": 4, "color": FAINT}))
    centroids = np.array([atlas.coords[atlas.clusters == c].mean(axis=0)
                          if (atlas.clusters == c).any() else (0.0, 0.0)
                          for c in range(len(atlas.labels))])
    colours = topic_colours(centroids, atlas.sizes)
    for c, label in enumerate(atlas.labels):
        picked = np.flatnonzero(atlas.clusters[rows] == c)
        if not len(picked):
            continue
        fig.add_trace(scatter(
            x=atlas.coords[rows[picked], 0], y=atlas.coords[rows[picked], 1], mode="markers",
            name=html.escape(render.preview(f"{c + 1}. {label}", LEGEND_CHARS)),
            marker={"size": 5, "opacity": 0.8, "color": colours[c]},
            customdata=[points["ids"][i] for i in picked],
            hovertext=[points["hover"][i] for i in picked],
            hovertemplate="%{hovertext}<extra>" + html.escape(f"{c + 1}. {label}"[:40]) + "</extra>",
        ))
    annotations = _circle_results(fig, atlas, highlight, query) if highlight else []
    fig.update_layout(
        height=620 + 6 * len(atlas.labels), margin={"l": 0, "r": 0, "t": 10, "b": 0},
        clickmode="event+select", dragmode="pan", annotations=annotations,
        legend={"orientation": "h", "yanchor": "top", "y": -0.01, "x": 0,
                "itemsizing": "constant", "font": {"size": 11}},
        xaxis={"visible": False}, yaxis={"visible": False, "scaleanchor": "x"})
    return fig


def _circle_results(fig, atlas, highlight, query: str) -> list[dict]:
    """Add the two ring traces (halo under a bright ring) and return the number labels."""
    import plotly.graph_objects as go

    xy = atlas.coords[[r for r, _, _ in highlight]].astype(float)
    ring = {"size": CIRCLE_PX, "color": "rgba(0,0,0,0)"}
    fig.add_trace(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="markers", hoverinfo="skip",
                             showlegend=False, legendgroup="results",
                             marker={**ring, "line": {"width": 5, "color": HALO}}))
    fig.add_trace(go.Scatter(
        x=xy[:, 0], y=xy[:, 1], mode="markers", legendgroup="results", legendrank=1,
        name=html.escape(f"results for “{render.preview(query, 30)}”"),
        marker={**ring, "line": {"width": 2.5, "color": RING}},
        text=[str(i) for i in range(1, len(xy) + 1)],
        customdata=[pid for _, pid, _ in highlight],
        hovertext=[html.escape(render.preview(t, 100)) for _, _, t in highlight],
        hovertemplate="%{text}. %{hovertext}<extra></extra>"))
    span = np.ptp(atlas.coords, axis=0).max() or 1.0
    offsets = label_offsets(xy, PHONE_PX / span)
    return [{"x": float(x), "y": float(y), "text": str(i), "ax": dx, "ay": -dy,
             "showarrow": True, "arrowhead": 0, "arrowwidth": 1, "arrowcolor": "#888",
             "standoff": CIRCLE_PX / 2, "font": LABEL_FONT, "bgcolor": LABEL_BG,
             "bordercolor": "#444", "borderwidth": 1, "borderpad": 1}
            for i, ((x, y), (dx, dy)) in enumerate(zip(xy, offsets, strict=True), start=1)]

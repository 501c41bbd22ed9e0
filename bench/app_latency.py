"""The app's speed: server-side time per search, and time to the first page after launch.

1. Server-side: Streamlit's AppTest runs ui/app.py in this process against INDEX; after a
   warm-up query, each query's full script run (search, filters, rendering 20 cards) is
   timed.
2. First page: `papersift ui` is started on a free port; once its health check answers
   (ready), headless Chromium opens `/?q=...`; launch -> ready and ready -> the first
   result card on screen are measured.
3. Enter -> results settled (`--browser N`): in the same headless Chromium (1400x1000), a
   question is typed into the search box and Enter pressed; the time runs until the new
   first result's title is on screen and no element is stale (Streamlit marks the previous
   run's elements `data-stale` until the rerun has drawn everything). Works on the app of
   any commit (old widget cards or the cards element), so before/after pairs are fair.

Usage: python bench/app_latency.py --index DIR [--queries 20] [--browser 20] [--only-browser]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ["sparse attention for long documents", "diffusion model distillation one step",
           "retrieval augmented generation evaluation", "robot grasping from demonstrations",
           "speech recognition for low resource languages", "graph neural networks molecules",
           "reward models for reasoning", "vision language model hallucination",
           "federated learning privacy", "text to video generation benchmark"]


def server_side(index: Path, n: int) -> dict:
    from streamlit.testing.v1 import AppTest

    os.environ["PAPERSIFT_INDEX"] = str(index)
    at = AppTest.from_file(str(ROOT / "ui" / "app.py"), default_timeout=300)
    at.run()
    at.text_input(key="w_query").input("warm up query").run()
    took = []
    for i in range(n):
        started = time.perf_counter()
        at.text_input(key="w_query").input(QUERIES[i % len(QUERIES)] + f" {i}").run()
        took.append((time.perf_counter() - started) * 1000)
        assert not at.exception, at.exception
    took.sort()
    return {"queries": n, "p50_ms": round(statistics.median(took), 1),
            "p95_ms": round(took[int(0.95 * (n - 1))], 1)}


@contextlib.contextmanager
def app_in_browser(index: Path, viewport: dict | None = None):
    """`papersift ui` on a free port and a headless Chromium page; yields (page, base URL,
    seconds from launch until the server's health check answered)."""
    import urllib.request

    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.perf_counter()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "papersift"), "ui", "--port",
                             str(port), "--index", str(index)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport=viewport) if viewport else browser.new_page()
            page.set_default_timeout(120_000)
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
                    break
                except OSError:  # the server is not up yet
                    time.sleep(0.05)
            yield page, f"http://127.0.0.1:{port}", time.perf_counter() - started
            browser.close()
    finally:
        proc.terminate()
        proc.wait()


def first_page(index: Path) -> dict:
    """Seconds from launch to the server answering its health check (ready), and from
    ready to the first result card of a search on screen."""
    with app_in_browser(index) as (page, base, launch_to_ready):
        ready = time.perf_counter()
        page.goto(f"{base}/?q=graph+neural+networks")
        page.locator("article.card h3 a, [class*='st-key-open-'] button").first.wait_for()
        shown = time.perf_counter()
    return {"launch_to_ready_s": round(launch_to_ready, 1),
            "ready_to_first_results_s": round(shown - ready, 1)}


# The first result title, wherever it is drawn (cards element in a shadow root, or the old
# widget cards), and whether any element of the page is still stale.
_FIND = """
  const find = (root) => root.querySelector("article.card h3 a, [class*='st-key-open-'] button");
  let first = find(document);
  if (!first) {
    for (const el of document.querySelectorAll('*')) {
      if (el.shadowRoot && (first = find(el.shadowRoot))) break;
    }
  }"""
_SETTLED = "prev => {" + _FIND + """
  if (!first || first.innerText === prev) return false;
  return document.querySelector('[data-stale="true"]') === null
         && document.querySelector('[data-testid="stStatusWidget"]') === null;
}"""
_FIRST_TITLE = "() => {" + _FIND + "\n  return first ? first.innerText : '';\n}"


def enter_to_results(index: Path, n: int) -> dict:
    """Milliseconds from Enter in the search box to the new results settled, per query."""
    label = "Ask a question, type keywords, or paste an arXiv id, URL or abstract"
    took = []
    with app_in_browser(index, {"width": 1400, "height": 1000}) as (page, base, _):
        page.goto(f"{base}/?q=warm+up+the+model")
        page.wait_for_function(_SETTLED, arg="", polling="raf")
        box = page.get_by_label(label)
        for i in range(n + 2):  # two warm-up questions
            prev = page.evaluate(_FIRST_TITLE)
            box.fill(QUERIES[i % len(QUERIES)])
            started = time.perf_counter()
            box.press("Enter")
            page.wait_for_function(_SETTLED, arg=prev, polling="raf")
            if i >= 2:
                took.append((time.perf_counter() - started) * 1000)
    took.sort()
    return {"questions": n, "enter_to_settled_p50_ms": round(statistics.median(took)),
            "p95_ms": round(took[int(0.95 * (n - 1))]), "min_ms": round(took[0]),
            "max_ms": round(took[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--browser", type=int, default=0,
                        help="also time Enter -> results settled for this many questions")
    parser.add_argument("--only-browser", action="store_true")
    args = parser.parse_args()
    if args.browser:
        print(enter_to_results(args.index, args.browser), flush=True)
    if args.only_browser:
        return
    print(first_page(args.index), flush=True)
    print(server_side(args.index, args.queries))


if __name__ == "__main__":
    main()

"""The app's speed: server-side time per search, and time to the first page after launch.

1. Server-side: Streamlit's AppTest runs ui/app.py in this process against INDEX; after a
   warm-up query, each query's full script run (search, filters, rendering 20 cards) is
   timed.
2. First page: `papersift ui` is started on a free port; once its health check answers
   (ready), headless Chromium opens `/?q=...`; launch -> ready and ready -> the first
   result card on screen are measured.

Usage: python bench/app_latency.py --index DIR [--queries 20]
"""

from __future__ import annotations

import argparse
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


def first_page(index: Path) -> dict:
    """Seconds from launch to the server answering its health check (ready), and from
    ready to the first result card of a search on screen."""
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
            page = browser.new_page()
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
                    break
                except OSError:  # the server is not up yet
                    time.sleep(0.05)
            ready = time.perf_counter()
            page.goto(f"http://127.0.0.1:{port}/?q=graph+neural+networks")
            page.locator("[class*='st-key-open-'] button").first.wait_for(timeout=120_000)
            shown = time.perf_counter()
            browser.close()
    finally:
        proc.terminate()
        proc.wait()
    return {"launch_to_ready_s": round(ready - started, 1),
            "ready_to_first_results_s": round(shown - ready, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=20)
    args = parser.parse_args()
    print(first_page(args.index), flush=True)
    print(server_side(args.index, args.queries))


if __name__ == "__main__":
    main()

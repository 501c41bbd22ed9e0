"""Start-up times: one-shot CLI commands, and server launch -> ready -> first answer.

1. `papersift search`, `similar` and `info` as whole processes, median of N runs (the
   query model is taken from the cache; run one search first on a new machine).
2. `papersift serve`: launch until /health answers (the engine is opened and the model
   warmed before uvicorn reports ready), then the first `/v1/search`.
3. `papersift ui`: launch until its health check answers, then the first result card in
   headless Chromium (bench/app_latency.py `first_page`); with --no-app, skipped.

Usage: python bench/start.py --index DIR [--runs 5] [--paper ID] [--no-app]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PAPERSIFT = str(Path(sys.executable).parent / "papersift")
QUESTION = "stop a language model making things up"


def whole_process(args: list[str], runs: int) -> dict:
    took = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run([PAPERSIFT, *args], capture_output=True, text=True)
        took.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"papersift {' '.join(args)}: {done.stderr.strip()}")
    return {"median_s": round(statistics.median(took), 2), "min_s": round(min(took), 2),
            "max_s": round(max(took), 2)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(index: Path) -> dict:
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen([PAPERSIFT, "serve", "--index", str(index), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit("papersift serve stopped before it was ready")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.02)
        ready = time.perf_counter()
        first = httpx.get(f"{base}/v1/search", params={"q": QUESTION}, timeout=60)
        answered = time.perf_counter()
        first.raise_for_status()
    finally:
        proc.terminate()
        proc.wait()
    return {"launch_to_ready_s": round(ready - started, 2),
            "ready_to_first_answer_s": round(answered - ready, 3),
            "first_took_ms": first.json()["took_ms"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--paper", help="a paper id for `similar` (default: the first row)")
    parser.add_argument("--no-app", action="store_true")
    args = parser.parse_args()
    index = str(args.index)
    paper = args.paper
    if paper is None:
        sys.path.insert(0, str(ROOT))
        from indexer.store import open_index

        handle = open_index(args.index)
        paper = handle.papers.papers([0])[0].id
        handle.close()
    for name, command in (("search", ["search", QUESTION, "--index", index]),
                          ("similar", ["similar", paper, "--index", index]),
                          ("info", ["info", "--index", index])):
        print(name, whole_process(command, args.runs), flush=True)
    print("serve", api(args.index), flush=True)
    if not args.no_app:
        sys.path.insert(0, str(ROOT / "bench"))
        from app_latency import first_page

        print("ui", first_page(args.index), flush=True)


if __name__ == "__main__":
    main()

"""Load on `papersift serve`: N concurrent clients for D seconds, hybrid searches.

Starts `papersift serve` on a copy of INDEX on loopback (or uses --url), then for each
client count (1, 8, 32 by default) runs that many httpx async clients, each asking the
paraphrase set's questions one after another (`GET /v1/search`, hybrid, k 10) for D
seconds. Reported per level: requests/s, latency p50/p99 (client side, connection
reused), the server's own `took_ms` p50, errors. With --updates N, N `papersift update`s
of new papers (stored papers under new ids and titles) run during each level; each new
batch is checked to be served (GET /v1/papers/ID) and every request must still succeed.

The clients share the machine with the server: on a 2-core machine they take part of it.

Usage: python bench/load.py --index /tmp/ix/80k [--clients 1 8 32] [--seconds 30] [--updates 3]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUESTIONS = ROOT / "bench" / "queries" / "paraphrase_80k.tsv"


@dataclass
class Level:
    clients: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    took: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    updates: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        lat = sorted(self.latencies)
        pick = (lambda q: round(lat[min(len(lat) - 1, int(len(lat) * q))], 1)) if lat else (lambda q: None)
        return {"clients": self.clients, "requests": len(lat), "errors": len(self.errors),
                "rps": round(len(lat) / self.seconds, 1) if self.seconds else 0.0,
                "p50_ms": pick(0.50), "p99_ms": pick(0.99),
                "server_p50_ms": round(statistics.median(self.took), 1) if self.took else None,
                "seconds": round(self.seconds, 1), "updates": self.updates,
                "first_errors": self.errors[:3]}


def questions() -> list[str]:
    with QUESTIONS.open(encoding="utf-8") as f:
        rows = csv.reader((line for line in f if not line.startswith("#")), delimiter="\t")
        return [row[1] for row in rows if len(row) > 1 and row[1].strip()]


async def run_level(url: str, headers: dict, level: Level, seconds: float, asked: list[str],
                    busy: threading.Event) -> None:
    """`level.clients` clients asking until `seconds` passed and no update is running."""
    start = time.perf_counter()

    async def client(i: int, http: httpx.AsyncClient) -> None:
        n = i * len(asked) // level.clients
        while time.perf_counter() - start < seconds or busy.is_set():
            q = asked[n % len(asked)]
            n += 1
            t = time.perf_counter()
            try:
                r = await http.get("/v1/search", params={"q": q, "k": 10, "mode": "hybrid"})
                if r.status_code != 200:
                    level.errors.append(f"{r.status_code} {r.text[:120]}")
                    continue
                level.took.append(r.json()["took_ms"])
            except httpx.HTTPError as e:
                level.errors.append(repr(e))
                continue
            level.latencies.append((time.perf_counter() - t) * 1000)

    limits = httpx.Limits(max_connections=level.clients, max_keepalive_connections=level.clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as http:
        await asyncio.gather(*(client(i, http) for i in range(level.clients)))
    level.seconds = time.perf_counter() - start


def new_batches(index: Path, count: int, size: int, workdir: Path, first: int
                ) -> list[tuple[Path, str]]:
    """`count` files of `size` stored papers under new ids and titles, with one id of each;
    batch numbers start at `first` (ids are never reused)."""
    from indexer.store import open_index

    handle = open_index(index)
    stored = list(handle.papers.papers(range(0, min(handle.count, count * size * 7), 7)).values())
    handle.close()
    batches = []
    for b in range(first, first + count):
        papers = [replace(p, id=f"2699.{b:02d}{i:03d}", title=f"Revisited {b}: {p.title}")
                  for i, p in enumerate(stored[(b - first) * size:(b - first + 1) * size])]
        path = workdir / f"batch-{time.time_ns()}-{b}.jsonl"
        path.write_text("".join(json.dumps({
            "id": p.id, "title": p.title, "abstract": p.abstract, "authors": list(p.authors),
            "categories": list(p.categories), "published": p.published}) + "\n" for p in papers),
            encoding="utf-8")
        batches.append((path, papers[0].id))
    return batches


def updater(index: Path, batches, seconds: float, url: str, headers: dict, level: Level,
            busy: threading.Event) -> None:
    """Run `papersift update` for each batch, spread over the level's seconds."""
    try:
        for path, paper_id in batches:
            time.sleep(seconds / (len(batches) + 1))
            t = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "ui.cli", "update", str(path),
                                   "--index", str(index)], cwd=ROOT, capture_output=True, text=True)
            took = time.perf_counter() - t
            seen = httpx.get(f"{url}/v1/papers/{paper_id}", headers=headers, timeout=60).status_code
            level.updates.append(f"exit {done.returncode} in {took:.1f} s, new paper served: "
                                 f"{seen == 200}" + (f" ({done.stderr.strip()[-200:]})"
                                                     if done.returncode else ""))
    finally:
        busy.clear()


def start_server(index: Path, port: int, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "ui.cli", "serve", "--index", str(index), "--port", str(port)]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server stopped (exit {proc.returncode}); see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.terminate()
    raise SystemExit("the server did not answer within 600 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--updates", type=int, default=0, help="updates during each level")
    parser.add_argument("--batch", type=int, default=50, help="new papers per update")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--url", default="", help="an already running server (no --updates)")
    parser.add_argument("--token-file", type=Path)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/papersift-load"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    headers = {"authorization": f"Bearer {args.token_file.read_text().strip()}"} if args.token_file else {}
    asked = questions()
    server, index, url = None, args.index, args.url
    if not url:
        shutil.rmtree(args.workdir, ignore_errors=True)
        args.workdir.mkdir(parents=True)
        if args.updates:  # updates write a copy, never the index given
            index = args.workdir / "index"
            shutil.copytree(args.index, index)
        url = f"http://127.0.0.1:{args.port}"
        server = start_server(index, args.port, args.workdir / "server.log")
    elif args.updates:
        raise SystemExit("--updates needs the server started here (leave out --url)")
    results = []
    try:
        for n, clients in enumerate(args.clients):
            level, busy = Level(clients), threading.Event()
            thread = None
            if args.updates:
                busy.set()
                batches = new_batches(index, args.updates, args.batch, args.workdir, n * args.updates)
                thread = threading.Thread(target=updater, args=(
                    index, batches, args.seconds, url, headers, level, busy))
                thread.start()
            asyncio.run(run_level(url, headers, level, args.seconds, asked, busy))
            if thread is not None:
                thread.join()
            results.append(level.summary())
            if not args.json:
                s = results[-1]
                print(f"{clients:>3} clients: {s['rps']:7.1f} req/s, p50 {s['p50_ms']} ms, "
                      f"p99 {s['p99_ms']} ms (server p50 {s['server_p50_ms']} ms), "
                      f"{s['requests']} requests, {s['errors']} errors {s['first_errors']}", flush=True)
                for line in s["updates"]:
                    print(f"    update: {line}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
    if args.json:
        print(json.dumps({"index": str(args.index), "cpus": os.cpu_count(), "levels": results}))


if __name__ == "__main__":
    main()

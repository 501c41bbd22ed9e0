"""Build throughput on a Ray cluster (issue 15): the bundled 2,000 (whole + windows) built
in one local process, then with `--ray` on a 1-node and a 2-node loopback cluster started
here (tests/ray_cluster.py), one after the other.

Each run is `build_index` as `papersift build` runs it (the driver loads the model too,
for the tokenizer and the weights' fingerprint). Reports, per run: papers/s of the
encoding phase, the whole build, and for Ray runs: joining the cluster, each actor's start
(model load, weights check, OpenVINO conversion), the seconds actors spent encoding, and
what is left per block (scheduling, moving texts and vectors, checkpoints).

Usage: python bench/cluster_build.py [--cpus 2] [--no-windows] [--runs local,1,2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from indexer.build import build_index  # noqa: E402
from indexer.encoder import SentenceTransformerEncoder  # noqa: E402
from tests.ray_cluster import local_cluster  # noqa: E402

BUNDLED = ROOT / "data" / "demo-arxiv-2k.jsonl"


def local_run(folder: Path, windows: bool) -> dict:
    encoder = SentenceTransformerEncoder(None, precision="auto")
    report = build_index([BUNDLED], folder / "local", encoder, with_windows=windows)
    return {"run": "local process", "papers": report.papers, "build_s": round(report.seconds, 1),
            "encode_s": round(report.encode_seconds, 1),
            "papers_per_s": round(report.papers / report.encode_seconds, 1)}


def ray_run(folder: Path, nodes: int, cpus: int, windows: bool) -> dict:
    from indexer.cluster import RayEncoder
    from indexer.store import blocks_dir

    root = folder / f"ray-{nodes}"
    with local_cluster(nodes, cpus) as cluster:
        address = cluster.address
        started = time.perf_counter()
        encoder = RayEncoder(address, None, blocks_dir(root), precision="auto")
        connect_s = time.perf_counter() - started
        try:
            report = build_index([BUNDLED], root, encoder, with_windows=windows)
        finally:
            encoder.close()
    stats, plan = encoder.stats, encoder.plan
    loads = sorted(stats.actor_loads.values())
    blocks = stats.encoded
    # the actors' time not spent starting or encoding, shared out per block
    idle = report.encode_seconds * plan.actors - stats.busy_seconds - sum(loads)
    return {"run": f"--ray, {nodes} node(s) x {cpus} CPUs", "papers": report.papers,
            "actors": plan.actors, "threads_per_actor": plan.cpus,
            "build_s": round(report.seconds + connect_s, 1),
            "encode_s": round(report.encode_seconds, 1),
            "papers_per_s": round(report.papers / report.encode_seconds, 1),
            "connect_s": round(connect_s, 2), "actor_start_s": [round(x, 1) for x in loads],
            "blocks": blocks, "texts": stats.texts,
            "actor_encode_s": round(stats.busy_seconds, 1),
            "encode_s_per_block": round(stats.busy_seconds / max(1, blocks), 2),
            "other_s_per_block": round(max(0.0, idle) / max(1, blocks), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", type=int, default=2, help="logical CPUs per Ray node")
    parser.add_argument("--no-windows", action="store_true")
    parser.add_argument("--runs", default="local,1,2")
    args = parser.parse_args()
    windows = not args.no_windows
    with tempfile.TemporaryDirectory() as tmp:
        for run in args.runs.split(","):
            if run == "local":
                result = local_run(Path(tmp), windows)
            else:
                result = ray_run(Path(tmp), int(run), args.cpus, windows)
            print(json.dumps({**result, "windows": windows}), flush=True)


if __name__ == "__main__":
    main()

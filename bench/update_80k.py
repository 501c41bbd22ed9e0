"""Incremental update against a full rebuild: 2,000 new papers into an 80k index.

The 2,000 "new" papers are 2,000 records of the 80k set given fresh ids (new-<id>), so
they must all be encoded, as truly new papers would. Runs `papersift update` on a copy of
the index as a user would and reports wall time, papers encoded and peak memory.

Usage: python bench/update_80k.py --index DIR [--rebuild-seconds S]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent / "papersift"
CORPUS = ROOT.parent / "shared" / "data" / "arxiv-80k" / "papers.jsonl.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--rebuild-seconds", type=float, help="the full build time, to compare")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="papersift-update-"))
    copy = work / "index"
    shutil.copytree(args.index, copy)
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        lines = f.readlines()
    new = []
    for line in random.Random(5).sample(lines, 2000):
        record = json.loads(line)
        record["id"] = f"new-{record['id']}"
        new.append(json.dumps(record))
    (work / "new.jsonl").write_text("\n".join(new) + "\n")
    started = time.perf_counter()
    proc = subprocess.run([str(BIN), "update", str(work / "new.jsonl"), "--index", str(copy)],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode:
        sys.exit(proc.stderr)
    encoded = int(re.search(r"encoded ([\d,]+) papers", proc.stdout).group(1).replace(",", ""))
    result = {"update_seconds": round(seconds, 1), "papers_encoded": encoded,
              "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
              "summary": proc.stdout.strip(), "updated_index": str(copy)}
    if args.rebuild_seconds:
        result["rebuild_seconds"] = args.rebuild_seconds
        result["speedup"] = round(args.rebuild_seconds / seconds, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

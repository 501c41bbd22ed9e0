"""Encoding on a Ray cluster: the one module that knows Ray (`build --ray`, `update --ray`).

Reading, checking and writing stay on the driver exactly as in a local build; only the
model's work is spread::

    driver (papersift build)                     every node (ray start ...)
      texts, length-sorted, cut into blocks  ->  Ray Data actor pool: each EncodeActor
      of BLOCK texts, one Ray row per block      loads the model once, checks its weights
                                                 against the driver's, encodes a block
      INDEX/.ray-blocks/<key>.npy            <-  vectors of one block (a killed worker's
      (a restarted driver skips these)           block is retried by Ray on another)

A block's key is the sha256 of the model fingerprint and its texts, so a block already in
the checkpoint folder is never encoded again. Ray is imported lazily: papersift works
without it, and `--ray` without it is one line naming the extra to install.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import socket
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer.errors import PapersiftError

log = logging.getLogger(__name__)

BLOCK = 256  # texts per Ray row: ~0.4 MB of vectors, a few seconds on one CPU core
CPUS_PER_ACTOR = 4  # a CPU node gets one actor per 4 CPUs (at least one)
ACTOR_WAIT_S = 600  # how long a build waits for its actors (the cluster may be busy)
HINT = "start one with `ray start --head` (README 'Running on a cluster')"


@dataclass(frozen=True)
class Block:
    """One Ray row: the rows (into the texts given) it encodes and its content key."""

    key: str
    rows: np.ndarray


def block_key(fingerprint: str, texts: Sequence[str]) -> str:
    """sha256 of the model fingerprint and the texts (each length-prefixed)."""
    digest = hashlib.sha256(fingerprint.encode())
    for text in texts:
        raw = text.encode("utf-8", "surrogatepass")
        digest.update(len(raw).to_bytes(8, "little"))
        digest.update(raw)
    return digest.hexdigest()


def cut_blocks(texts: Sequence[str], fingerprint: str, size: int = BLOCK) -> list[Block]:
    """The texts, longest first (as `encode_papers` sorts them), cut into blocks of `size`:
    each block holds texts of similar length, so a batch inside it is barely padded."""
    order = np.argsort([-len(t) for t in texts], kind="stable")
    return [Block(block_key(fingerprint, [texts[i] for i in rows]), rows)
            for rows in (order[s:s + size] for s in range(0, len(texts), size))]


class Checkpoints:
    """Finished blocks' vectors as `<key>.npy` in one folder, each written atomically."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def get(self, key: str, rows: int, dim: int) -> np.ndarray | None:
        """The block's vectors, or None when missing or unusable (then it is encoded)."""
        try:
            vectors = np.load(self.folder / f"{key}.npy", allow_pickle=False)
        except (OSError, ValueError):
            return None
        if vectors.shape != (rows, dim) or vectors.dtype != np.float32:
            return None
        return vectors

    def put(self, key: str, vectors: np.ndarray) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{key}.tmp"
        with tmp.open("wb") as f:
            np.save(f, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
        os.replace(tmp, self.folder / f"{key}.npy")

    def count(self) -> int:
        return len(list(self.folder.glob("*.npy"))) if self.folder.is_dir() else 0

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass(frozen=True)
class Plan:
    """Where the actors go: how many, and what each asks of its node."""

    nodes: int
    actors: int
    cpus: float
    gpus: float

    def info(self) -> dict:
        """How the build ran, for the manifest's `build.ray`."""
        return {"nodes": self.nodes, "actors": self.actors, "gpus": int(self.actors * self.gpus)}


def plan(node_resources: Sequence[dict], actors: int | None = None) -> Plan:
    """One actor per GPU where the cluster has GPUs, else one per `CPUS_PER_ACTOR` CPUs of
    each node (at least one per node); `actors` overrides the count.

    Args:
        node_resources: the alive nodes' resources (`ray.nodes()[i]["Resources"]`).
    """
    gpus = sum(int(r.get("GPU", 0)) for r in node_resources)
    if gpus:
        return Plan(len(node_resources), actors or gpus, 1.0, 1.0)
    cpus = [int(r.get("CPU", 0)) for r in node_resources if r.get("CPU", 0) >= 1]
    if not cpus:
        raise PapersiftError("the Ray cluster has no CPU or GPU to encode on")
    per_actor = min(CPUS_PER_ACTOR, min(cpus))
    return Plan(len(node_resources), actors or sum(max(1, c // per_actor) for c in cpus),
                float(per_actor), 0.0)


class EncodeActor:
    """Runs on a node: loads the model once, then encodes one block per call."""

    def __init__(self, model: str | None, fingerprint: str, options: dict) -> None:
        import time

        import ray

        from indexer.encoder import SentenceTransformerEncoder

        started = time.perf_counter()
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
        threads = max(1, min(int(cpus), os.cpu_count() or 1))  # nodes may share a machine
        gpu = bool(ray.get_runtime_context().get_accelerator_ids().get("GPU"))
        self.encoder = SentenceTransformerEncoder(model, threads=None if gpu else threads, **options)
        self.encoder.load(BLOCK)
        if self.encoder.fingerprint != fingerprint:
            raise PapersiftError(
                f"node {socket.gethostname()}: model {self.encoder.name} has weights "
                f"{self.encoder.fingerprint}, the driver's have {fingerprint}; install the "
                "same model on every node")
        self.actor = f"{socket.gethostname()}:{os.getpid()}"
        self.load_seconds = time.perf_counter() - started

    def __call__(self, batch: dict) -> dict:
        import time

        keys, vectors, seconds = [], [], []
        for key, texts in zip(batch["key"], batch["texts"], strict=True):
            started = time.perf_counter()
            keys.append(str(key))
            vectors.append(self.encoder.encode([str(t) for t in texts]).tobytes())
            seconds.append(time.perf_counter() - started)
        n = len(keys)
        return {"key": np.array(keys), "vectors": np.array(vectors, dtype=object),
                "seconds": np.array(seconds), "actor": np.array([self.actor] * n),
                "load_seconds": np.full(n, self.load_seconds)}


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401 - the data extra, not only ray core
    except ImportError:
        raise PapersiftError("encoding on a Ray cluster needs Ray on this machine: "
                             "pip install 'papersift[cluster]'") from None
    return ray


def _reachable(address: str) -> None:
    """Refuse at once a host:port where nothing listens (Ray itself retries for minutes)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or address.startswith("ray://"):
        return
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=5).close()
    except OSError as e:
        raise PapersiftError(f"no Ray cluster at {address} ({e.strerror or e}): {HINT}") from None


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Ray's C++ core prints a line to stderr as it starts; a CLI says only what it means."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _quietly(rows: Iterator) -> Iterator:
    """Ray Data's rows without its Python warnings (advice on tuning a pipeline)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield from rows


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _events_to_log(ray) -> None:
    """Ray prints cluster events (a worker or node lost, a task retried) to the driver's
    stdout from a background thread (`ray._private.worker.print_to_stdstream`); a
    command's stdout is its result, so each event becomes one warning in the log."""
    worker = getattr(getattr(ray, "_private", None), "worker", None)
    if worker is None or not hasattr(worker, "print_to_stdstream"):
        return  # another Ray: its events stay where it prints them

    def to_log(data: dict, ignore_prefix: bool = False) -> None:
        for line in data.get("lines") or ():
            text = _ANSI.sub("", str(line)).strip().splitlines()
            if text:
                log.warning("ray: %s", text[0][:240])

    worker.print_to_stdstream = to_log


def connect(address: str, actors: int | None = None) -> Plan:
    """Join the Ray cluster at `address` ("auto" or host:port) as a driver.

    Returns:
        The plan of actors for this cluster's alive nodes.

    Raises:
        PapersiftError: Ray is not installed, or no cluster answers there (one line).
    """
    ray = _ray()
    if not address:
        raise PapersiftError(f"--ray needs an address (auto or host:port): {HINT}")
    _reachable(address)
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # its C++ core's own logging
    try:
        if not ray.is_initialized():  # one connection per process (serve's shards share it)
            with _quiet_stderr():
                ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise PapersiftError(f"no Ray cluster at {address} ({_first_line(e)}): {HINT}") from None
    _events_to_log(ray)
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.wait_for_min_actors_s = ACTOR_WAIT_S
    alive = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    return plan(alive, actors)


def _first_line(error: BaseException) -> str:
    """The message of the innermost papersift error in a chain of Ray's wrappers, else
    the last line of the outermost message (a traceback's final line)."""
    seen, cause = set(), error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, PapersiftError) and cause.args:
            return str(cause.args[0])
        cause = cause.__cause__ or getattr(cause, "cause", None)
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1][:300] if lines else type(error).__name__


@dataclass
class Stats:
    """What the cluster did for this driver: blocks encoded there and reused from disk,
    seconds the actors spent encoding, and each actor's start (model load) seconds."""

    encoded: int = 0
    reused: int = 0
    texts: int = 0
    busy_seconds: float = 0.0
    actor_loads: dict[str, float] = field(default_factory=dict)


class RayEncoder:
    """An `Encoder` whose `encode_many` runs on a Ray cluster.

    The driver loads the same model locally too: its name, weights fingerprint, dimension
    and tokenizer (windows are cut on the driver) are the local model's, and every actor
    checks it loaded the same weights.

    Args:
        address: "auto" or the head's host:port (connects at once).
        model: the --model value, resolved on each node as locally.
        checkpoints: the folder of finished blocks (`store.blocks_dir(index)`).
        actors: how many actors; None follows `plan`.
        block: texts per block.
        options: SentenceTransformerEncoder options for the actors (precision,
            batch_size, backend).
    """

    def __init__(self, address: str, model: str | None, checkpoints: Path, *,
                 actors: int | None = None, block: int = BLOCK, **options) -> None:
        from indexer.encoder import SentenceTransformerEncoder

        self.plan = connect(address, actors)
        self.local = SentenceTransformerEncoder(model, **options)
        self.model_arg = model
        self.options = options
        self.checkpoints = Checkpoints(checkpoints)
        self.block = block
        self.stats = Stats()

    name = property(lambda self: self.local.name)
    fingerprint = property(lambda self: self.local.fingerprint)
    dim = property(lambda self: self.local.dim)
    tokenizer = property(lambda self: self.local.tokenizer)

    @property
    def cluster_info(self) -> dict:
        return self.plan.info()

    def load(self, texts: int = 0) -> None:
        """Load the driver's copy (tokenizer and fingerprint); the actors load their own."""
        self.local.load(0)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode_many(texts)

    def encode_many(self, texts: Sequence[str],
                    on_progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Encode every text on the cluster; rows follow `texts`. Blocks already in the
        checkpoint folder are read from there; the rest go through one Ray Data run.

        Raises:
            PapersiftError: the cluster failed (one line); finished blocks stay on disk.
        """
        texts = list(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        pending: dict[str, list[Block]] = {}
        done = 0
        for block in cut_blocks(texts, self.fingerprint, self.block):
            vectors = self.checkpoints.get(block.key, len(block.rows), self.dim)
            if vectors is None:
                pending.setdefault(block.key, []).append(block)
                continue
            out[block.rows] = vectors
            done += len(block.rows)
            self.stats.reused += 1
        if on_progress and done:
            on_progress(done, len(texts))
        for key, vectors in self._run(pending, texts):
            for block in pending[key]:
                out[block.rows] = vectors
                done += len(block.rows)
            if on_progress:
                on_progress(done, len(texts))
        self.stats.texts += len(texts)
        return out

    def _run(self, pending: dict[str, list[Block]], texts: list[str]
             ) -> Iterator[tuple[str, np.ndarray]]:
        """Each pending block's vectors, as the actors finish them (checkpointed first)."""
        if not pending:
            return
        ray = _ray()
        items = [{"key": key, "texts": [texts[i] for i in blocks[0].rows]}
                 for key, blocks in pending.items()]
        actors = min(self.plan.actors, len(items))  # an idle actor would only load the model
        data = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            EncodeActor, batch_size=1, compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=self.plan.cpus, num_gpus=self.plan.gpus or None,
            fn_constructor_args=(self.model_arg, self.fingerprint, self.options))
        # Ray Data gives pool actors max_restarts=-1 and max_task_retries=-1 by default (a
        # lost actor is restarted and its block retried; the tests kill one, and a node);
        # passing them is deprecated (remote args go in Ray 2.64).
        left = set(pending)
        try:
            for row in _quietly(data.iter_rows()):
                key = str(row["key"])
                if key not in left:
                    continue  # a retried block that had already arrived
                rows = len(pending[key][0].rows)
                vectors = np.frombuffer(row["vectors"], dtype=np.float32).reshape(rows, self.dim)
                self.checkpoints.put(key, vectors)
                left.discard(key)
                self.stats.encoded += 1
                self.stats.busy_seconds += float(row["seconds"])
                self.stats.actor_loads[str(row["actor"])] = float(row["load_seconds"])
                yield key, vectors
        except (PapersiftError, OSError):
            raise
        except Exception as e:  # noqa: BLE001 - Ray's many wrappers become one line
            raise PapersiftError(
                f"the Ray cluster failed while encoding: {_first_line(e)}; "
                f"{self.checkpoints.count():,} finished blocks are kept in "
                f"{self.checkpoints.folder}: run the same command again to resume") from None
        if left:
            raise PapersiftError(f"the Ray cluster returned {len(pending) - len(left)} of "
                                 f"{len(pending)} blocks; run the same command again to resume")

    def discard_checkpoints(self) -> None:
        """Remove the finished blocks (call once the generation is written)."""
        self.checkpoints.clear()

    def close(self) -> None:
        """Leave the cluster (the actors end with this driver)."""
        ray = _ray()
        if ray.is_initialized():
            ray.shutdown()

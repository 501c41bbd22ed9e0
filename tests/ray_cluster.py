"""A real two-node Ray cluster on loopback for the cluster tests (`ray_cluster` fixture).

Each node is `ray start --block` in its own session, with its own temp folder: teardown
ends those sessions (and any process naming the folder) by PID, never `ray stop`, which
would stop every Ray on the machine. Each node declares 4 logical CPUs: with 1 a Ray Data
actor pool of 2 waits for ever (its input task is held back by Ray Data's resource
budget), with 4 the pool runs (issue 15).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

CPUS_PER_NODE = 4
START_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _has_dashboard() -> bool:
    """Ray's state API (`ray.util.state.list_actors`) needs the dashboard, which needs
    `ray[default]`; with `ray[data]` alone it is left out."""
    try:
        import aiohttp  # noqa: F401
        import opencensus  # noqa: F401
    except ImportError:
        return False
    return True


class LocalCluster:
    """Nodes started with `ray start`, each a process group this object ends."""

    def __init__(self, nodes: int = 2, cpus: int = CPUS_PER_NODE) -> None:
        self.ray = str(Path(sys.executable).with_name("ray"))
        self.temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # socket paths < 108 bytes
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []
        self.nodes, self.cpus = nodes, cpus

    def _start_node(self, head: bool) -> None:
        args = [self.ray, "start", "--block", "--node-ip-address", "127.0.0.1",
                "--num-cpus", str(self.cpus), "--temp-dir", str(self.temp),
                "--disable-usage-stats", "--dashboard-agent-listen-port", str(free_port()),
                "--metrics-export-port", str(free_port())]
        if head:
            dashboard = _has_dashboard()
            args += ["--head", "--port", str(self.port),
                     f"--include-dashboard={str(dashboard).lower()}"]
            if dashboard:
                args += ["--dashboard-port", str(free_port())]
        else:
            args += ["--address", self.address]
        log = (self.temp / f"node-{len(self.procs)}.log").open("wb")
        env = self._env()
        self.procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, env=env,
                                           start_new_session=True))

    def _wait_for_head(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            time.sleep(0.2)
        raise RuntimeError(f"Ray head did not listen on {self.address}: {self.logs()}")

    def _env(self) -> dict[str, str]:
        """The nodes' environment: their own HOME, so an auth token some other Ray left in
        ~/.ray (a local `ray.init()` writes one) does not switch this cluster to token
        authentication, which the tests' drivers (auth mode disabled) then fail against."""
        home = self.temp / "home"
        home.mkdir(exist_ok=True)
        return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "HOME": str(home),
                "RAY_AUTH_MODE": "disabled"}

    def _check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"`ray start` exited with {proc.returncode}: {self.logs()}")

    def _wait_for_nodes(self, deadline: float) -> None:
        """Until the cluster counts every node alive (asked from a separate driver, so
        this process is never connected to Ray by the fixture itself)."""
        code = ("import ray, sys, time\n"
                f"ray.init(address={self.address!r}, log_to_driver=False)\n"
                f"end = time.monotonic() + {deadline - time.monotonic():.0f}\n"
                f"while sum(n['Alive'] for n in ray.nodes()) < {self.nodes}:\n"
                "    if time.monotonic() > end: sys.exit(1)\n"
                "    time.sleep(0.2)\n")
        env = {**self._env(), "RAY_BACKEND_LOG_LEVEL": "fatal"}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              timeout=max(5.0, deadline - time.monotonic() + 30))
        if done.returncode:
            raise RuntimeError(f"Ray nodes did not all join: {done.stderr.decode()[-2000:]} "
                               f"{self.logs()}")

    def start(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        try:
            self._start_node(head=True)
            self._wait_for_head(deadline)
            for _ in range(self.nodes - 1):
                self._start_node(head=False)
            self._wait_for_nodes(deadline)
        except BaseException:
            self.stop()
            raise
        return self.address

    def logs(self) -> str:
        return " | ".join(p.read_text(errors="replace")[-1500:]
                          for p in sorted(self.temp.glob("node-*.log")))

    def processes(self) -> list:
        """Every process of this cluster: the `ray start` sessions and anything naming
        its temp folder (the GCS, raylets, agents, workers)."""
        import psutil

        sessions = {p.pid for p in self.procs}
        mine = []
        for proc in psutil.process_iter(["pid", "cmdline"]):
            try:
                if os.getsid(proc.pid) in sessions or str(self.temp) in " ".join(
                        proc.info["cmdline"] or ()):
                    mine.append(proc)
            except (ProcessLookupError, PermissionError):
                continue
        return [p for p in mine if p.pid != os.getpid()]

    def workers(self, title: str) -> list:
        """This cluster's worker processes whose title starts with `title` (a Ray actor's
        process is titled `ray::<class>`)."""
        found = []
        for proc in self.processes():
            with contextlib.suppress(Exception):
                if " ".join(proc.cmdline()).startswith(title):
                    found.append(proc)
        return found

    def stop(self) -> None:
        import psutil

        for proc in self.procs:  # each node's session: `ray start`, its GCS, raylet, workers
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        end = time.monotonic() + 3  # some ignore SIGTERM for longer than a test should wait
        while time.monotonic() < end and any(p.poll() is None for p in self.procs):
            time.sleep(0.1)
        left = self.processes()
        for proc in left:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(left, timeout=10)
        for proc in self.procs:
            proc.wait()  # reaped, not left a zombie
        shutil.rmtree(self.temp, ignore_errors=True)


@contextlib.contextmanager
def local_cluster(nodes: int = 2, cpus: int = CPUS_PER_NODE) -> Iterator[LocalCluster]:
    """A started cluster, stopped on the way out."""
    cluster = LocalCluster(nodes, cpus)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()

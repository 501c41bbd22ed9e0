"""The served app against a hostile network and a hostile user config: `papersift ui` started
for real on a free port, probed with raw HTTP; its port checks; its death with its parent."""

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ui.cli import main

EXE = Path(sys.executable).parent / "papersift"
# A user's Streamlit config that would switch the protections off; the launched flags win.
HOSTILE_CONFIG = {"STREAMLIT_SERVER_ENABLE_CORS": "false",
                  "STREAMLIT_SERVER_ENABLE_XSRF_PROTECTION": "false",
                  "STREAMLIT_SERVER_ALLOWED_HOSTS": "*"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    """Live processes whose parent is pid (from /proc, Linux)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def request(port: int, path: str, host: str | None, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=True)
        if host is not None:
            conn.putheader("Host", host)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        response.read()
        return response
    finally:
        conn.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`papersift ui` on a free port (no index needed to answer HTTP), and its port."""
    tmp = tmp_path_factory.mktemp("served")
    port = free_port()
    env = {**os.environ, **HOSTILE_CONFIG, "PAPERSIFT_INDEX": str(tmp / "index"),
           "PAPERSIFT_LISTS": str(tmp / "lists.sqlite"), "HF_HUB_OFFLINE": "1"}
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    proc = subprocess.Popen([str(EXE), "ui", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if request(port, "/_stcore/health", f"127.0.0.1:{port}").status == 200:
                break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("papersift ui did not answer within 60 s")
    yield proc, port
    for pid in [proc.pid, *children(proc.pid)]:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=10)


@pytest.mark.parametrize("path", ["/", "/_stcore/health", "/_stcore/stream"])
def test_only_the_loopback_host_names_are_answered(served, path):
    _, port = served
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1.evil.example:{port}", None):
        assert request(port, path, host).status == 400, host
    if path != "/_stcore/stream":  # the WebSocket needs an upgrade; only its refusal is checked
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST"):
            assert request(port, path, host).status == 200, host


def test_a_websocket_under_another_host_name_is_refused(served):
    _, port = served
    upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    assert request(port, "/_stcore/stream", "rebound.example", upgrade).status == 400
    # the same request from a page on another origin, under the right Host, is refused too
    cross = request(port, "/_stcore/stream", f"127.0.0.1:{port}",
                    {**upgrade, "Origin": "http://evil.example"})
    assert cross.status in (403, 400)
    same = request(port, "/_stcore/stream", f"127.0.0.1:{port}",
                   {**upgrade, "Origin": f"http://127.0.0.1:{port}"})
    assert same.status == 101


def test_xsrf_and_cors_protection_stay_on_whatever_the_user_config_says(served):
    _, port = served
    health = request(port, "/_stcore/health", f"127.0.0.1:{port}",
                     {"Origin": "http://evil.example"})
    assert health.getheader("Access-Control-Allow-Origin") in (None, "")
    assert "_streamlit_xsrf=" in (health.getheader("Set-Cookie") or "")


@pytest.mark.parametrize("port", ["99999", "0", "-1"])
def test_a_port_out_of_range_is_one_line_and_exit_1(port, capsys):
    assert main(["ui", "--port", port]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "between 1 and 65535" in err and "Traceback" not in err


def test_a_busy_port_is_one_line_and_exit_1(capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["ui", "--port", str(port)]) == 1
        assert main(["demo", "--port", str(port)]) == 1  # refused before building anything
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and f"port {port} on 127.0.0.1 is in use" in err
    assert not (Path(os.environ["PAPERSIFT_INDEX"])).exists()


def test_the_server_dies_with_papersift_even_on_kill_9(served):
    proc, port = served  # last in this file: it takes the shared server down
    (server,) = children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while alive(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    orphaned = alive(server)
    if orphaned:
        os.kill(server, signal.SIGKILL)
    assert not orphaned, "the Streamlit server outlived a kill -9 of papersift ui"
    with pytest.raises(OSError):
        request(port, "/_stcore/health", f"127.0.0.1:{port}")

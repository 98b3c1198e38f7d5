"""Service management: the systemd units verify, `--check-config` answers, and the server tells systemd
READY=1 (over a notify socket the test binds) only once its store is reachable."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests import binaries
from tests.etcd import EtcdCluster
from tests.ports import free_port

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@binaries.require("systemd-analyze")
def test_units_verify(tmp_path: Path) -> None:
    units = sorted((REPO / "deploy" / "systemd").glob("*.service"))
    assert {u.name for u in units} == {"plasmavmc-server.service", "plasmavmc-agent.service"}
    for unit in units:  # the units name /usr/local/bin; verify them against this checkout's venv
        text = unit.read_text()
        assert "Type=notify" in text
        (tmp_path / unit.name).write_text(text.replace("/usr/local/bin/", f"{BIN}/"))
    verify = subprocess.run(["systemd-analyze", "verify", *(str(tmp_path / u.name) for u in units)],
                            capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr


def test_check_config(tmp_path: Path) -> None:
    good = subprocess.run([str(BIN / "plasmavmc-server"), "-c", str(REPO / "examples/server.toml"), "--check-config"],
                          capture_output=True, text=True, timeout=60)
    assert good.returncode == 0 and "configuration OK" in good.stdout, good.stderr
    env = {**os.environ, "PLASMAVMC_ADDR": "http://127.0.0.1:8080"}  # a CLI-style URL given to the server
    bad = subprocess.run([str(BIN / "plasmavmc-server"), "-c", str(REPO / "examples/server.toml"), "--check-config"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert bad.returncode == 2 and "PLASMAVMC_ENDPOINT" in bad.stderr and "server.addr" in bad.stderr


@contextmanager
def notify_socket(path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    try:
        yield sock
    finally:
        sock.close()


def _messages(sock: socket.socket, proc: subprocess.Popen[bytes], until: str, timeout: float) -> list[str]:
    """Datagrams received until one contains `until`, the process exits, or the deadline passes."""
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(0.2)
        try:
            got.append(sock.recv(4096).decode())
            if until in got[-1]:
                return got
        except TimeoutError:
            if proc.poll() is not None:
                return got
    return got


def _server(tmp_path: Path, endpoint: str, notify: Path, name: str) -> tuple[subprocess.Popen[bytes], int]:
    http = free_port()
    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(
        f'[server]\naddr = "127.0.0.1:{free_port()}"\nmetrics_addr = "127.0.0.1:{http}"\n'
        f'[store]\nbackend = "etcd"\nchainfire_endpoints = ["{endpoint}"]\n'
        f'[image_store]\nbackend = "local"\npath = "{tmp_path}/images"\n[logging]\nlevel = "warning"\n'
    )
    env = {**os.environ, "NOTIFY_SOCKET": str(notify)}
    log = (tmp_path / f"{name}.log").open("wb")
    proc = subprocess.Popen([str(BIN / "plasmavmc-server"), "-c", str(cfg)], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    return proc, http


@binaries.require("etcd")
def test_ready_only_once_the_store_is_reachable(tmp_path: Path) -> None:
    with notify_socket(tmp_path / "notify.sock") as sock:
        # no store: the server gives up, and never said READY
        dead, _ = _server(tmp_path, f"http://127.0.0.1:{free_port()}", tmp_path / "notify.sock", "no-store")
        try:
            said = _messages(sock, dead, "READY=1", 120)
            assert dead.poll() is not None and dead.returncode != 0
            assert not any("READY=1" in m for m in said), said
        finally:
            dead.kill()
            dead.wait(30)
        etcd = EtcdCluster.start(tmp_path / "etcd")
        server, http = _server(tmp_path, etcd.endpoints[0], tmp_path / "notify.sock", "with-store")
        try:
            said = _messages(sock, server, "READY=1", 120)
            assert said and "READY=1" in said[-1], (said, (tmp_path / "with-store.log").read_text()[-2000:])
            with pytest.raises(urllib.error.HTTPError) as answer:  # 503 without agents; the body names the parts
                urllib.request.urlopen(f"http://127.0.0.1:{http}/ready", None, 10).close()
            body = json.loads(answer.value.read())
            assert body["store"] == "ok" and body["agents_online"] == [], body
            server.terminate()
            assert any("STOPPING=1" in m for m in _messages(sock, server, "STOPPING=1", 30))
            assert server.wait(30) == 0
        finally:
            if server.poll() is None:
                server.kill()
                server.wait(30)
            etcd.stop()

"""Real etcd for tests and benchmarks: one member or a cluster, on loopback, in a temp dir.

`EtcdCluster.start(root, members=N)` runs N `etcd` processes (Debian's `etcd-server`, installed by
scripts/setup) on random free loopback ports, each with its own data dir under `root`, and waits until
every member answers `/health`. `kill(i)` ends one member with SIGKILL (as a crash would), `restart(i)`
starts it again on its data dir, `leader_index()` names the raft leader; `stop()` ends them all.
Fixtures built on it live where they are used (tests/contract/conftest.py, tests/e2e).
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests import binaries
from tests.ports import free_port

ETCD = binaries.path("etcd")
needs_etcd = binaries.require("etcd")


@dataclass
class EtcdMember:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def argv(self, initial_cluster: str, token: str) -> list[str]:
        assert ETCD is not None, binaries.missing("etcd")
        flags = {
            "--name": self.name,
            "--data-dir": str(self.data_dir),
            "--listen-client-urls": self.client_url,
            "--advertise-client-urls": self.client_url,
            "--listen-peer-urls": self.peer_url,
            "--initial-advertise-peer-urls": self.peer_url,
            "--initial-cluster": initial_cluster,
            "--initial-cluster-token": token,
            "--initial-cluster-state": "new",
            # a quick election on loopback: tests kill members and wait for a new leader
            "--heartbeat-interval": "50",
            "--election-timeout": "500",
            "--logger": "zap",
            "--log-outputs": "stderr",
        }
        return [ETCD, *(part for flag, value in flags.items() for part in (flag, value))]

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.client_url}/health", timeout=1) as resp:
                return resp.status == 200 and b'"true"' in resp.read()
        except OSError:
            return False

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.running():
            assert self.popen is not None
            self.popen.send_signal(sig)
            self.popen.wait(timeout=30)


@dataclass
class EtcdCluster:
    root: Path
    members: list[EtcdMember] = field(default_factory=list)

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    @classmethod
    def start(cls, root: Path, members: int = 1, timeout: float = 30.0) -> EtcdCluster:
        root.mkdir(parents=True, exist_ok=True)
        cluster = cls(root)
        for i in range(members):
            name = f"etcd{i}"
            cluster.members.append(
                EtcdMember(name, free_port(), free_port(), root / f"{name}.data", root / f"{name}.log")
            )
        initial = ",".join(f"{m.name}={m.peer_url}" for m in cluster.members)
        token = f"plasmavmc-test-{root.name}"
        try:
            for member in cluster.members:
                with member.log.open("ab") as out:
                    member.popen = subprocess.Popen(
                        member.argv(initial, token), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                    )
            cluster.wait_healthy(timeout)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Poll (with a deadline) until every running member reports healthy (it has a leader)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = [m for m in self.members if m.popen is not None]
            for member in live:
                if not member.running():
                    raise AssertionError(f"etcd {member.name} exited:\n{member.log.read_text()[-3000:]}")
            if all(m.healthy() for m in live):
                return
            time.sleep(0.05)  # polling an external process, with a deadline
        raise AssertionError(f"etcd not healthy within {timeout}s:\n{self.members[0].log.read_text()[-3000:]}")

    def kill(self, index: int) -> None:
        self.members[index].kill()

    def restart(self, index: int) -> None:
        """Start a killed member again on its data dir (it rejoins the cluster it was part of)."""
        member = self.members[index]
        assert not member.running(), f"{member.name} is running"
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        with member.log.open("ab") as out:
            member.popen = subprocess.Popen(
                member.argv(initial, f"plasmavmc-test-{self.root.name}"),
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def leader_index(self) -> int | None:
        """The index of the member the running members agree leads raft, or None (an election)."""
        ids: dict[str, int] = {}
        leaders: set[str] = set()
        for i, member in enumerate(self.members):
            if not member.running():
                continue
            request = urllib.request.Request(f"{member.client_url}/v3/maintenance/status", data=b"{}", method="POST")
            try:
                with urllib.request.urlopen(request, timeout=1) as resp:
                    status = json.loads(resp.read())
            except OSError:
                continue
            ids[str(status["header"]["member_id"])] = i
            leaders.add(str(status.get("leader", "")))
        if len(leaders) != 1:
            return None
        return ids.get(leaders.pop())

    def stop(self) -> None:
        for member in self.members:
            with contextlib.suppress(subprocess.TimeoutExpired):
                member.kill(signal.SIGTERM)
            member.kill()

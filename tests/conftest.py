"""Fixtures shared by every test: the project's guest image, free loopback ports, and a real
single-node PlasmaVMC (server + agent processes, SQLite, local image dir, QEMU) in a temp dir.

The guest image is built once (`plasmavmc-build-guest`) into `$PLASMAVMC_GUEST_DIR`
(default /var/cache/plasmavmc/guest; the README's set-up command builds it there) and reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from plasmavmc.client import PlasmaClient
from plasmavmc.images.guest.build import build_guest
from tests import binaries, netns
from tests.ports import free_port

GUEST_DIR = Path(os.environ.get("PLASMAVMC_GUEST_DIR", "/var/cache/plasmavmc/guest"))


def _admin_credential() -> Path:
    """One system-admin API key for the whole test session, in one place: every server a test starts
    registers it as its bootstrap credential (`PLASMAVMC_BOOTSTRAP_CREDENTIAL`, inherited by server
    subprocesses), and every client and CLI finds it (`PLASMAVMC_CREDENTIALS`)."""
    path = Path(tempfile.mkdtemp(prefix="pv-cred-")) / "admin.token"
    path.write_text(f"pvk_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}\n")
    path.chmod(0o600)
    os.environ["PLASMAVMC_BOOTSTRAP_CREDENTIAL"] = str(path)
    os.environ["PLASMAVMC_CREDENTIALS"] = str(path)
    return path


ADMIN_CREDENTIAL = _admin_credential()
QEMU = binaries.path("qemu-system-x86_64")
needs_qemu = binaries.require("qemu-system-x86_64", "qemu-img")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{binaries.MISSING_MARK}(reason): a binary CI requires is missing")


def pytest_runtest_setup(item: pytest.Item) -> None:
    binaries.fail_if_marked(item)


@pytest.fixture(scope="session", autouse=True)
async def _worker_threads_on_the_host() -> None:
    """The session's event loop runs `to_thread` work in the host's network namespace (tests/netns.py)."""
    asyncio.get_running_loop().set_default_executor(netns.host_executor())


@pytest.fixture(scope="session")
def guest_dir() -> Path:
    asyncio.run(build_guest(GUEST_DIR))
    return GUEST_DIR


def wait_http_ready(url: str, check_alive: Callable[[], None], timeout: float, logs: Callable[[], str]) -> None:
    """Poll `url` (a server's /ready) until it answers 200, within `timeout`; `check_alive` raises when one
    of the processes behind it died; `logs` says what the server printed, for the failure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check_alive()
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)  # polling an external process with a deadline
    raise AssertionError(f"{url} not ready in {timeout}s:\n{logs()}")


@dataclass
class Proc:
    argv: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    env: dict[str, str] | None = None  # added to this process's environment

    def start(self) -> None:
        out = self.log.open("ab")
        env = {**os.environ, **self.env} if self.env else None
        self.popen = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                      env=env)
        out.close()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()  # a process that ignores SIGTERM must not outlive its test
                self.popen.wait(timeout=30)
                raise AssertionError(f"{self.argv[2:4]} did not stop within 30 s of signal {sig}") from None

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


@dataclass
class Cluster:
    """One control plane and one agent, really running, on loopback."""

    root: Path
    api: str
    http: str
    server: Proc
    agent: Proc
    node_id: str

    @property
    def agent_http(self) -> str:
        """The agent's HTTP port (/health, /ready, /metrics), as written in its config."""
        addr = tomllib.loads((self.root / "agent.toml").read_text())["agent"]["metrics_addr"]
        return f"http://{addr}"

    @property
    def console(self) -> str:
        """The console gateway's URL (`[server] console_addr` of this cluster's server.toml)."""
        cfg = tomllib.loads((self.root / "server.toml").read_text())
        return f"http://{cfg['server']['console_addr']}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        wait_http_ready(f"{self.http}/ready", self._check_alive, timeout,
                        lambda: self.server.log.read_text()[-3000:])

    def wait_agent_ready(self, timeout: float = 30.0) -> None:
        """The agent's own /ready (its heartbeat taken): after an agent restart, the server's never went."""
        wait_http_ready(f"{self.agent_http}/ready", self._check_alive, timeout,
                        lambda: self.agent.log.read_text()[-3000:])

    def _check_alive(self) -> None:
        for proc in (self.server, self.agent):
            assert proc.popen is not None
            if proc.popen.poll() is not None:
                raise AssertionError(f"{proc.argv[2]} exited:\n{proc.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """Stop agent and server (SIGTERM; a process that does not stop fails the test, killed) and
        every hypervisor process of this cluster."""
        try:
            self.agent.stop()
        finally:
            try:
                self.server.stop()
            finally:
                kill_leftover_qemu(self.root)

    def logs(self) -> str:
        return self.server.log.read_text()[-4000:] + "\n---agent---\n" + self.agent.log.read_text()[-4000:]


def _firecracker_config(root: Path) -> tuple[str, str]:
    """(seed dir of the PVH test guest, agent config section) for a cluster that also runs Firecracker."""
    from tests import firecracker_guest as fc

    # a process of its own: start_cluster is also called from inside event loops (bench/)
    subprocess.run([sys.executable, "-m", "plasmavmc.images.pvh_guest.build", "--out", str(fc.SEED_DIR)],
                   check=True, capture_output=True, timeout=120)
    return str(fc.SEED_DIR), (
        f'[hypervisors.firecracker]\nfc_path = "{fc.FIRECRACKER}"\njailer_path = "{fc.JAILER}"\n'
        f'runtime_dir = "{root}/run/fc"\njailer_uid = {fc.JAIL_UID}\njailer_gid = {fc.JAIL_UID}\n')


def short_run_dir(root: Path) -> Path:
    """`root/run`, as a link to a short path: unix socket paths under a VM's runtime dir must stay under
    108 bytes, which pytest's long temp dirs would exceed. `kill_leftover_qemu` removes the real dir."""
    link = root / "run"
    if not link.exists():
        link.symlink_to(tempfile.mkdtemp(prefix="pv-", dir="/tmp"))
    return link.resolve()


def write_configs(root: Path, guest: Path, node_id: str, firecracker: bool = False,
                  network_provider: str = "none", mvisor: str | None = None,
                  network_extra: str = "") -> tuple[Path, Path, str, str, str]:
    """`mvisor`: the mvisor binary, to enable that backend too (firmware from /usr/local/share/mvisor).
    `network_extra`: TOML lines added to the agent's `[network]` (the OVN provider's endpoints)."""
    run_dir = short_run_dir(root)
    api, http, agent_port, console = free_port(), free_port(), free_port(), free_port()
    seeds, enabled, fc_section = f'"{guest}"', '"kvm"', ""
    if firecracker:
        fc_seed, fc_section = _firecracker_config(root)
        seeds, enabled = f'{seeds}, "{fc_seed}"', '"kvm", "firecracker"'
    if mvisor:
        enabled += ', "mvisor"'
        fc_section += f'[hypervisors.mvisor]\nmvisor_path = "{mvisor}"\nruntime_dir = "{run_dir}/mv"\n'
    server_cfg = root / "server.toml"
    server_cfg.write_text(
        f'[server]\naddr = "127.0.0.1:{api}"\nmetrics_addr = "127.0.0.1:{http}"\n'
        f'console_addr = "127.0.0.1:{console}"\n'
        f'[store]\nbackend = "sqlite"\npath = "{root}/state.db"\n'
        f'[image_store]\nbackend = "local"\npath = "{root}/images"\nseed_dirs = [{seeds}]\n'
        f'[agents]\nheartbeat_timeout_seconds = 10\n[logging]\nlevel = "info"\nformat = "text"\n'
    )
    agent_cfg = root / "agent.toml"
    agent_cfg.write_text(
        f'[agent]\nnode_id = "{node_id}"\ncontrol_plane = "http://127.0.0.1:{api}"\n'
        f'addr = "127.0.0.1:{agent_port}"\nheartbeat_interval_seconds = 1\n'
        f'metrics_addr = "127.0.0.1:{free_port()}"\n'
        f'[hypervisors]\nenabled = [{enabled}]\n[hypervisors.kvm]\nruntime_dir = "{run_dir}/kvm"\n{fc_section}'
        f'[storage]\nimage_cache_dir = "{root}/cache"\nruntime_dir = "{root}/vms"\n'
        # "none" unless a test runs the cluster inside a network namespace of its own: agents in the
        # host's namespace leave NICs bare taps (tests/e2e/test_network_api.py runs the bridge provider)
        f'[network]\nprovider = "{network_provider}"\nbridge_name = "pvapi"\nstate_dir = "{root}/net"\n{network_extra}'
        f'[logging]\nlevel = "info"\nformat = "text"\n'
    )
    return server_cfg, agent_cfg, f"127.0.0.1:{api}", f"http://127.0.0.1:{http}", f"127.0.0.1:{agent_port}"


def start_cluster(root: Path, guest: Path, node_id: str = "node-1", firecracker: bool = False,
                  network_provider: str = "none", mvisor: str | None = None, server_extra: str = "",
                  network_extra: str = "", ready_timeout: float = 30.0) -> Cluster:
    """`server_extra`: TOML appended to the server's config (sections the defaults leave out);
    `network_extra`: TOML lines in the agent's `[network]`; `ready_timeout`: longer for a big seed image
    (the server checks and copies it before it serves)."""
    server_cfg, agent_cfg, api, http, _ = write_configs(root, guest, node_id, firecracker, network_provider,
                                                        mvisor, network_extra)
    server_cfg.write_text(server_cfg.read_text() + server_extra)
    return launch(root, server_cfg, agent_cfg, api, http, node_id, timeout=ready_timeout)


def launch(root: Path, server_cfg: Path, agent_cfg: Path, api: str, http: str, node_id: str,
           timeout: float = 30.0) -> Cluster:
    """Start server and agent from their config files; both are stopped again if they do not get ready."""
    server = Proc([sys.executable, "-m", "plasmavmc.server.main", "-c", str(server_cfg)], root / "server.log")
    agent = Proc([sys.executable, "-m", "plasmavmc.agent.main", "-c", str(agent_cfg)], root / "agent.log")
    server.start()
    agent.start()
    cluster = Cluster(root, api, http, server, agent, node_id)
    try:
        cluster.wait_ready(timeout)
    except BaseException:
        agent.kill()
        server.kill()
        kill_leftover_qemu(root)
        raise
    return cluster


def kill_leftover_qemu(root: Path) -> None:
    """Hypervisor processes outlive the agent by design; a test's own ones are ended with it."""
    for pidfile in [*root.glob("run/kvm/*/*.pid"), *root.glob("run/mv/*/*.pid")]:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
    run = root / "run"
    if run.is_symlink():
        shutil.rmtree(run.resolve(), ignore_errors=True)


@contextlib.contextmanager
def restartable_cluster(root: Path, guest: Path, server_extra: str = "") -> Iterator[Cluster]:
    """A cluster whose agent a test may kill and start again (`cluster.agent.kill()/.start()`): its
    server takes three 1-vCPU VMs on a two-core host (over-commit 4); everything it ran ends with it."""
    server_cfg, agent_cfg, api, http, _ = write_configs(root, guest, "node-1")
    with server_cfg.open("a") as f:
        f.write("[scheduler]\ncpu_overcommit_ratio = 4.0\n" + server_extra)
    c = launch(root, server_cfg, agent_cfg, api, http, "node-1")
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, guest_dir: Path) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    c = start_cluster(root, guest_dir)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
async def client(cluster: Cluster) -> AsyncIterator[PlasmaClient]:
    async with await PlasmaClient.connect(cluster.api) as c:
        yield c

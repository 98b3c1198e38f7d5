"""Real OVN for tests and benchmarks: a central (NB + SB `ovsdb-server`, `ovn-northd`) and nodes (their own
`ovsdb-server` with the Open_vSwitch db, `ovs-vswitchd` on the userspace datapath, `ovn-controller`).

Everything runs from a short temp dir under /tmp (unix socket paths stay under 108 bytes) with the
`OVS_*`/`OVN_*` directories pointed there, never the system's services or /var/run/openvswitch, and is
ended and removed by `stop()`. Processes start in the caller's network namespace, or in `netns` (argv
`ip netns exec`), so a node in its own namespace reaches the central over an underlay. The kernel here
has no openvswitch module: `ovn-bridge-datapath-type=netdev` makes ovn-controller create `br-int` on
the userspace datapath.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests import binaries

CENTRAL_BINARIES = ("ovsdb-server", "ovsdb-tool", "ovn-northd", "ovn-nbctl", "ovn-sbctl")
NODE_BINARIES = ("ovsdb-server", "ovsdb-tool", "ovs-vswitchd", "ovs-vsctl", "ovn-controller")
NB_SCHEMA = Path("/usr/share/ovn/ovn-nb.ovsschema")
SB_SCHEMA = Path("/usr/share/ovn/ovn-sb.ovsschema")
VSWITCH_SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
START_DEADLINE_S = 60.0


def require() -> None:
    """Skip (fail under CI) unless the OVN and Open vSwitch binaries are installed."""
    binaries.require_now(*sorted(set(CENTRAL_BINARIES + NODE_BINARIES)))


def _env(root: Path) -> dict[str, str]:
    dirs = {f"{p}_{k}DIR": str(root) for p in ("OVS", "OVN") for k in ("RUN", "LOG", "DB")}
    return {**os.environ, **dirs}


def _wrap(argv: list[str], netns: str | None) -> list[str]:
    return ["ip", "netns", "exec", netns, *argv] if netns else argv


def wait_for(what: str, check: Callable[[], object], deadline_s: float = START_DEADLINE_S) -> None:
    """Poll `check()` until it returns something true or the deadline passes."""
    end = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > end:
            raise TimeoutError(f"{what} not ready within {deadline_s:.0f} s")
        time.sleep(0.05)


@dataclass
class _Daemons:
    root: Path
    netns: str | None = None
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.root / f"{name}.out", "wb")  # noqa: SIM115 - owned by the child
        self.procs.append(subprocess.Popen(_wrap(argv, self.netns), stdin=subprocess.DEVNULL, stdout=log,
                                           stderr=subprocess.STDOUT, env=_env(self.root)))
        log.close()

    def run(self, argv: list[str], timeout: float = 30.0) -> str:
        done = subprocess.run(_wrap(argv, self.netns), capture_output=True, text=True, timeout=timeout,
                              env=_env(self.root), check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {done.stderr.strip()[-500:]}")
        return done.stdout

    def db(self, name: str, schema: Path, remotes: list[str]) -> None:
        subprocess.run(["ovsdb-tool", "create", str(self.root / f"{name}.db"), str(schema)], check=True)
        argv = ["ovsdb-server", str(self.root / f"{name}.db"), f"--remote=punix:{self.root}/{name}.sock",
                *(f"--remote={r}" for r in remotes), f"--unixctl={self.root}/{name}.ctl",
                f"--log-file={self.root}/{name}.log"]
        self.spawn(name, argv)
        wait_for(f"ovsdb-server {name}", (self.root / f"{name}.sock").exists)

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in reversed(self.procs):
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(15)
        self.procs.clear()
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class OvnCentral:
    """NB and SB databases (unix sockets in `root`, plus TCP on `listen`) and ovn-northd."""

    daemons: _Daemons
    listen: str
    nb_port: int
    sb_port: int

    @property
    def root(self) -> Path:
        return self.daemons.root

    @property
    def nb_unix(self) -> str:
        return f"unix:{self.root}/nb.sock"

    @property
    def nb_tcp(self) -> str:
        return f"tcp:{self.listen}:{self.nb_port}"

    @property
    def sb_unix(self) -> str:
        return f"unix:{self.root}/sb.sock"

    @property
    def sb_tcp(self) -> str:
        return f"tcp:{self.listen}:{self.sb_port}"

    @classmethod
    def start(cls, listen: str | None = "127.0.0.1", netns: str | None = None) -> OvnCentral:
        """`listen`: also serve NB and SB on TCP there (None: unix sockets only, e.g. loopback down)."""
        from tests.ports import free_port
        d = _Daemons(Path(tempfile.mkdtemp(prefix="pvovn-c-", dir="/tmp")), netns)
        try:
            central = cls(d, listen or "", free_port() if listen else 0, free_port() if listen else 0)
            d.db("nb", NB_SCHEMA, [f"ptcp:{central.nb_port}:{listen}"] if listen else [])
            d.db("sb", SB_SCHEMA, [f"ptcp:{central.sb_port}:{listen}"] if listen else [])
            d.spawn("northd", ["ovn-northd", f"--ovnnb-db=unix:{d.root}/nb.sock", f"--ovnsb-db=unix:{d.root}/sb.sock",
                               f"--unixctl={d.root}/northd.ctl", f"--log-file={d.root}/northd.log"])
            wait_for("ovn-northd", lambda: (d.root / "northd.ctl").exists())
        except BaseException:
            d.stop()
            raise
        return central

    def owned(self, prefix: str) -> list[str]:
        """Every NB row marked as the provider's (`external_ids:plasmavmc-owner=prefix`): leak checks."""
        tables = ("Logical_Switch", "Logical_Router", "Logical_Switch_Port", "Port_Group", "DHCP_Options")
        return [f"{t}:{row}" for t in tables for row in self.nbctl(
            "--bare", "--columns=_uuid", "find", t, f"external_ids:plasmavmc-owner={prefix}").split()]

    def nbctl(self, *args: str) -> str:
        return self.daemons.run(["ovn-nbctl", f"--db=unix:{self.root}/nb.sock", *args])

    def sbctl(self, *args: str) -> str:
        return self.daemons.run(["ovn-sbctl", f"--db=unix:{self.root}/sb.sock", *args])

    def stop(self) -> None:
        self.daemons.stop()


@dataclass
class OvnNode:
    """One chassis: its Open_vSwitch db, ovs-vswitchd (userspace datapath) and ovn-controller."""

    daemons: _Daemons
    chassis: str

    @property
    def root(self) -> Path:
        return self.daemons.root

    @property
    def ovs_db(self) -> str:
        return f"unix:{self.root}/conf.sock"

    @classmethod
    def start(cls, central: OvnCentral, chassis: str, encap_ip: str = "127.0.0.1", netns: str | None = None,
              sb_remote: str | None = None, underlay: str | None = None) -> OvnNode:
        """`underlay`: an interface whose address (`encap_ip`/24) moves to an OVS bridge `br-phy`: the
        userspace datapath sends Geneve only out of its own bridges (native tunnelling)."""
        d = _Daemons(Path(tempfile.mkdtemp(prefix="pvovn-n-", dir="/tmp")), netns)
        node = cls(d, chassis)
        try:
            d.db("conf", VSWITCH_SCHEMA, [])
            node.vsctl("--no-wait", "init")
            # the userspace datapath reads a guest's TCP with the checksum left to offload (virtio-net over
            # a tap with vnet headers); without TSO/vnet-header support conntrack sees a bad checksum and
            # OVN's stateful ACLs drop it (ICMP, checksummed in full, passes)
            node.vsctl("--no-wait", "set", "Open_vSwitch", ".", "other_config:userspace-tso-enable=true")
            d.spawn("vswitchd", ["ovs-vswitchd", node.ovs_db, f"--unixctl={d.root}/vswitchd.ctl",
                                 f"--log-file={d.root}/vswitchd.log"])
            if underlay:
                node.vsctl("add-br", "br-phy", "--", "set", "Bridge", "br-phy", "datapath_type=netdev", "--",
                           "add-port", "br-phy", underlay)
                d.run(["ip", "addr", "flush", "dev", underlay])
                d.run(["ip", "addr", "add", f"{encap_ip}/24", "dev", "br-phy"])
                d.run(["ip", "link", "set", "br-phy", "up"])
            node.vsctl("--no-wait", "set", "Open_vSwitch", ".", f"external_ids:system-id={chassis}",
                       f"external_ids:ovn-remote={sb_remote or central.sb_unix}",
                       "external_ids:ovn-encap-type=geneve", f"external_ids:ovn-encap-ip={encap_ip}",
                       "external_ids:ovn-bridge-datapath-type=netdev", f"external_ids:hostname={chassis}")
            d.spawn("controller", ["ovn-controller", node.ovs_db, f"--log-file={d.root}/controller.log"])
            wait_for(f"chassis {chassis} in the SB", lambda: chassis in central.sbctl(
                "--bare", "--columns=name", "list", "Chassis"))
            wait_for("br-int", lambda: "br-int" in node.vsctl("list-br"))
        except BaseException:
            d.stop()
            raise
        return node

    def uplink(self, device: str, physnet: str = "plasmavmc-external") -> None:
        """`device` on an OVS bridge `br-ex` mapped to `physnet` (the egress NAT gateway's uplink)."""
        self.vsctl("--may-exist", "add-br", "br-ex", "--", "set", "Bridge", "br-ex", "datapath_type=netdev", "--",
                   "--may-exist", "add-port", "br-ex", device)
        self.vsctl("set", "Open_vSwitch", ".", f"external_ids:ovn-bridge-mappings={physnet}:br-ex")

    def vsctl(self, *args: str) -> str:
        return self.daemons.run(["ovs-vsctl", f"--db={self.ovs_db}", "--timeout=20", *args])

    def stop(self) -> None:
        self.daemons.stop()


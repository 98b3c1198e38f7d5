"""dnsmasq per network (Debian `dnsmasq-base`): DHCP only, static leases for exactly the API's addresses.

Each network gets a state dir with `hosts` (one `MAC,IP` line per port) and a pidfile. dnsmasq runs in
`static` mode (`--dhcp-range=<net>,static`), so it answers only MACs listed in `hosts` and hands each the
address the control plane assigned; a changed host list is re-read on SIGHUP. The process daemonizes and
outlives the agent like a hypervisor process; it is found again through its pidfile, guarded by a marker
(its state dir) in its argv against pid reuse. DNS is off (`--port=0`).
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from pathlib import Path

from plasmavmc.network.bridge import daemon
from plasmavmc.types.network import Network, PortRequest

DNSMASQ = "dnsmasq"
LEASE_TIME = "12h"


def argv(network: Network, bridge: str, state: Path) -> list[str]:
    subnet = network.subnet
    return [
        DNSMASQ, "--conf-file=/dev/null", "--port=0", "--no-resolv", "--no-hosts", "--bind-interfaces",
        f"--interface={bridge}", "--except-interface=lo", "--user=root", "--group=root",
        f"--pid-file={state / 'dnsmasq.pid'}", f"--dhcp-hostsfile={state / 'hosts'}",
        f"--dhcp-leasefile={state / 'leases'}", f"--log-facility={state / 'dnsmasq.log'}",
        f"--dhcp-range={subnet.network_address},static,{subnet.netmask},{LEASE_TIME}",
        f"--dhcp-option=option:router,{network.gateway_ip}", "--dhcp-authoritative", "--log-dhcp",
    ]


def write_hosts(state: Path, ports: Sequence[PortRequest]) -> None:
    lines = [f"{p.mac_address},{p.ip_addresses[0]}\n" for p in ports if p.ip_addresses]
    tmp = state / "hosts.tmp"
    tmp.write_text("".join(lines))
    tmp.replace(state / "hosts")


def running(state: Path) -> bool:
    return daemon.running_pid(state / "dnsmasq.pid", str(state)) is not None


async def ensure(network: Network, bridge: str, state: Path, ports: Sequence[PortRequest]) -> None:
    """dnsmasq serving `ports` on `bridge`: started if not running, else told to re-read its hosts."""
    state.mkdir(parents=True, exist_ok=True)
    write_hosts(state, ports)
    if not daemon.signal_daemon(state / "dnsmasq.pid", str(state), signal.SIGHUP):
        await daemon.start(argv(network, bridge, state), cwd=state)


async def stop(state: Path) -> None:
    await daemon.stop(state / "dnsmasq.pid", str(state))

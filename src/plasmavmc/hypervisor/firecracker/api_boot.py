"""Booting a waiting Firecracker (one from the warm pool) over its API: the `--config-file` document
(`spec.vm_config`), sent as the API's PUTs in Firecracker's order, then InstanceStart.

The config file and the API take the same bodies; only the addressing differs: drives and network
interfaces are PUT one by one under their ids, every other section at its own path. Machine config
comes first (the other devices are sized from it); InstanceStart answers once the vCPUs run. They go
out together, pipelined (Firecracker answers in order): under load each round trip is a scheduler
wake-up of ours and of Firecracker's API thread, so one instead of five matters.
"""

from __future__ import annotations

from typing import Any

from plasmavmc.hypervisor.firecracker.api import FirecrackerApi

_LISTS = {"drives": "drive_id", "network-interfaces": "iface_id"}  # section -> the id its items are PUT under


def requests(config: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(path, body) of every PUT that configures what `config` describes, machine config first."""
    ordered = sorted(config.items(), key=lambda item: item[0] != "machine-config")
    out: list[tuple[str, dict[str, Any]]] = []
    for section, body in ordered:
        if section in _LISTS:
            out += [(f"/{section}/{item[_LISTS[section]]}", item) for item in body]
        else:
            out.append((f"/{section}", body))
    return out


async def boot(api: FirecrackerApi, config: dict[str, Any]) -> None:
    """Configure the VM and start it (returns once it runs): every PUT and InstanceStart pipelined on one
    connection (`FirecrackerApi.put_all`), one round trip."""
    await api.put_all([*requests(config), ("/actions", {"action_type": "InstanceStart"})])

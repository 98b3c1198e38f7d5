"""The cloud-init NoCloud seed of a VM: what goes in it (pure renderers) and the ISO 9660 `cidata` image
that carries it (pycdlib, Rock Ridge + Joliet names), written atomically next to the VM's disks.

Files: `meta-data` (instance-id = VM id, local-hostname = `spec.cloud_init.hostname` or the VM's name,
`public-keys` = the SSH keys: cloud-init installs them for the image's default user), `user-data` (the
user's text as given, or an empty `#cloud-config`), `network-config` (v2: each NIC matched by the MAC the
VM gets, DHCP — the network provider's DHCP hands out exactly the address the API assigned). Every value
is rendered as JSON (valid YAML), never spliced into YAML text. The seed is rebuilt at every start, so a
NIC attached or detached meanwhile is in the next boot's network-config.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pycdlib

from plasmavmc.hypervisor.common import mac_address, write_atomic
from plasmavmc.types.vm import CloudInitSpec, VirtualMachine

SEED_LABEL = "cidata"
SEED_FILE = "cidata.iso"
EMPTY_USER_DATA = "#cloud-config\n{}\n"


def hostname(vm: VirtualMachine, spec: CloudInitSpec) -> str:
    return spec.hostname or vm.name


def meta_data(vm: VirtualMachine, spec: CloudInitSpec) -> dict[str, Any]:
    data: dict[str, Any] = {"instance-id": vm.id, "local-hostname": hostname(vm, spec)}
    if spec.ssh_authorized_keys:
        data["public-keys"] = list(spec.ssh_authorized_keys)
    return data


def network_config(vm: VirtualMachine) -> dict[str, Any]:
    ethernets = {
        nic.id: {"match": {"macaddress": mac_address(vm.id, nic)}, "dhcp4": True} for nic in vm.spec.network
    }
    return {"version": 2, "ethernets": ethernets}


def seed_files(vm: VirtualMachine, spec: CloudInitSpec) -> dict[str, bytes]:
    """File name -> content of the seed of `vm`."""
    def as_yaml(data: dict[str, Any]) -> bytes:
        return (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()

    return {
        "meta-data": as_yaml(meta_data(vm, spec)),
        "user-data": (spec.user_data or EMPTY_USER_DATA).encode(),
        "network-config": as_yaml(network_config(vm)),
    }


def iso_image(files: dict[str, bytes]) -> bytes:
    """An ISO 9660 image labelled `cidata` holding `files` under their long names (Rock Ridge, Joliet)."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=SEED_LABEL)
    try:
        for index, (name, data) in enumerate(sorted(files.items())):
            iso.add_fp(io.BytesIO(data), len(data), f"/SEED{index}.;1", rr_name=name, joliet_path=f"/{name}")
        out = io.BytesIO()
        iso.write_fp(out)
        return out.getvalue()
    finally:
        iso.close()


def write_seed(directory: Path, vm: VirtualMachine) -> Path | None:
    """(Re)write `directory/cidata.iso` for `vm`; None (and no file) when the VM has no cloud-init spec."""
    path = directory / SEED_FILE
    if vm.spec.cloud_init is None:
        path.unlink(missing_ok=True)
        return None
    write_atomic(path, iso_image(seed_files(vm, vm.spec.cloud_init)))
    path.chmod(0o600)  # it holds the user-data secret
    return path

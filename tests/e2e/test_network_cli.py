"""Networks through the API and the `plasmavmc network` CLI (real server; simulated nodes, no datapath).

Create/list/get/delete, the `default` network made by the first VM that asks for it, NIC MAC and IPv4
in `vm get`, a fixed address honoured and a taken one refused, delete refused while a NIC is on the
network, `max_networks` counted, and bad input answered INVALID_ARGUMENT naming the field (nothing made).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from plasmavmc.errors import AlreadyExists, InvalidArgument, InvalidState, PlasmaError, QuotaExceeded
from plasmavmc.types.node import NodeCapacity
from plasmavmc.types.quota import ResourceLimits
from plasmavmc.types.vm import NetworkSpec, VmSpec
from tests.e2e.simulated import SIM, NodeSpec, sim_cluster, sim_spec
from tests.e2e.test_scheduler_cli import cli, cli_json

ORG, PROJECT = "org-c", "proj-c"


def _nic_spec(network: str, ip: str | None = None) -> VmSpec:
    return dataclasses.replace(sim_spec(), network=(NetworkSpec(id="nic0", network_id=network, ip_address=ip),))


async def test_networks_api_and_cli(tmp_path: Path, guest_dir: Path) -> None:
    specs: list[NodeSpec] = [("sim-1", NodeCapacity(8, 65536, 1000), {})]
    async with sim_cluster(tmp_path, guest_dir, specs) as c:
        made = await cli_json(c.api, "network", "create", "backend", "--cidr", "10.40.0.0/24", "--egress-nat")
        assert made["cidr"] == "10.40.0.0/24" and made["egress_nat"] and made["dhcp"] and made["vni"] > 0
        code, out, _ = await cli(c.api, "network", "list")
        assert code == 0 and "backend" in out and "10.40.0.1" in out
        assert (await cli_json(c.api, "network", "get", "backend"))["id"] == made["id"]

        code, _, err = await cli(c.api, "network", "create", "bad", "--cidr", "10.40.0.7/24")
        assert code != 0 and "network.cidr" in err
        with pytest.raises(InvalidArgument) as bad:
            await c.client.create_network(ORG, PROJECT, "bad", "10.41.0.0/24", gateway="10.99.0.1")
        assert bad.value.field == "network.gateway"
        with pytest.raises(AlreadyExists):
            await c.client.create_network(ORG, PROJECT, "backend", "10.42.0.0/24")
        assert [n.name for n in await c.client.list_networks(ORG, PROJECT)] == ["backend"]

        vm = await c.client.create_vm("web", ORG, PROJECT, _nic_spec("default"), SIM)
        nic = (await c.client.get_vm(ORG, PROJECT, vm.id)).spec.network[0]
        assert nic.mac_address and nic.ip_address and nic.ip_address.startswith("10.0.0.")
        default = await c.client.get_network(ORG, PROJECT, "default")
        assert nic.network_id == default.id
        code, out, _ = await cli(c.api, "vm", "get", "web")
        assert code == 0 and nic.ip_address in out and nic.mac_address in out

        fixed = await c.client.create_vm("db", ORG, PROJECT, _nic_spec("backend", "10.40.0.77"), SIM)
        assert fixed.spec.network[0].ip_address == "10.40.0.77"
        with pytest.raises(AlreadyExists) as taken:
            await c.client.create_vm("db2", ORG, PROJECT, _nic_spec("backend", "10.40.0.77"), SIM)
        assert taken.value.field == "ip_address"
        with pytest.raises(InvalidState):
            await c.client.delete_network(ORG, PROJECT, "backend")
        await c.client.delete_vm(ORG, PROJECT, fixed.id, force=True)
        await c.client.delete_network(ORG, PROJECT, "backend")
        assert [n.name for n in await c.client.list_networks(ORG, PROJECT)] == ["default"]

        await c.client.set_quota(ORG, PROJECT, ResourceLimits(max_networks=1))
        with pytest.raises(QuotaExceeded):
            await c.client.create_network(ORG, PROJECT, "second", "10.43.0.0/24")
        assert (await c.client.get_quota(ORG, PROJECT)).usage.networks == 1


async def test_security_groups_api_and_cli(tmp_path: Path, guest_dir: Path) -> None:
    specs: list[NodeSpec] = [("sim-1", NodeCapacity(8, 65536, 1000), {})]
    async with sim_cluster(tmp_path, guest_dir, specs) as c:
        assert (await cli_json(c.api, "sg", "create", "web"))["rules"] == []
        got = await cli_json(c.api, "sg", "rule-add", "web", "--protocol", "tcp", "--port", "8000-8080",
                             "--remote-cidr", "10.0.0.0/8")
        assert got["rules"][0]["port_min"] == 8000 and got["rules"][0]["port_max"] == 8080
        got = await cli_json(c.api, "sg", "rule-add", "web", "--protocol", "icmp", "--remote-group", "web")
        assert len(got["rules"]) == 2 and got["rules"][1]["remote_group"] == "web"
        code, out, _ = await cli(c.api, "sg", "get", "web")
        assert code == 0 and "8000-8080" in out and "group web" in out
        for argv, field in ((["--protocol", "icmp", "--port", "22"], "port_min"),
                            (["--remote-cidr", "10.0.0.300/8"], "remote_cidr")):
            code, _, err = await cli(c.api, "sg", "rule-add", "web", *argv)
            assert code != 0 and field in err, err
        assert len((await c.client.get_security_group(ORG, PROJECT, "web")).rules) == 2  # nothing changed
        with pytest.raises(InvalidArgument) as reserved:
            await c.client.create_security_group(ORG, PROJECT, "default")
        assert reserved.value.field == "name"

        spec = dataclasses.replace(sim_spec(), network=(NetworkSpec(id="nic0", security_groups=("web",)),))
        vm = await c.client.create_vm("api", ORG, PROJECT, spec, SIM)
        assert vm.spec.network[0].security_groups == ("web",)
        missing = dataclasses.replace(sim_spec(), network=(NetworkSpec(id="nic0", security_groups=("nope",)),))
        with pytest.raises(PlasmaError) as nope:
            await c.client.create_vm("api2", ORG, PROJECT, missing, SIM)
        assert nope.value.field == "spec.network[0].security_groups[0]"
        with pytest.raises(InvalidState):
            await c.client.delete_security_group(ORG, PROJECT, "web")
        assert (await cli_json(c.api, "sg", "rule-remove", "web", "1"))["rules"][0]["protocol"] == "icmp"
        await c.client.delete_vm(ORG, PROJECT, vm.id, force=True)
        await c.client.delete_security_group(ORG, PROJECT, "web")
        assert await c.client.list_security_groups(ORG, PROJECT) == []

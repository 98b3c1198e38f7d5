"""The key layout of the state store (spec §8.1), in one place.

Every id or name that reaches a key has been validated by `plasmavmc.validation` first; these helpers
re-check that no part contains `/` so a key can never escape its prefix.
"""

from __future__ import annotations

ROOT = "plasmavmc/"
VMS = ROOT + "vms/"
IMAGES = ROOT + "images/"
NODES = ROOT + "nodes/"
NAMES = ROOT + "names/"
ASSIGNMENTS = ROOT + "scheduler/assignments/"
PENDING = ROOT + "scheduler/pending/"
RESTARTS = ROOT + "scheduler/restarts/"  # automatic restarts due: restarts/<vm id> -> the VM's record key
ANTI_AFFINITY = ROOT + "scheduler/anti_affinity/"
QUOTAS = ROOT + "quotas/"
NETWORKS = ROOT + "networks/"  # tenant networks: networks/<org>/<project>/<id>
PORTS = ROOT + "ports/"  # a NIC's port: ports/<network id>/<port id>
IPAM = ROOT + "ipam/"  # an address claim: ipam/<network id>/<ip> -> port id (compare-and-swap)
SECGROUPS = ROOT + "secgroups/"  # security groups: secgroups/<org>/<project>/<name>
VNIS = ROOT + "vnis/"  # an overlay segment claim: vnis/<vni> -> network id
SERVERS = ROOT + "servers/"  # live control-plane replicas, each key under its lease (server/leader.py)
QUARANTINE = ROOT + "quarantine/"  # unreadable records moved aside (store/records.quarantine)
EVENTS = ROOT + "events/"  # VM events, written with the change they describe (core/vms/events.py)
LEADER = ROOT + "leader"  # the elected replica's server id, under its lease
LIVENESS = ROOT + "liveness"  # the leader's table of node heartbeat times, one key (core/nodes/liveness.py)
IAM = ROOT + "iam/"  # identity records (iam/model.py)
AUDIT = ROOT + "audit/"  # audit entries, oldest first (iam/audit.py)


def _part(value: str) -> str:
    if not value or "/" in value or value in (".", ".."):
        raise ValueError(f"invalid key part {value!r}")
    return value


def vm(org_id: str, project_id: str, vm_id: str) -> str:
    return f"{VMS}{_part(org_id)}/{_part(project_id)}/{_part(vm_id)}"


def vms_in(org_id: str | None = None, project_id: str | None = None) -> str:
    if org_id is None:
        return VMS
    if project_id is None:
        return f"{VMS}{_part(org_id)}/"
    return f"{VMS}{_part(org_id)}/{_part(project_id)}/"


def vm_name(org_id: str, project_id: str, name: str) -> str:
    """Claims a VM name within its project: value is the VM id (names are unique per project, §7.4)."""
    return f"{NAMES}vm/{_part(org_id)}/{_part(project_id)}/{_part(name)}"


def image(org_id: str, image_id: str) -> str:
    """Public images live under `images/public/`, the others under their org."""
    return f"{IMAGES}{_part(org_id)}/{_part(image_id)}"


def public_image(image_id: str) -> str:
    return f"{IMAGES}public/{_part(image_id)}"


def node(node_id: str) -> str:
    return f"{NODES}{_part(node_id)}"


def assignment(vm_id: str) -> str:
    return f"{ASSIGNMENTS}{_part(vm_id)}"


def restart(vm_id: str) -> str:
    return f"{RESTARTS}{_part(vm_id)}"


def pending(timestamp_ns: int, vm_id: str) -> str:
    return f"{PENDING}{timestamp_ns:020d}/{_part(vm_id)}"


def anti_affinity(org_id: str, project_id: str, group: str, node_id: str) -> str:
    """Claims a node for one VM of an anti-affinity group (value: the VM id); see scheduler/cache.py."""
    return f"{ANTI_AFFINITY}{_part(org_id)}/{_part(project_id)}/{_part(group)}/{_part(node_id)}"


def quota(org_id: str, project_id: str = "") -> str:
    """The quota record (limits and usage) of an org (project_id "") or of one project."""
    if not project_id:
        return f"{QUOTAS}org/{_part(org_id)}"
    return f"{QUOTAS}project/{_part(org_id)}/{_part(project_id)}"


def vm_events_in(org_id: str, project_id: str, vm_id: str | None = None) -> str:
    """The events of one VM, or (vm_id None) of every VM of a project."""
    base = f"{EVENTS}{_part(org_id)}/{_part(project_id)}/"
    return base if vm_id is None else f"{base}{_part(vm_id)}/"


def vm_event(org_id: str, project_id: str, vm_id: str, stamp: str) -> str:
    """One event; `stamp` sorts by time within the VM (nanoseconds, then a random tail)."""
    return f"{vm_events_in(org_id, project_id, vm_id)}{_part(stamp)}"


def network(org_id: str, project_id: str, network_id: str) -> str:
    return f"{NETWORKS}{_part(org_id)}/{_part(project_id)}/{_part(network_id)}"


def networks_in(org_id: str, project_id: str) -> str:
    return f"{NETWORKS}{_part(org_id)}/{_part(project_id)}/"


def network_name(org_id: str, project_id: str, name: str) -> str:
    """Claims a network name within its project: value is the network id."""
    return f"{NAMES}network/{_part(org_id)}/{_part(project_id)}/{_part(name)}"


def port(network_id: str, port_id: str) -> str:
    return f"{PORTS}{_part(network_id)}/{_part(port_id)}"


def ports_in(network_id: str) -> str:
    return f"{PORTS}{_part(network_id)}/"


def address(network_id: str, ip: str) -> str:
    return f"{IPAM}{_part(network_id)}/{_part(ip)}"


def addresses_in(network_id: str) -> str:
    return f"{IPAM}{_part(network_id)}/"


def vni(number: int) -> str:
    return f"{VNIS}{number:08d}"


def secgroup(org_id: str, project_id: str, name: str) -> str:
    return f"{SECGROUPS}{_part(org_id)}/{_part(project_id)}/{_part(name)}"


def secgroups_in(org_id: str, project_id: str) -> str:
    return f"{SECGROUPS}{_part(org_id)}/{_part(project_id)}/"


def iam_org(org_id: str) -> str:
    return f"{IAM}orgs/{_part(org_id)}"


def iam_project(org_id: str, project_id: str) -> str:
    return f"{IAM}projects/{_part(org_id)}/{_part(project_id)}"


def iam_projects_in(org_id: str) -> str:
    return f"{IAM}projects/{_part(org_id)}/"


def iam_principal(principal_id: str) -> str:
    return f"{IAM}principals/{_part(principal_id)}"


def iam_bindings_of(principal_id: str) -> str:
    return f"{IAM}bindings/{_part(principal_id)}/"


def iam_binding(principal_id: str, role: str, org_id: str, project_id: str) -> str:
    """One role binding; `*` stands for the empty (system / whole-org) scope parts."""
    return f"{iam_bindings_of(principal_id)}{_part(role)}/{_part(org_id or '*')}/{_part(project_id or '*')}"


def iam_api_key(key_id: str) -> str:
    return f"{IAM}api_keys/{_part(key_id)}"


def iam_signing_key(kid: str) -> str:
    return f"{IAM}signing_keys/{_part(kid)}"


def audit_entry(timestamp_ns: int, entry_id: str) -> str:
    return f"{AUDIT}{timestamp_ns:020d}/{_part(entry_id)}"

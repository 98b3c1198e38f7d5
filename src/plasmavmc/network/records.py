"""A provider's port records on the node: `<state_dir>/ports/<port id>.json`, the `PortRequest` as told.

Records are the truth after an agent restart (`restore` re-plumbs each), and what `ports()`/`vm_ports()`
describe. Writes are atomic (temp file + rename), so a crash leaves the old or the new record.
"""

from __future__ import annotations

from pathlib import Path

from plasmavmc.errors import NotFound
from plasmavmc.network.checks import ID
from plasmavmc.types import codec
from plasmavmc.types.network import Port, PortRequest


class PortRecords:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "ports"
        self.dir.mkdir(parents=True, exist_ok=True)

    def all(self) -> list[PortRequest]:
        return [codec.loads(PortRequest, p.read_bytes()) for p in sorted(self.dir.glob("*.json"))]

    def get(self, port_id: str) -> PortRequest:
        """The record of `port_id`, or `NotFound` (field port_id)."""
        path = self.dir / f"{port_id}.json"
        if not ID.fullmatch(port_id) or not path.exists():
            raise NotFound(f"port {port_id[:80]!r} is not plumbed on this node", field="port_id")
        return codec.loads(PortRequest, path.read_bytes())

    def save(self, req: PortRequest) -> None:
        tmp = self.dir / f"{req.port_id}.json.tmp"
        tmp.write_bytes(codec.dumps(req))
        tmp.replace(self.dir / f"{req.port_id}.json")

    def remove(self, port_id: str) -> None:
        (self.dir / f"{port_id}.json").unlink(missing_ok=True)


def port_of(req: PortRequest) -> Port:
    """The spec §10.2 `Port` a request was plumbed as."""
    return Port(
        id=req.port_id, network_id=req.network.id, mac_address=req.mac_address,
        ip_addresses=req.ip_addresses, security_groups=tuple(g.id for g in req.security_groups),
        tap_device=req.tap_device,
    )

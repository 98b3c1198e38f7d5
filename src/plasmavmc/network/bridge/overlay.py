"""A network's overlay forwarding on this node, as the control plane last told it: `overlay.json` in the
network's state dir (flood peers, per-MAC FDB entries, the store revision of the view) and its VXLAN device.

`save` keeps only a view at least as new as the recorded one (pushes racing each other converge on the
newest); `apply` makes the VXLAN device's flood list and static FDB entries exactly the recorded ones —
at every push and when the network is plumbed again (agent restart).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from plasmavmc.network.bridge import links

FILE = "overlay.json"


@dataclass(frozen=True)
class Overlay:
    peers: frozenset[str] = frozenset()
    fdb: frozenset[tuple[str, str]] = frozenset()  # (MAC, remote underlay address)
    revision: int = 0


def load(net_dir: Path) -> Overlay:
    path = net_dir / FILE
    if not path.exists():
        return Overlay()
    data = json.loads(path.read_text())
    return Overlay(frozenset(data["peers"]), frozenset((m, r) for m, r in data["fdb"]), int(data["revision"]))


def save(net_dir: Path, view: Overlay) -> bool:
    """Record `view` unless an older one than the recorded; returns whether it was recorded."""
    if view.revision < load(net_dir).revision:
        return False
    tmp = net_dir / f"{FILE}.tmp"
    tmp.write_text(json.dumps({"peers": sorted(view.peers), "fdb": sorted(view.fdb), "revision": view.revision}))
    tmp.replace(net_dir / FILE)
    return True


async def apply(vxlan: str, net_dir: Path) -> None:
    view = load(net_dir)
    await links.set_flood_peers(vxlan, set(view.peers))
    await links.set_fdb(vxlan, dict(view.fdb))

"""A network's gateway has one value everywhere: the record, GetNetwork/ListNetworks (so `network get -o
yaml/json`), the table and the datapath all show the computed address when none was given."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from plasmavmc.core.networks import networks
from plasmavmc.store import keys
from plasmavmc.store.sqlite import SqliteStore
from plasmavmc.types import codec

ORG, PROJ = "org-g", "proj-g"


async def test_gateway_is_stored_and_read_back(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "state.db")
    try:
        made = await networks.create(store, networks.NetworkRequest(ORG, PROJ, "n1", "10.44.0.0/24"))
        assert made.gateway == made.gateway_ip == "10.44.0.1"
        given = await networks.create(store, networks.NetworkRequest(ORG, PROJ, "n2", "10.45.0.0/24", "10.45.0.9"))
        assert given.gateway == "10.45.0.9"
        # a record written before the gateway was stored ("") reads back with the address it uses
        key = keys.network(ORG, PROJ, made.id)
        await store.put(key, codec.dumps(dataclasses.replace(made, gateway="")))
        assert (await networks.get(store, ORG, PROJ, "n1")).gateway == "10.44.0.1"
        listed = {n.name: n.gateway for n in await networks.list_networks(store, ORG, PROJ)}
        assert listed == {"n1": "10.44.0.1", "n2": "10.45.0.9"}
    finally:
        await store.close()

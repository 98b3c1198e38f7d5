"""`RunVm` on the control plane (a spec extension): a create with `start` whose answer streams on with the
VM's serial console, as `GetConsole` with `follow` would, in the same call.

The node's agent is asked for both in one call too (its RunVm): the create+start's answer, then the
console, which the agent sends as soon as it has it, so it reaches the server beside the create's last
commit (`lifecycle.provision` hands the rest of that call to `CreateVm.console`): a caller who wants the
VM and its output pays one round trip from the client and no second lookup, authorization and agent call
after the create. The stream yields the VM (RUNNING, as CreateVm with `start` answers it) first, then
the console's bytes in order; gRPC's flow control paces the node's stream to the caller's reading.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import replace

from plasmavmc.core.context import Core
from plasmavmc.core.vms import lifecycle
from plasmavmc.types.vm import VirtualMachine


async def run(core: Core, req: lifecycle.CreateVm) -> AsyncIterator[VirtualMachine | bytes]:
    """Create and start the VM `req` describes, then its console: the VM first, then its output."""
    consoles: list[AsyncGenerator[bytes]] = []  # the node's console, once the create hands it over
    try:
        vm = await lifecycle.create(core, replace(req, start=True, console=consoles.append))
        yield vm
        async for chunk in consoles[0]:  # every create with `start` hands it over before it answers
            yield chunk
    finally:
        for console in consoles:
            await console.aclose()  # the node's call ends with the caller's stream

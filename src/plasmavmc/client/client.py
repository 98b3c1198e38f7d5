"""`PlasmaClient`: the async Python client of the PlasmaVMC API (spec §5.3).

    async with await PlasmaClient.connect("http://127.0.0.1:8080") as client:
        vm = await client.create_vm("web-1", "org-1", "proj-1", VmSpec(...))
        await client.start_vm("org-1", "proj-1", vm.id)
        async for event in client.watch_vm("org-1", "proj-1", vm.id):
            print(event.state)

Methods take and return the domain dataclasses of `plasmavmc.types`, never protobuf messages, and raise
the `PlasmaError` subclasses of `plasmavmc.errors` (a server that cannot be reached at all raises
`ConnectionFailed`, an `Unavailable`). One class per service would scatter the connection handling, so
the service methods live in mixins over one shared `ClientBase`.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType

from plasmavmc.client.base import ClientTls
from plasmavmc.client.endpoints import Endpoints
from plasmavmc.client.iam import IamMixin
from plasmavmc.client.images import ImageMixin
from plasmavmc.client.networks import NetworkMixin, SecurityGroupMixin
from plasmavmc.client.nodes import NodeMixin
from plasmavmc.client.quotas import QuotaMixin
from plasmavmc.client.vms import VmMixin
from plasmavmc.config.credentials import default_credential


class PlasmaClient(VmMixin, NodeMixin, ImageMixin, QuotaMixin, IamMixin, NetworkMixin, SecurityGroupMixin):
    """A client of one PlasmaVMC server or several replicas; VM, node, image, quota, IAM and network methods."""

    @classmethod
    async def connect(
        cls,
        addr: str | Sequence[str],
        *,
        tls: ClientTls | None = None,
        token: str | None = None,
        call_timeout: float | None = None,
    ) -> PlasmaClient:
        """A client of the server at `addr` (`http://host:port`, `https://host:port` or `host:port`), or
        of several replicas: a list, or a comma-separated string. Calls go to one endpoint and move to
        the next while it cannot be reached (`answered_by` says which one answered last).

        `https://` or `tls` make a TLS channel (mTLS with a client cert/key). `token` (a token or API
        key) is sent as `authorization: Bearer <token>` with every call; None looks it up as
        `client/credentials.py` says, "" sends none. `call_timeout` is the deadline of each unary call in
        seconds (None: no deadline). The channel connects lazily: an unreachable server shows up as
        `ConnectionFailed` on the first call.
        """
        credential = default_credential() if token is None else token
        return cls(Endpoints(addr, tls), token=credential or None, call_timeout=call_timeout)

    async def close(self) -> None:
        """Close the channels, cancelling calls still in flight."""
        await self._endpoints.close()

    async def __aenter__(self) -> PlasmaClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

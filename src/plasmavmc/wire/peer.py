"""Who is calling, from the TLS peer certificate: identity lookup for servicers, and an interceptor that
lets through only callers whose identity a predicate accepts (the agent serves only the control plane).

gRPC has already verified the peer's chain against the configured CA (`grpc_tls.py` requires a client
certificate whenever a CA is set); this module reads the identity the verified certificate names
(`pki/identity.py`). A refused call is PERMISSION_DENIED before its handler runs, so it changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from plasmavmc.errors import PermissionDenied
from plasmavmc.pki import identity
from plasmavmc.pki.identity import Identity
from plasmavmc.wire.status import to_grpc_status

log = logging.getLogger(__name__)
Check = Callable[[Identity | None], bool]


def peer_identity(context: Any) -> Identity | None:
    """The plasmavmc identity of the caller's verified certificate; None without one."""
    pems = context.auth_context().get("x509_pem_cert")
    return identity.of_pem(pems[0]) if pems else None


def _gate(allowed: Check, what: str) -> Callable[[Any, str], Awaitable[None]]:
    async def check(context: Any, method: str) -> None:
        who = peer_identity(context)
        if not allowed(who):
            log.warning("refused %s from %s (%s): %s required", method, context.peer(), who or "no identity", what)
            err = PermissionDenied(f"{method} requires the certificate of {what}; the caller presented {who or 'none'}")
            await context.abort_with_status(to_grpc_status(err))

    return check


def _wrap(handler: grpc.RpcMethodHandler, method: str, check: Callable[[Any, str], Awaitable[None]]) -> Any:
    ser, de = handler.response_serializer, handler.request_deserializer
    if handler.unary_unary or handler.stream_unary:
        inner_u = handler.unary_unary or handler.stream_unary

        async def one(request: Any, context: Any) -> Any:
            await check(context, method)
            return await inner_u(request, context)

        make = grpc.unary_unary_rpc_method_handler if handler.unary_unary else grpc.stream_unary_rpc_method_handler
        return make(one, request_deserializer=de, response_serializer=ser)
    inner_s = handler.unary_stream or handler.stream_stream

    async def many(request: Any, context: Any) -> AsyncIterator[Any]:
        await check(context, method)
        async for item in inner_s(request, context):
            yield item

    make = grpc.unary_stream_rpc_method_handler if handler.unary_stream else grpc.stream_stream_rpc_method_handler
    return make(many, request_deserializer=de, response_serializer=ser)


class RequirePeer(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Every RPC of the server answers PERMISSION_DENIED unless `allowed(caller's identity)`."""

    def __init__(self, allowed: Check, what: str) -> None:
        self._check = _gate(allowed, what)

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        return self.wrap(handler, str(handler_call_details.method))

    def wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        """The gated handler of `method` (its full name), the same for every call (a `wire/chain.py` layer)."""
        return _wrap(handler, method.rsplit("/", 1)[-1], self._check)


def control_plane_only() -> RequirePeer:
    cp = identity.control_plane()
    return RequirePeer(lambda who: who == cp, f"the control plane ({cp})")

"""`MethodChain`: a gRPC server's per-method layers (the API server's: observing, request guard,
authentication; the agent's: observing, the caller's certificate, request guard) applied once per
method when its handler is registered, and every method served through ONE generic handler.

Each layer is a `Layer`: `wrap(handler, method)` returns the handler that serves `method` with the layer's
work around the inner one. What a layer adds depends on the method only, never on one call (per-call
values — request id, caller — are read inside the wrapped behaviour from the call's context), so the
chain layers each method once and keeps the result.

Services register on the chain as they would on a server (`add_*Servicer_to_server(servicer, chain)`:
the chain takes `add_registered_method_handlers` and `add_generic_rpc_handlers`); `serve_on(server)` then
installs the chain as the server's only handler, and the server has no interceptors. Why not register
on the server itself: grpc.aio waits for each registered method's next call with `asyncio.wait` over
one future per registered method, every time a call arrives — with the ~70 methods of the API that loop
cost more per call than all our layers (measured in `bench/read_scale_bench.py`'s notes). Through one
generic handler it waits on one future; and with no interceptor, grpc runs no interceptor coroutine per
call: finding a method is one dict lookup. Methods found only through a generic handler registered
here are layered on their first call and kept (bounded by the services served); unknown names are not.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import grpc


class Layer(Protocol):
    def wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        """`handler` with this layer's work around it, for every call of `method`."""


class MethodChain(grpc.GenericRpcHandler):  # type: ignore[misc]
    """`layers` in order, the first outermost (as `grpc.aio.server(interceptors=layers)` would run them)."""

    def __init__(self, layers: Sequence[Layer]) -> None:
        self._inside_out = tuple(reversed(layers))
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}
        self._generic: list[grpc.GenericRpcHandler] = []

    def _layered(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        for layer in self._inside_out:
            handler = layer.wrap(handler, method)
        self._handlers[method] = handler
        return handler

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        """Layer and keep every method of `service` (what generated `add_*Servicer_to_server` calls)."""
        for name, handler in handlers.items():
            self._layered(handler, f"/{service}/{name}")

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        """Ask `handlers` for the methods not registered by name (their handlers layered on first use)."""
        self._generic.extend(handlers)

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = str(handler_call_details.method)
        handler = self._handlers.get(method)
        if handler is not None:
            return handler
        for generic in self._generic:
            found = generic.service(handler_call_details)
            if found is not None:
                return self._layered(found, method)
        return None

    def serve_on(self, server: grpc.aio.Server) -> None:
        """Make this chain the one handler of `server` (a server made without interceptors)."""
        server.add_generic_rpc_handlers((self,))

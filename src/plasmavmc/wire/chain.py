"""`MethodChain`: the server's per-method layers (observing, request guard, authentication) run as ONE
gRPC interceptor, and each method's layered handler built once.

Each layer is a `Layer`: `wrap(handler, method)` returns the handler that serves `method` with the layer's
work around the inner one. What a layer adds depends on the method only, never on one call (per-call
values — request id, caller — are read inside the wrapped behaviour from the call's context), so the
chain wraps a method the first time a call names it and keeps the result: per call it costs one dict
lookup, where a list of interceptors costs one coroutine and one freshly built handler per layer.
Method names without a handler are not kept, so the cache is bounded by the services served.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import grpc

Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]


class Layer(Protocol):
    def wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        """`handler` with this layer's work around it, for every call of `method`."""


class MethodChain(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """`layers` in order, the first outermost (as `grpc.aio.server(interceptors=layers)` would run them)."""

    def __init__(self, layers: Sequence[Layer]) -> None:
        self._inside_out = tuple(reversed(layers))
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(self, continuation: Continuation, details: grpc.HandlerCallDetails) -> Any:
        method = str(details.method)
        handler = self._handlers.get(method)
        if handler is None:
            handler = await continuation(details)
            if handler is None:
                return None
            for layer in self._inside_out:
                handler = layer.wrap(handler, method)
            self._handlers[method] = handler
        return handler

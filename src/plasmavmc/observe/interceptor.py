"""The server interceptor every gRPC call passes through: request id, log fields, per-RPC metrics.

For each call it binds the log context (`logctx`: request id from `x-request-id` or a new one, the
method, and the org / project / VM / node the request names; the auth interceptor after it adds the
authenticated principal), counts it by service, method and
status code (`plasmavmc_grpc_server_handled_total`) and times it (`..._handling_seconds`). Streams
are timed until they end. The request id reaches the client in error answers (`api/edge.py`).
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import grpc

from plasmavmc.observe import logctx
from plasmavmc.observe.metrics import RPC_HANDLED, RPC_SECONDS

Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def _request_id(offered: str) -> str:
    """The caller's `x-request-id` when it is a plain token (it reaches logs and answers), else a new one."""
    return offered if REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex[:16]


def _scope_of(request: Any) -> dict[str, str]:
    """org / project / VM id named by a request (a `vm` VmRef, or `org_id` / `project_id` fields)."""
    fields = getattr(getattr(request, "DESCRIPTOR", None), "fields_by_name", {})
    ref = request.vm if "vm" in fields and hasattr(request.vm, "org_id") else request
    names = getattr(getattr(ref, "DESCRIPTOR", None), "fields_by_name", {})
    out = {"org": "org_id", "project": "project_id", "vm_id": "vm_id", "node": "node_id"}
    return {k: str(getattr(ref, v))[:128] for k, v in out.items() if v in names}


async def _items(result: Any) -> AsyncIterator[Any]:
    """A streaming handler's answers: an async generator's items, or none for one that writes through
    `context.write` and returns a coroutine (grpc's own health service does)."""
    if hasattr(result, "__aiter__"):
        async for item in result:
            yield item
    else:
        await result


def _code(context: Any, exc: BaseException | None) -> str:
    code = context.code() if hasattr(context, "code") else None
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    if exc is None:
        return "OK"
    return "CANCELLED" if isinstance(exc, BaseException) and not isinstance(exc, Exception) else "UNKNOWN"


Bind = Callable[[Any], float]
Done = Callable[[float, Any, "BaseException | None"], None]


@contextlib.contextmanager
def _observed(bind: Bind, done: Done, request: Any, context: Any) -> Iterator[None]:
    started = bind(request)
    try:
        yield
    except BaseException as err:
        done(started, context, err)
        raise
    done(started, context, None)


def _answering(inner: Any, bind: Bind, done: Done, single: bool) -> Any:
    """Wrap a handler that answers one message (unary-unary, stream-unary); `single`: its request is
    one message whose fields name the scope (otherwise a stream)."""

    async def call(request: Any, context: Any) -> Any:
        with _observed(bind, done, request if single else None, context):
            return await inner(request, context)

    return call


def _streaming(inner: Any, bind: Bind, done: Done, single: bool) -> Any:
    """Wrap a handler that answers a stream (unary-stream, stream-stream); timed until it ends."""

    async def call(request: Any, context: Any) -> AsyncIterator[Any]:
        with _observed(bind, done, request if single else None, context):
            async for item in _items(inner(request, context)):
                yield item

    return call


_KINDS = (  # handler attribute, wrapper, request is one message, grpc's handler factory
    ("unary_unary", _answering, True, grpc.unary_unary_rpc_method_handler),
    ("unary_stream", _streaming, True, grpc.unary_stream_rpc_method_handler),
    ("stream_unary", _answering, False, grpc.stream_unary_rpc_method_handler),
    ("stream_stream", _streaming, False, grpc.stream_stream_rpc_method_handler),
)


class ObservingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    async def intercept_service(self, continuation: Continuation, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        full = str(details.method)
        service, _, method = full.strip("/").rpartition("/")
        metadata = {k: v for k, v in (details.invocation_metadata or ()) if isinstance(v, str)}
        fields = {"request_id": _request_id(metadata.get("x-request-id", "")), "method": method}

        def bind(request: Any) -> float:
            logctx.bind(**fields, **(_scope_of(request) if request is not None else {}))
            return time.perf_counter()

        def done(started: float, context: Any, exc: BaseException | None) -> None:
            RPC_HANDLED.labels(service, method, _code(context, exc)).inc()
            RPC_SECONDS.labels(service, method).observe(time.perf_counter() - started)

        for attr, wrap, single, factory in _KINDS:
            inner = getattr(handler, attr)
            if inner is not None:
                return factory(wrap(inner, bind, done, single), handler.request_deserializer,
                               handler.response_serializer)
        return handler

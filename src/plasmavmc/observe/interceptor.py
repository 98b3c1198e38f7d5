"""The server interceptor every gRPC call passes through: request id, log fields, per-RPC metrics.

For each call it binds the log context (`logctx`: request id from `x-request-id` or a new one, the
method, and the org / project / VM / node the request names; the auth interceptor after it adds the
authenticated principal), counts it by service, method and
status code (`plasmavmc_grpc_server_handled_total`) and times it (`..._handling_seconds`). Streams
are timed until they end. The request id reaches the client in error answers (`api/edge.py`).

It runs on every call (heartbeats included), so what can be worked out once is: the metric children
of a method (`_Method`, one per method name), which fields of a request type name the scope (`_plan`,
one per message class), and the wrapped handler itself (`wrap`, kept per method by `wire/chain.py`'s
`MethodChain`). Per call there is no label lookup and no handler built.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import grpc

from plasmavmc.observe import logctx
from plasmavmc.observe.callmeta import first_values
from plasmavmc.observe.metrics import RPC_HANDLED, RPC_SECONDS

Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_SCOPE = (("org", "org_id"), ("project", "project_id"), ("vm_id", "vm_id"), ("node", "node_id"))


def _request_id(offered: str) -> str:
    """The caller's `x-request-id` when it is a plain token (it reaches logs and answers), else a new one."""
    return offered if offered and REQUEST_ID.fullmatch(offered) else logctx.new_request_id()


def _offered_id(context: Any) -> str:
    return first_values(context).get("x-request-id", "")


@cache
def _plan(cls: Any) -> tuple[bool, tuple[tuple[str, str], ...]]:
    """For a request class: whether its scope is in a `vm` VmRef field, and (log field, attribute) pairs
    of the org / project / VM / node fields it has."""
    fields: Any = getattr(getattr(cls, "DESCRIPTOR", None), "fields_by_name", {})
    ref: Any = getattr(fields.get("vm"), "message_type", None)
    names = ref.fields_by_name if ref is not None and "org_id" in ref.fields_by_name else fields
    return names is not fields, tuple((k, v) for k, v in _SCOPE if v in names)


def _scope_of(request: Any) -> dict[str, str]:
    """org / project / VM id named by a request (a `vm` VmRef, or `org_id` / `project_id` fields)."""
    via_vm, attrs = _plan(request.__class__)
    ref = request.vm if via_vm else request
    return {k: str(getattr(ref, v))[:128] for k, v in attrs}


@dataclass
class _Method:
    """One method's metric children: the latency histogram, and a counter per status code seen."""

    service: str
    name: str
    seconds: Any = None
    handled: dict[str, Any] = field(default_factory=dict)

    def done(self, started: float, context: Any, exc: BaseException | None) -> None:
        code = _code(context, exc)
        counter = self.handled.get(code)
        if counter is None:
            counter = self.handled[code] = RPC_HANDLED.labels(self.service, self.name, code)
        counter.inc()
        self.seconds.observe(time.perf_counter() - started)


@cache
def _method(full: str) -> _Method:
    """Per method name, made when the first call that has a handler arrives (so names are bounded)."""
    service, _, name = full.strip("/").rpartition("/")
    return _Method(service, name, RPC_SECONDS.labels(service, name))


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
    return "CANCELLED" if not isinstance(exc, Exception) else "UNKNOWN"


@dataclass(frozen=True)
class _Call:
    """What each call of one method binds and reports to; `single`: its request is one message naming
    the scope."""

    method: _Method
    single: bool

    def begin(self, request: Any, context: Any) -> float:
        logctx.bind_one("request_id", _request_id(_offered_id(context)))
        logctx.bind_one("method", self.method.name)
        if self.single:
            via_vm, attrs = _plan(request.__class__)
            ref = request.vm if via_vm else request
            for name, attr in attrs:  # as `_scope_of`, without a dict per call
                logctx.bind_one(name, str(getattr(ref, attr))[:128])
        return time.perf_counter()


def _answering(inner: Any, call: _Call) -> Any:
    """Wrap a handler that answers one message (unary-unary, stream-unary)."""

    async def answer(request: Any, context: Any) -> Any:
        started = call.begin(request, context)
        try:
            result = await inner(request, context)
        except BaseException as err:
            call.method.done(started, context, err)
            raise
        call.method.done(started, context, None)
        return result

    return answer


def _streaming(inner: Any, call: _Call) -> Any:
    """Wrap a handler that answers a stream (unary-stream, stream-stream); timed until it ends."""

    async def answer(request: Any, context: Any) -> AsyncIterator[Any]:
        started = call.begin(request, context)
        try:
            async for item in _items(inner(request, context)):
                yield item
        except BaseException as err:
            call.method.done(started, context, err)
            raise
        call.method.done(started, context, None)

    return answer


_KINDS = (  # handler attribute, wrapper, request is one message, grpc's handler factory
    ("unary_unary", _answering, True, grpc.unary_unary_rpc_method_handler),
    ("unary_stream", _streaming, True, grpc.unary_stream_rpc_method_handler),
    ("stream_unary", _answering, False, grpc.stream_unary_rpc_method_handler),
    ("stream_stream", _streaming, False, grpc.stream_stream_rpc_method_handler),
)


class ObservingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    async def intercept_service(self, continuation: Continuation, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        return None if handler is None else self.wrap(handler, str(details.method))

    def wrap(self, handler: Any, method: str) -> Any:
        """The observed handler of `method`, the same for every call (a `wire/chain.py` layer)."""
        for attr, wrap, single, factory in _KINDS:
            inner = getattr(handler, attr)
            if inner is not None:
                return factory(wrap(inner, _Call(_method(method), single)), handler.request_deserializer,
                               handler.response_serializer)
        return handler

"""The request guard every gRPC port runs first (public API, AgentService on server and agent).

A gRPC interceptor that, before any servicer code runs, turns each request into either a checked
message or an INVALID_ARGUMENT answer naming the field:

- bytes that do not decode as the method's request type (the stock gRPC answer would be UNKNOWN);
- an enum field holding a number the proto does not define (proto3 enums are open: the parser keeps it);
- an UNSPECIFIED value inside a repeated enum or a map of enums (a list of "nothing" is never meant);
- a string or bytes field longer than `MAX_FIELD_BYTES` (the field-specific limits live in
  `validation.py`; this is the floor under all of them), or a repeated field / map with more than
  `MAX_REPEATED` entries (`LONG_LISTS`: the few lists allowed more).

A request of a type without enum fields (at any depth) whose encoding is no longer than both floors is
not walked: no string in it can be longer, nor any list have more entries, than its encoding has bytes
(a GetVm costs a decode, not a decode and a walk).

Every call gets a request id (the observing interceptor's, or one bound here): an exception that escapes
a servicer answers INTERNAL carrying the id, and the log has the traceback with the same id.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from plasmavmc.errors import InvalidArgument, PlasmaError
from plasmavmc.limits import MAX_FIELD_BYTES, MAX_NODE_VMS, MAX_REPEATED
from plasmavmc.observe import logctx
from plasmavmc.wire.status import to_grpc_status

log = logging.getLogger(__name__)
#: image upload chunks are the one field allowed to be large (gRPC's own 4 MiB message cap bounds them)
BULK_FIELDS = frozenset({"plasmavmc.v1.UploadImageRequest.chunk"})
#: the lists allowed past `MAX_REPEATED`: a node's heartbeat names each of its VMs
LONG_LISTS = {
    "plasmavmc.agent.v1.HeartbeatRequest.vms": MAX_NODE_VMS,
    "plasmavmc.agent.v1.HeartbeatRequest.gone_vm_ids": MAX_NODE_VMS,
}
DRAIN_SECONDS = 1.0


class _Undecodable:
    """What the guarded deserializer returns for bytes that are not a message of the method's type."""

    def __init__(self, error: PlasmaError) -> None:
        self.error = error


def request_id() -> str:
    """This call's request id: the observing interceptor's (`observe/logctx`), or a new one bound now,
    so that every answer and log line of a port that does not observe can still be matched."""
    rid = logctx.get("request_id")
    if not rid:
        rid = logctx.new_request_id()
        logctx.bind(request_id=rid)
    return rid


def internal(method: str, exc: BaseException) -> PlasmaError:
    """The INTERNAL error to answer for an unexpected exception, logged with its traceback and the
    request id (which `to_grpc_status` adds to the answer)."""
    log.error("unexpected error in %s (request id %s)", method, request_id(), exc_info=exc)
    return PlasmaError(f"internal error in {method}: {type(exc).__name__}")


@dataclass(frozen=True)
class _Rule:
    """What the guard checks of one field, worked out once per field descriptor."""

    name: str
    message: bool = False
    enum: frozenset[int] | None = None  # the numbers the enum defines
    enum_name: str = ""
    sized: bool = False  # a string or bytes field under MAX_FIELD_BYTES
    repeated: bool = False
    max_entries: int = MAX_REPEATED  # of a repeated field or map
    key: _Rule | None = None  # set for a map: its key and value rules
    value: _Rule | None = None


@functools.cache
def _rule(fd: FieldDescriptor) -> _Rule:
    if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        fields = fd.message_type.fields_by_name
        return _Rule(fd.name, repeated=True, key=_rule(fields["key"]), value=_rule(fields["value"]))
    enum = fd.enum_type
    return _Rule(
        fd.name,
        message=fd.type == FieldDescriptor.TYPE_MESSAGE,
        enum=None if enum is None else frozenset(enum.values_by_number),
        enum_name="" if enum is None else enum.name,
        sized=fd.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES) and fd.full_name not in BULK_FIELDS,
        repeated=fd.is_repeated,
        max_entries=LONG_LISTS.get(fd.full_name, MAX_REPEATED),
    )


def _check_value(rule: _Rule, value: Any, where: str, in_list: bool) -> None:
    if rule.message:
        check_message(value, f"{where}.")
    elif rule.enum is not None:
        if value not in rule.enum:
            raise InvalidArgument(where, f"{value} is not a {rule.enum_name} value")
        if in_list and value == 0:
            raise InvalidArgument(where, f"the UNSPECIFIED {rule.enum_name} is not allowed in a list")
    elif rule.sized and len(value) > MAX_FIELD_BYTES:
        raise InvalidArgument(where, f"longer than {MAX_FIELD_BYTES} bytes ({len(value)})")


@functools.cache
def _rules(desc: Descriptor) -> dict[str, _Rule]:
    """The rule of each field of a message type (one lookup per message checked, not per field)."""
    return {fd.name: _rule(fd) for fd in desc.fields}


def check_message(msg: Message, prefix: str = "") -> None:
    """Raise `InvalidArgument` naming the first field of `msg` the guard refuses (see module docstring)."""
    rules = _rules(msg.DESCRIPTOR)
    for fd, value in msg.ListFields():
        rule = rules[fd.name]
        if not rule.repeated:
            _check_value(rule, value, prefix + rule.name, False)
            continue
        where = prefix + rule.name
        if len(value) > rule.max_entries:
            raise InvalidArgument(where, f"at most {rule.max_entries} entries")
        if rule.key is not None and rule.value is not None:
            for key in value:
                _check_value(rule.key, key, f"{where}[{str(key)[:40]}]", False)
                _check_value(rule.value, value[key], f"{where}[{str(key)[:40]}]", True)
        elif rule.message or rule.enum is not None or rule.sized:
            for i, item in enumerate(value):
                _check_value(rule, item, f"{where}[{i}]", True)


def _has_enums(desc: Descriptor, seen: frozenset[str] = frozenset()) -> bool:
    """Whether a message of this type can hold an enum value anywhere (map values and nested messages
    included; a type met again inside itself adds nothing new)."""
    seen |= {desc.full_name}
    for fd in desc.fields:
        if fd.enum_type is not None:
            return True
        inner = fd.message_type
        if inner is not None and inner.full_name not in seen and _has_enums(inner, seen):
            return True
    return False


def _decoder(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    cls = getattr(deserialize, "__self__", None)
    desc = getattr(cls, "DESCRIPTOR", None)
    small = min(MAX_REPEATED, MAX_FIELD_BYTES) if isinstance(desc, Descriptor) and not _has_enums(desc) else -1

    def decode(data: bytes) -> Any:
        if deserialize is None:
            return data
        try:
            msg = deserialize(data)
        except Exception as exc:
            type_name = getattr(cls, "__name__", "request")
            return _Undecodable(InvalidArgument("request", f"not a valid {type_name} message ({type(exc).__name__})"))
        if len(data) <= small:
            return msg
        try:
            check_message(msg, "")
        except InvalidArgument as err:
            return _Undecodable(err)
        return msg

    return decode


async def _refuse(context: Any, err: PlasmaError) -> None:
    await context.abort_with_status(to_grpc_status(err, request_id()))


async def _checked_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for item in requests:
        if isinstance(item, _Undecodable):
            raise item.error
        yield item


async def _drain(requests: Any) -> None:
    """Read what is left of a refused request stream (bounded by `DRAIN_SECONDS`) before the status
    goes out: a server that answers a bidirectional stream before reading it races the client's
    writes, and the client then sees a transport INTERNAL instead of our answer."""
    async def read_all() -> None:
        async for _ in requests:
            pass

    with contextlib.suppress(Exception):
        await asyncio.wait_for(read_all(), DRAIN_SECONDS)


class _Draining:
    """The servicer context of a request-streaming call: before an abort sends the status, the rest of
    the request stream is read (see `_drain`). Everything else is the real context."""

    def __init__(self, context: grpc.aio.ServicerContext, requests: Any) -> None:
        self._context = context
        self._requests = requests

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    async def abort(self, *args: Any, **kwargs: Any) -> None:
        await _drain(self._requests)
        await self._context.abort(*args, **kwargs)

    async def abort_with_status(self, status: grpc.Status) -> None:
        await _drain(self._requests)
        await self._context.abort_with_status(status)


async def _fail(context: Any, exc: Exception, method: str) -> None:
    """Answer for `exc`, which escaped the servicer: our errors as they are, anything else INTERNAL."""
    if isinstance(exc, grpc.aio.AbortError):
        raise exc
    await _refuse(context, exc if isinstance(exc, PlasmaError) else internal(method, exc))


def _guard(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    """`handler` with its requests decoded and checked by the guard, and unexpected errors given ids."""
    kind = ("stream" if handler.request_streaming else "unary") + "_" + (
        "stream" if handler.response_streaming else "unary")
    behavior: Callable[..., Any] = getattr(handler, kind)

    async def first(request: Any, context: Any) -> Any:
        if isinstance(request, _Undecodable):
            await _refuse(context, request.error)
        if handler.request_streaming:
            return _checked_stream(request)
        return request

    def ctx(request: Any, context: grpc.aio.ServicerContext) -> Any:
        return _Draining(context, request) if handler.request_streaming else context

    async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        """`unary_out` for a unary request, without awaiting `first` (the path every GetVm takes)."""
        request_id()
        try:
            if request.__class__ is _Undecodable:
                await _refuse(context, request.error)
            return await behavior(request, context)
        except Exception as exc:
            await _fail(context, exc, method)

    async def unary_out(request: Any, context: grpc.aio.ServicerContext) -> Any:
        request_id()
        context = ctx(request, context)
        try:
            return await behavior(await first(request, context), context)
        except Exception as exc:
            await _fail(context, exc, method)

    async def stream_out(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        request_id()
        context = ctx(request, context)
        try:
            async for item in behavior(await first(request, context), context):
                yield item
        except Exception as exc:
            await _fail(context, exc, method)

    wrapped = stream_out if handler.response_streaming else unary_out if handler.request_streaming else unary_unary
    make = getattr(grpc, f"{kind}_rpc_method_handler")
    result: grpc.RpcMethodHandler = make(
        wrapped, request_deserializer=_decoder(handler.request_deserializer),
        response_serializer=handler.response_serializer,
    )
    return result


class RequestGuard(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Install with `grpc.aio.server(interceptors=[RequestGuard()])` on every port (or as a layer of a
    `MethodChain`)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return self.wrap(handler, handler_call_details.method)

    def wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        """The guarded handler of `method`, the same for every call (a `wire/chain.py` layer)."""
        return _guard(handler, method)

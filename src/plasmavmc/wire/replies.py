"""Registering a servicer whose methods may answer with their reply already serialized.

A read served from a kept copy (GetVm from the watched record, a ListVms page of them) holds each VM as
the bytes of its message, made once per change; parsing them into a message only for gRPC to serialize
it again was most of such a call's own cost. `add_servicer` registers every method of a service as the
generated `add_*Servicer_to_server` does (same names, request types, streaming kinds), with one
difference: a reply that is `bytes` is sent as it is, anything else is serialized as usual.

`list_reply` assembles a list response (`repeated Message items = 1; string next_page_token = 2;`, the
shape of every List* reply) from items that are serialized already: a message's encoding is the
concatenation of its fields' encodings, so nothing is parsed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

_KINDS = {  # (client streaming, server streaming) -> grpc's handler factory and the servicer's behaviour
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def bytes_or(serialize: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    """A response serializer that sends serialized replies as they are."""

    def serializer(reply: Any) -> bytes:
        return reply if reply.__class__ is bytes else serialize(reply)

    return serializer


def _handler(servicer: object, method: MethodDescriptor) -> grpc.RpcMethodHandler:
    request = message_factory.GetMessageClass(method.input_type)
    reply = message_factory.GetMessageClass(method.output_type)
    make = _KINDS[(method.client_streaming, method.server_streaming)]
    handler: grpc.RpcMethodHandler = make(
        getattr(servicer, method.name), request_deserializer=request.FromString,
        response_serializer=bytes_or(reply.SerializeToString),
    )
    return handler


def add_servicer(server: Any, servicer: object, service: ServiceDescriptor) -> None:
    """Serve every method of `service` from `servicer` (its methods may return serialized bytes) on
    `server` (a `grpc.aio.Server`, or a `wire/chain.MethodChain`)."""
    handlers = {method.name: _handler(servicer, method) for method in service.methods}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def list_reply(items: Iterable[bytes], next_page_token: str) -> bytes:
    """The serialized list response holding `items` (each a serialized message) and the token."""
    parts = [b"\x0a" + _varint(len(item)) + item for item in items]  # field 1, length-delimited
    if next_page_token:
        token = next_page_token.encode()
        parts.append(b"\x12" + _varint(len(token)) + token)  # field 2, length-delimited
    return b"".join(parts)

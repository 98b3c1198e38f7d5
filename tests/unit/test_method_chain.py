"""`wire/chain.py`: the server's layers applied once per method (first layer outermost), served through
one generic handler; methods registered by name are layered at registration, those only a generic
handler knows on their first call; names without a handler are neither layered nor kept."""

from __future__ import annotations

from typing import Any

import grpc
import grpc.aio
import pytest

from plasmavmc.wire.chain import MethodChain

ECHO = "/test.Chain/Echo"
GENERIC = "/test.Generic/Echo"


class Tagging:
    """A layer that records each wrap and adds its tag to the answer around the inner one."""

    def __init__(self, tag: bytes) -> None:
        self.tag = tag
        self.wrapped: list[str] = []

    def wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        self.wrapped.append(method)
        inner = handler.unary_unary

        async def tagged(request: bytes, context: Any) -> bytes:
            return self.tag + b"(" + await inner(request, context) + b")"

        made: grpc.RpcMethodHandler = grpc.unary_unary_rpc_method_handler(tagged)
        return made


async def echo(request: bytes, context: Any) -> bytes:
    return request


async def test_layers_wrap_each_method_once_first_outermost() -> None:
    outer, inner = Tagging(b"outer"), Tagging(b"inner")
    chain = MethodChain([outer, inner])
    chain.add_registered_method_handlers("test.Chain", {"Echo": grpc.unary_unary_rpc_method_handler(echo)})
    assert outer.wrapped == inner.wrapped == [ECHO]  # at registration
    generic = {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    chain.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Generic", generic),))
    server = grpc.aio.server()
    chain.serve_on(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            for method in (ECHO, GENERIC):
                for i in range(5):
                    answer = await channel.unary_unary(method)(str(i).encode(), timeout=10)
                    assert answer == f"outer(inner({i}))".encode()
            for _ in range(2):
                with pytest.raises(grpc.aio.AioRpcError) as missing:
                    await channel.unary_unary("/test.Chain/Nope")(b"", timeout=10)
                assert missing.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await server.stop(None)
    assert outer.wrapped == inner.wrapped == [ECHO, GENERIC]  # once for five calls each; the unknown never

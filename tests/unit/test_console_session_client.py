"""The control plane's ConsoleSession client (`core/agents.py`) against real grpc.aio servers: a refusal
reaches the caller as the agent's own error however fast keys come (no write of ours in flight when the
agent answers, grpc/grpc#36066), and keys flow once the agent has said the session is open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest

from plasmavmc.core.agents import AgentClient
from plasmavmc.errors import VmNotFound
from plasmavmc.types.node import Node
from plasmavmc.types.vm import ConsoleType
from plasmavmc.v1 import agent_pb2_grpc, vm_pb2
from plasmavmc.wire.status import to_grpc_status


class Refusing(agent_pb2_grpc.AgentServiceServicer):
    """Refuses every session once it has read its first message, as an agent does for a VM it lacks."""

    async def ConsoleSession(self, request_iterator: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        await anext(aiter(request_iterator), None)
        await context.abort_with_status(to_grpc_status(VmNotFound("no vm vm-1 on this node")))
        yield vm_pb2.ConsoleData()  # never reached: makes this an async generator


class Echoing(agent_pb2_grpc.AgentServiceServicer):
    """Opens the session (the empty first message), then sends back every key it gets."""

    async def ConsoleSession(self, request_iterator: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        await anext(aiter(request_iterator), None)
        yield vm_pb2.ConsoleData()
        async for message in request_iterator:
            yield vm_pb2.ConsoleData(data=message.data)


async def _client(servicer: agent_pb2_grpc.AgentServiceServicer) -> tuple[AgentClient, grpc.aio.Server]:
    server = grpc.aio.server()
    agent_pb2_grpc.add_AgentServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    node = Node(id="node-1", agent_address=f"127.0.0.1:{port}")
    return AgentClient(node, agent_pb2_grpc.AgentServiceStub(channel), channel), server


async def _keys(n: int) -> AsyncIterator[bytes]:
    for _ in range(n):
        yield b"x"


async def test_a_refused_session_is_the_agents_error_however_fast_keys_come() -> None:
    client, server = await _client(Refusing())
    try:
        for _ in range(100):  # before the fix, about half of these were INTERNAL
            with pytest.raises(VmNotFound):
                async for _ in client.console_session("vm-1", ConsoleType.SERIAL, _keys(3)):
                    pass
    finally:
        await server.stop(None)


async def test_keys_flow_once_the_session_is_open() -> None:
    client, server = await _client(Echoing())
    try:
        got = b""
        async for data in client.console_session("vm-1", ConsoleType.SERIAL, _keys(3)):
            assert data  # the agent's empty "open" message is not passed on
            got += data
            if got == b"xxx":
                break
        assert got == b"xxx"
    finally:
        await server.stop(None)

"""Firecracker's API client on a real unix socket, answered by the test as Firecracker would: pipelined
PUTs that reach the socket in the caller's first step, responses however the bytes are split, failures."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from plasmavmc.errors import HypervisorError
from plasmavmc.hypervisor.firecracker.api import FirecrackerApi


def _response(status: int, body: dict[str, object] | None = None) -> bytes:
    content = json.dumps(body).encode() if body is not None else b""
    reason = "OK" if status < 300 else "Bad Request"
    return f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(content)}\r\n\r\n".encode() + content


def _listener(path: Path) -> socket.socket:
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen()
    return srv


async def _requests_in(conn: socket.socket, count: int) -> bytes:
    """What the client sent, once it holds `count` requests (each ends in its JSON body's `}`)."""
    loop = asyncio.get_running_loop()
    data = b""
    while data.count(b"HTTP/1.1\r\n") < count or not data.endswith(b"}"):
        data += await loop.sock_recv(conn, 65536)
    return data


async def test_pipelined_puts_reach_the_socket_in_the_callers_first_step(tmp_path: Path) -> None:
    """Connect and send happen before the caller's task first yields: Firecracker has the whole boot
    the moment the agent asks for it (a task or stream set-up between them cost loop turns)."""
    path = tmp_path / "api.sock"
    with _listener(path) as srv:
        requests: list[tuple[str, dict[str, Any]]] = [("/machine-config", {"vcpu_count": 1}),
                                                      ("/actions", {"action_type": "InstanceStart"})]
        srv.setblocking(False)
        booting = asyncio.create_task(FirecrackerApi(path).put_all(requests))
        await asyncio.sleep(0)  # the task's first step, and no more
        try:
            conn, _ = srv.accept()
            sent = conn.recv(65536, socket.MSG_DONTWAIT)
        except BlockingIOError:
            booting.cancel()
            pytest.fail("the PUTs were not on the socket after the caller's first step")
        with conn:
            assert sent.startswith(b"PUT /machine-config HTTP/1.1\r\n")
            assert b"PUT /actions HTTP/1.1\r\n" in sent and sent.endswith(b'{"action_type": "InstanceStart"}')
            conn.setblocking(False)
            conn.sendall(_response(204) + _response(204))
            await asyncio.wait_for(booting, 5.0)


async def test_responses_are_read_however_their_bytes_are_split(tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    with _listener(path) as srv:
        srv.setblocking(False)
        api = FirecrackerApi(path)
        requests = [(f"/drives/d{i}", {"drive_id": f"d{i}"}) for i in range(3)]
        putting = asyncio.create_task(api.put_all(requests))
        loop = asyncio.get_running_loop()
        conn, _ = await loop.sock_accept(srv)
        with conn:
            await _requests_in(conn, 3)
            answers = _response(204) + _response(200, {"note": "x" * 300}) + _response(204)
            for i in range(0, len(answers), 7):  # a few bytes at a time
                await loop.sock_sendall(conn, answers[i:i + 7])
                await asyncio.sleep(0)
            await asyncio.wait_for(putting, 5.0)
        getting = asyncio.create_task(api.get("/"))
        conn, _ = await loop.sock_accept(srv)
        with conn:
            await loop.sock_recv(conn, 65536)
            await loop.sock_sendall(conn, _response(200, {"state": "Running"}))
            assert await asyncio.wait_for(getting, 5.0) == {"state": "Running"}


async def test_a_refused_put_fails_with_firecrackers_reason(tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    with _listener(path) as srv:
        srv.setblocking(False)
        putting = asyncio.create_task(FirecrackerApi(path).put_all([("/machine-config", {"vcpu_count": 99}),
                                                                   ("/actions", {"action_type": "InstanceStart"})]))
        loop = asyncio.get_running_loop()
        conn, _ = await loop.sock_accept(srv)
        with conn:
            await _requests_in(conn, 2)
            await loop.sock_sendall(conn, _response(400, {"fault_message": "vcpu_count too large"}))
            with pytest.raises(HypervisorError, match="vcpu_count too large"):
                await asyncio.wait_for(putting, 5.0)


async def test_a_connection_closed_mid_response_is_a_hypervisor_error(tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    with _listener(path) as srv:
        srv.setblocking(False)
        getting = asyncio.create_task(FirecrackerApi(path).get("/"))
        loop = asyncio.get_running_loop()
        conn, _ = await loop.sock_accept(srv)
        with conn:
            await loop.sock_recv(conn, 65536)
            await loop.sock_sendall(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"sta")
        with pytest.raises(HypervisorError, match="closed before the whole response"):
            await asyncio.wait_for(getting, 5.0)


async def test_nobody_listening_is_a_hypervisor_error(tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as bound:  # bound, not listening: refused
        bound.bind(str(path))
        with pytest.raises(HypervisorError, match="firecracker API GET /"):
            await FirecrackerApi(path).get("/")

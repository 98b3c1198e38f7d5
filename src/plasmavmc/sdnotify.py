"""systemd readiness notification (`Type=notify`): the sd_notify datagram protocol, no library needed.

`notify("READY=1")` sends one datagram to the unix socket named by `$NOTIFY_SOCKET` (a path, or an
abstract socket when it starts with `@`); without that variable (not run by systemd) it does nothing.
"""

from __future__ import annotations

import os
import socket


def notify(state: str, env: dict[str, str] | None = None) -> bool:
    """Send `state` (e.g. "READY=1", "STOPPING=1", "STATUS=...") to systemd; True if it was sent."""
    address = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
    if not address:
        return False
    target = "\0" + address[1:] if address.startswith("@") else address
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(target)
        sock.sendall(state.encode())
    return True

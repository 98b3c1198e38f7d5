"""The gRPC channel options every process's client side uses: a short reconnect backoff.

gRPC's defaults (1 s initial reconnect backoff, growing 1.6x to 120 s) left calls failing for seconds
after a restarted server was already answering `/health`; 100 ms growing to at most 1 s lets a client,
an agent (towards the control plane) and the control plane (towards agents) reconnect within about a
second of the peer coming back.
"""

from __future__ import annotations

RECONNECT_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)

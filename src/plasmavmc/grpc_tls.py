"""gRPC channel and server credentials from the `[*.tls]` settings, shared by server and agent.

A server with a `ca_file` requires every client to present a certificate chaining to it (who the
certificate names is checked by the caller of `wire/peer.py`). A channel to an agent verifies the agent's
certificate against the node id it is expected to hold (`agent_channel`), not against the address
dialled: an address rerouted to another machine fails the handshake.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import grpc

from plasmavmc.config.schema import TlsSettings


def server_credentials(tls: TlsSettings) -> grpc.ServerCredentials:
    key = Path(tls.key_file).read_bytes()
    cert = Path(tls.cert_file).read_bytes()
    ca = Path(tls.ca_file).read_bytes() if tls.ca_file else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)


def channel_credentials(tls: TlsSettings) -> grpc.ChannelCredentials:
    ca = Path(tls.ca_file).read_bytes() if tls.ca_file else None
    return grpc.ssl_channel_credentials(
        root_certificates=ca,
        private_key=Path(tls.key_file).read_bytes(),
        certificate_chain=Path(tls.cert_file).read_bytes(),
    )


def agent_channel(address: str, node_id: str, credentials: grpc.ChannelCredentials | None,
                  options: Sequence[tuple[str, int]] = ()) -> grpc.aio.Channel:
    """A channel to the agent of `node_id` at `address`: TLS expecting that node's certificate if
    `credentials` are given, plain gRPC otherwise; `options` are extra channel options."""
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=list(options))
    return grpc.aio.secure_channel(address, credentials,
                                   options=[*options, ("grpc.ssl_target_name_override", node_id)])


def target_of(url: str) -> str:
    """`http://host:port` -> `host:port` (gRPC targets carry no scheme)."""
    return url.split("://", 1)[-1].rstrip("/")

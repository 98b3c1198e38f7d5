"""gRPC channel and server credentials from the `[*.tls]` settings, shared by server and agent."""

from __future__ import annotations

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


def target_of(url: str) -> str:
    """`http://host:port` -> `host:port` (gRPC targets carry no scheme)."""
    return url.split("://", 1)[-1].rstrip("/")

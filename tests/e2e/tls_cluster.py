"""A real control plane and agent with mutual TLS everywhere, certificates from `plasmavmc.pki`.

`start_tls_cluster` makes a PKI (CA, control plane, API server, client, nodes `node-a` and `node-b`),
writes the usual test configs (`tests/conftest.write_configs`) plus `[server.tls]`, `[agents.tls]` and
the agent's `[agent.tls]`, and starts both processes. `Creds` are the client certificates a test can
present: the cluster's own, none, and a self-signed one claiming an identity it does not own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography.hazmat.primitives import serialization

from plasmavmc.pki import certs, identity
from plasmavmc.pki.identity import Identity
from tests.conftest import Cluster, launch, write_configs

NODE_A, NODE_B = "node-a", "node-b"


@dataclass(frozen=True)
class Pem:
    cert: bytes
    key: bytes


def self_signed(who: Identity, hosts: list[str]) -> Pem:
    """A leaf claiming `who`, signed by a CA nobody configured."""
    rogue, rogue_key = certs.make_ca("rogue CA")
    cert, key = certs.make_leaf(rogue, rogue_key, who.name, who, hosts)
    return Pem(cert.public_bytes(serialization.Encoding.PEM),
               key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()))


@dataclass
class TlsCluster:
    cluster: Cluster
    pki: Path
    agent_addr: str

    def pem(self, stem: str) -> Pem:
        return Pem((self.pki / f"{stem}.pem").read_bytes(), (self.pki / f"{stem}.key").read_bytes())

    def credentials(self, client: Pem | None) -> grpc.ChannelCredentials:
        ca = (self.pki / "ca.pem").read_bytes()
        if client is None:
            return grpc.ssl_channel_credentials(root_certificates=ca)
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=client.key,
                                            certificate_chain=client.cert)

    def agent_channel(self, client: Pem | None) -> grpc.aio.Channel:
        """A channel to node-a's agent, verifying that it presents node-a's certificate."""
        return grpc.aio.secure_channel(self.agent_addr, self.credentials(client),
                                       options=[("grpc.ssl_target_name_override", NODE_A)])

    def api_channel(self, client: Pem | None) -> grpc.aio.Channel:
        return grpc.aio.secure_channel(self.cluster.api, self.credentials(client))


def _tls(section: str, pki: Path, stem: str) -> str:
    return (f'[{section}]\ncert_file = "{pki}/{stem}.pem"\nkey_file = "{pki}/{stem}.key"\n'
            f'ca_file = "{pki}/ca.pem"\n')


def start_tls_cluster(root: Path, guest: Path) -> TlsCluster:
    pki = root / "pki"
    certs.init(pki)
    for node in (NODE_A, NODE_B):
        certs.issue_node(pki, node)
    server_cfg, agent_cfg, api, http, agent_addr = write_configs(root, guest, NODE_A)
    with server_cfg.open("a") as f:
        f.write(_tls("server.tls", pki, "api") + _tls("agents.tls", pki, "control-plane"))
    with agent_cfg.open("a") as f:
        f.write(_tls("agent.tls", pki, f"node-{NODE_A}"))
    cluster = launch(root, server_cfg, agent_cfg, api, http, NODE_A, timeout=60)
    return TlsCluster(cluster, pki, agent_addr)


def control_plane_claim() -> Pem:
    return self_signed(identity.control_plane(), [NODE_A, identity.CONTROL_PLANE])

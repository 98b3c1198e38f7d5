"""Who a certificate names: the control plane, one node, or an API client.

Identities are SPIFFE-style URI SANs (`spiffe://plasmavmc/node/<id>`, `spiffe://plasmavmc/control-plane`,
`spiffe://plasmavmc/client/<name>`), so a node can never be confused with the control plane whatever
its id; the common name repeats the name for people reading the certificate. A peer's certificate has
been verified against the cluster CA by TLS before it reaches `of_pem`; this module only reads it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509

SCHEME = "spiffe://plasmavmc/"
CONTROL_PLANE = "plasmavmc-control-plane"


class Role(StrEnum):
    CONTROL_PLANE = "control-plane"
    NODE = "node"
    CLIENT = "client"


@dataclass(frozen=True)
class Identity:
    role: Role
    name: str = ""

    @property
    def uri(self) -> str:
        return SCHEME + (self.role.value if self.role is Role.CONTROL_PLANE else f"{self.role.value}/{self.name}")

    def __str__(self) -> str:
        return self.uri


def control_plane() -> Identity:
    return Identity(Role.CONTROL_PLANE, CONTROL_PLANE)


def node(node_id: str) -> Identity:
    return Identity(Role.NODE, node_id)


def client(name: str) -> Identity:
    return Identity(Role.CLIENT, name)


def parse_uri(uri: str) -> Identity | None:
    if not uri.startswith(SCHEME):
        return None
    rest = uri[len(SCHEME):]
    if rest == Role.CONTROL_PLANE.value:
        return control_plane()
    role, _, name = rest.partition("/")
    if role in (Role.NODE.value, Role.CLIENT.value) and name and "/" not in name:
        return Identity(Role(role), name)
    return None


def of_certificate(cert: x509.Certificate) -> Identity | None:
    """The single plasmavmc identity a certificate's SANs name; None when none or several do."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    found = {i for i in map(parse_uri, sans.get_values_for_type(x509.UniformResourceIdentifier)) if i is not None}
    return found.pop() if len(found) == 1 else None


@functools.lru_cache(maxsize=1024)
def of_pem(pem: bytes) -> Identity | None:
    """`of_certificate` of a PEM certificate (agents heartbeat every few seconds: parsed once per cert)."""
    try:
        return of_certificate(x509.load_pem_x509_certificate(pem))
    except ValueError:
        return None

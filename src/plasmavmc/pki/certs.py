"""Issue the dev cluster's certificates: a CA, then leaf certificates it signs.

`init(dir)` writes the CA (`ca.pem`, `ca.key`), the control plane's certificate (`control-plane.*`,
which it presents to agents), the API server's (`api.*`, names the hosts clients dial) and a client
certificate for the CLI (`client.*`, for an API that requires client certificates); `issue_node(dir,
id)` adds `node-<id>.*`, which an agent presents both as the server of its AgentService and as the
client of its heartbeats. Keys are EC P-256, written 0600; nothing is ever overwritten.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from plasmavmc.pki import identity
from plasmavmc.pki.identity import Identity

CA_DAYS = 3650
LEAF_DAYS = 825
DEFAULT_API_HOSTS = ("localhost", "127.0.0.1", "::1")
Key = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


class PkiError(Exception):
    """The PKI directory cannot be used as asked (a file exists, the CA is missing)."""


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "plasmavmc"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _host(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _save(directory: Path, stem: str, cert: x509.Certificate, key: Key) -> Issued:
    issued = Issued(directory / f"{stem}.pem", directory / f"{stem}.key")
    for path in (issued.cert, issued.key):
        if path.exists():
            raise PkiError(f"{path} exists: remove it first (nothing is overwritten)")
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    _write_new(issued.key, pem_key, 0o600)
    _write_new(issued.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return issued


def make_ca(common_name: str = "plasmavmc dev CA") -> tuple[x509.Certificate, Key]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(_name(common_name))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_leaf(ca: x509.Certificate, ca_key: Key, common_name: str, who: Identity | None,
              hosts: Sequence[str] = ()) -> tuple[x509.Certificate, Key]:
    """A certificate for TLS server and client use, naming `who` (URI SAN) and `hosts` (DNS/IP SANs)."""
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [_host(h) for h in hosts]
    if who is not None:
        sans.append(x509.UniformResourceIdentifier(who.uri))
    builder = (
        x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def load_ca(directory: Path) -> tuple[x509.Certificate, Key]:
    try:
        cert = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
        key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
    except FileNotFoundError as err:
        raise PkiError(f"{err.filename} is missing: run `plasmavmc pki init {directory}` first") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{directory / 'ca.key'} is not an EC key made by `plasmavmc pki init`")
    return cert, key


def init(directory: Path, api_hosts: Sequence[str] = DEFAULT_API_HOSTS) -> dict[str, Issued]:
    """A new CA in `directory` with the control plane's, the API server's and a client certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / "ca.pem").exists() or (directory / "ca.key").exists():
        raise PkiError(f"{directory} already holds a CA (ca.pem/ca.key): nothing is overwritten")
    ca, ca_key = make_ca()
    issued = {"ca": _save(directory, "ca", ca, ca_key)}
    cp = identity.control_plane()
    issued["control-plane"] = _save(directory, "control-plane", *make_leaf(ca, ca_key, cp.name, cp, [cp.name]))
    issued["api"] = _save(directory, "api", *make_leaf(ca, ca_key, "plasmavmc-api", None, api_hosts))
    cli = identity.client("admin")
    issued["client"] = _save(directory, "client", *make_leaf(ca, ca_key, "plasmavmc-client-admin", cli))
    return issued


def issue_node(directory: Path, node_id: str) -> Issued:
    """`node-<id>.pem/.key`: the node's identity, and its DNS name as the control plane dials it."""
    if node_id == identity.CONTROL_PLANE:
        raise PkiError(f"{node_id!r} is the control plane's name, not a node id")
    ca, ca_key = load_ca(directory)
    who = identity.node(node_id)
    return _save(directory, f"node-{node_id}", *make_leaf(ca, ca_key, node_id, who, [node_id]))

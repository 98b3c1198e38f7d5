"""`plasmavmc pki`: the files it writes, the identities its certificates name, what it refuses."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from plasmavmc.cli.main import main
from plasmavmc.pki import certs, identity
from plasmavmc.pki.identity import Role


def test_init_and_node_certificates_name_their_identity(tmp_path: Path) -> None:
    assert main(["pki", "init", str(tmp_path)]) == 0
    assert main(["pki", "node", "n-1", "--dir", str(tmp_path)]) == 0
    named = {stem: identity.of_pem((tmp_path / f"{stem}.pem").read_bytes())
             for stem in ("ca", "control-plane", "api", "client", "node-n-1")}
    assert named == {"ca": None, "control-plane": identity.control_plane(), "api": None,
                     "client": identity.client("admin"), "node-n-1": identity.node("n-1")}
    for key in tmp_path.glob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    for stem in ("control-plane", "api", "client", "node-n-1"):
        leaf = x509.load_pem_x509_certificate((tmp_path / f"{stem}.pem").read_bytes())
        leaf.verify_directly_issued_by(ca)
    api = x509.load_pem_x509_certificate((tmp_path / "api.pem").read_bytes())
    sans = api.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in sans.get_values_for_type(x509.DNSName)


def test_nothing_is_overwritten(tmp_path: Path) -> None:
    certs.init(tmp_path)
    before = (tmp_path / "ca.key").read_bytes()
    with pytest.raises(certs.PkiError, match="already holds a CA"):
        certs.init(tmp_path)
    certs.issue_node(tmp_path, "n1")
    with pytest.raises(certs.PkiError, match="exists"):
        certs.issue_node(tmp_path, "n1")
    assert (tmp_path / "ca.key").read_bytes() == before


@pytest.mark.parametrize("node_id", ["Bad_Id", "", "plasmavmc-control-plane"])
def test_bad_node_ids_are_refused(tmp_path: Path, node_id: str, capsys: pytest.CaptureFixture[str]) -> None:
    certs.init(tmp_path)
    assert main(["pki", "node", node_id, "--dir", str(tmp_path)]) == 1
    assert not list(tmp_path.glob("node-*"))
    assert "node" in capsys.readouterr().err


def test_node_without_a_ca_says_run_init(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pki", "node", "n1", "--dir", str(tmp_path)]) == 1
    assert "pki init" in capsys.readouterr().err


@pytest.mark.parametrize(("uri", "want"), [
    ("spiffe://plasmavmc/control-plane", identity.control_plane()),
    ("spiffe://plasmavmc/node/n1", identity.node("n1")),
    ("spiffe://plasmavmc/node/", None),
    ("spiffe://plasmavmc/node/a/b", None),
    ("spiffe://other/node/n1", None),
    ("spiffe://plasmavmc/admin/x", None),
])
def test_identity_uris(uri: str, want: identity.Identity | None) -> None:
    assert identity.parse_uri(uri) == want
    if want is not None:
        assert want.uri == uri and want.role in Role


def test_a_certificate_naming_two_identities_names_none() -> None:
    ca, key = certs.make_ca()
    cert, _ = certs.make_leaf(ca, key, "x", identity.node("n1"))
    two = (x509.CertificateBuilder().subject_name(cert.subject).issuer_name(ca.subject)
           .public_key(cert.public_key()).serial_number(1)
           .not_valid_before(cert.not_valid_before_utc).not_valid_after(cert.not_valid_after_utc)
           .add_extension(x509.SubjectAlternativeName([
               x509.UniformResourceIdentifier(identity.node("n1").uri),
               x509.UniformResourceIdentifier(identity.control_plane().uri)]), critical=False)
           .sign(key, hashes.SHA256()))
    assert identity.of_certificate(cert) == identity.node("n1")
    assert identity.of_certificate(two) is None


@pytest.mark.parametrize(("toml", "says"), [
    ('cert_file = "/x.pem"\n', "cert_file and key_file go together"),
    ("ca_file = 3\n", "the strings ca_file, cert_file, key_file"),
    ('ca_fil = "/x.pem"\n', "expected only"),
])
def test_client_config_tls_keys_are_checked(tmp_path: Path, toml: str, says: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "client.toml"
    config.write_text(toml)
    assert main(["--config", str(config), "--endpoint", "127.0.0.1:1", "node", "list"]) == 2  # nothing sent
    assert says in capsys.readouterr().err

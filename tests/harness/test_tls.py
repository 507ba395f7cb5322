"""TLS in the lab: the lab CA, the façade over https, and clients that trust it."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509

from harness.labca import LabCA, default_ca_dir


def _handshake(cert: Path, key: Path, server_hostname: str, cafile: Path | None) -> bytes:
    """One TLS handshake on loopback with a server holding ``cert``; returns what it sent."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(10)

        def serve() -> None:
            conn, _ = listener.accept()
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError):
                pass  # the client refused us: its side raises

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        client_ctx = ssl.create_default_context(cafile=str(cafile) if cafile else None)
        client_ctx.verify_flags |= ssl.VERIFY_X509_STRICT  # the default from Python 3.13 on
        try:
            with socket.create_connection(listener.getsockname(), timeout=10) as raw:
                with client_ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
                    return tls.recv(2)
        finally:
            thread.join(10)


def test_lab_ca_is_reused_and_issues_names_and_addresses(tmp_path: Path) -> None:
    ca = LabCA.load_or_create(tmp_path / "ca")
    again = LabCA.load_or_create(tmp_path / "ca")
    assert again.cert == ca.cert  # idempotent: the bundle clients trust does not change
    assert (tmp_path / "ca" / "ca.key").stat().st_mode & 0o077 == 0
    cert_path, key_path = ca.issue(["127.0.0.1", "localhost", "*.blob.lab.test"], tmp_path / "srv")
    assert (cert_path, key_path) == (tmp_path / "srv" / "cert.pem", tmp_path / "srv" / "key.pem")
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "*.blob.lab.test"]
    assert cert.issuer == ca.cert.subject


@pytest.mark.parametrize("hostname", ["127.0.0.1", "localhost", "devstoreaccount1.blob.lab.test"])
def test_issued_certificate_verifies_against_the_bundle(tmp_path: Path, hostname: str) -> None:
    ca = LabCA.load_or_create(tmp_path)
    cert, key = ca.issue(["127.0.0.1", "localhost", "*.blob.lab.test"])
    assert _handshake(cert, key, hostname, ca.bundle_path) == b"ok"


def test_certificate_is_refused_without_the_lab_ca_or_for_another_name(tmp_path: Path) -> None:
    ca = LabCA.load_or_create(tmp_path)
    cert, key = ca.issue(["127.0.0.1"])
    other = LabCA.load_or_create(tmp_path / "other")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(cert, key, "127.0.0.1", other.bundle_path)
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(cert, key, "localhost", ca.bundle_path)


def test_default_ca_dir_follows_lab_ca_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LAB_CA_DIR", str(tmp_path / "ca"))
    assert default_ca_dir() == tmp_path / "ca"
    monkeypatch.delenv("LAB_CA_DIR")
    assert default_ca_dir().parts[-2:] == (".cache", "lab-ca")

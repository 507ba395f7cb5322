"""The lab's certificate authority: https for loopback façades without disabling verification.

``LabCA.load_or_create(dir)`` keeps ``ca.pem`` / ``ca.key`` in ``dir`` (made once, reused after),
and ``issue(names)`` writes a server certificate for DNS names and IP addresses signed by it.
Clients trust ``bundle_path`` (the CA certificate) the ordinary way: ``SSL_CERT_FILE``,
``connection_verify``, ``--ca-cert`` or an ``ssl.SSLContext`` made from it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import ipaddress
import os
import ssl
from collections.abc import Iterator, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness.datasets import default_cache_dir

CA_CERT = "ca.pem"
CA_KEY = "ca.key"
_CA_DAYS = 3650
_LEAF_DAYS = 825  # under the 825-day ceiling that macOS and some stacks put on server certificates
_SKEW = dt.timedelta(hours=1)  # backdated so a slightly slow clock still accepts a fresh cert


def default_ca_dir() -> Path:
    """``$LAB_CA_DIR``, else ``lab-ca`` beside the user cache of datasets
    (``~/.cache/blob-facade-lab/lab-ca``): one CA per user, so a bundle trusted once stays valid."""
    env = os.environ.get("LAB_CA_DIR")
    return Path(env).expanduser() if env else default_cache_dir().with_name("lab-ca")


def _write_private(path: Path, data: bytes) -> None:
    """Write a key readable by its owner only, atomically (a reader never sees half a key)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


class LabCA:
    """A lab certificate authority kept in a directory as PEM files."""

    def __init__(self, directory: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey):
        self.directory = directory
        self.cert = cert
        self.key = key

    @classmethod
    def load_or_create(cls, directory: Path) -> LabCA:
        """Reuse ``ca.pem``/``ca.key`` in ``directory``, creating them the first time."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        # parallel test workers may race here: one makes the CA, the others wait and load it
        with _locked(directory / ".lock"):
            return cls._load_or_create(directory)

    @classmethod
    def _load_or_create(cls, directory: Path) -> LabCA:
        cert_path, key_path = directory / CA_CERT, directory / CA_KEY
        if cert_path.exists() and key_path.exists():
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{key_path} is not the lab CA's EC key")
            return cls(directory, cert, key)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Blob compatibility lab"),
                x509.NameAttribute(NameOID.COMMON_NAME, "Blob lab CA"),
            ]
        )
        now = dt.datetime.now(dt.UTC)
        public = key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _SKEW)
            .not_valid_after(now + dt.timedelta(days=_CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_private(
            key_path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return cls(directory, cert, key)

    @classmethod
    def of_bundle(cls, bundle: Path) -> LabCA | None:
        """The lab CA whose certificate ``bundle`` is, when its key is kept beside it (a bundle
        from elsewhere has none: nothing can be issued from it)."""
        bundle = Path(bundle)
        if bundle.name != CA_CERT or not (bundle.parent / CA_KEY).is_file():
            return None
        return cls.load_or_create(bundle.parent)

    @property
    def bundle_path(self) -> Path:
        """The CA certificate (PEM) that clients trust."""
        return self.directory / CA_CERT

    def issue(self, names: Sequence[str], directory: Path | None = None) -> tuple[Path, Path]:
        """Write ``cert.pem`` and ``key.pem`` for ``names`` (DNS names, wildcards, IPs).

        Without ``directory`` they go under ``<ca dir>/issued/<hash of names>/``.
        """
        if not names:
            raise ValueError("a server certificate needs at least one name")
        if directory is None:
            digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]
            directory = self.directory / "issued" / digest
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _SKEW)
            .not_valid_after(now + dt.timedelta(days=_LEAF_DAYS))
            .add_extension(x509.SubjectAlternativeName([_san(n) for n in names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        cert_path, key_path = directory / "cert.pem", directory / "key.pem"
        with _locked(directory / ".lock"):  # a cert and its key always come from one issue()
            _write_private(
                key_path,
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
            _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return cert_path, key_path


def server_ssl_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The server side of https for the lab's own loopback servers (proxies, token service)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context

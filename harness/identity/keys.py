"""The token service's signing keys: RSA key pairs kept as PEM files, published as a JWKS.

Rotation follows Entra's rules: a new key is published in the JWKS ``lead_s`` before it signs
(validators that cache the JWKS learn it first), and a retired key stays published until the
last token it signed has expired. ``ring.json`` lists every key's ``kid`` and ``signs_from``; a
key's private part is ``<kid>.pem`` (owner-only), so the harness can load the ring and mint
tokens of its own (the negative conformance checks) with the service's key material.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

RING_FILE = "ring.json"


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class SigningKey:
    kid: str
    signs_from: float  # epoch seconds: the key signs from then on (published before)
    private: rsa.RSAPrivateKey

    def jwk(self) -> dict[str, Any]:
        numbers = self.private.public_key().public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": _b64url_uint(numbers.n),
            "e": _b64url_uint(numbers.e),
        }

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


class KeyRing:
    """Signing keys of one token service, persisted in ``directory``."""

    def __init__(self, directory: Path, keys: list[SigningKey], max_token_lifetime_s: int) -> None:
        self.directory = directory
        self.keys = sorted(keys, key=lambda k: k.signs_from)
        self.max_token_lifetime_s = max_token_lifetime_s
        self._stamp = self._ring_stamp()

    def _ring_stamp(self) -> int:
        try:
            return (self.directory / RING_FILE).stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def refresh(self) -> None:
        """Reload when another process rotated the ring on disk (``harness token-service
        --rotate`` against the same state directory, or a test)."""
        if self._ring_stamp() != self._stamp:
            fresh = KeyRing.load_or_create(self.directory, self.max_token_lifetime_s)
            self.keys, self._stamp = fresh.keys, fresh._stamp

    @classmethod
    def load_or_create(
        cls, directory: Path, max_token_lifetime_s: int = 3600, now: float | None = None
    ) -> KeyRing:
        """The ring kept in ``directory``; a new one with one signing key the first time."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        ring_path = directory / RING_FILE
        if not ring_path.exists():
            ring = cls(directory, [], max_token_lifetime_s)
            ring._add(now if now is not None else time.time())
            return ring
        keys = []
        for entry in json.loads(ring_path.read_text())["keys"]:
            pem = (directory / f"{entry['kid']}.pem").read_bytes()
            private = serialization.load_pem_private_key(pem, password=None)
            if not isinstance(private, rsa.RSAPrivateKey):
                raise ValueError(f"{directory}/{entry['kid']}.pem is not an RSA key")
            keys.append(SigningKey(entry["kid"], float(entry["signs_from"]), private))
        return cls(directory, keys, max_token_lifetime_s)

    def _add(self, signs_from: float) -> SigningKey:
        key = SigningKey(
            uuid.uuid4().hex[:27],
            signs_from,
            rsa.generate_private_key(public_exponent=65537, key_size=2048),
        )
        pem = key.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path = self.directory / f"{key.kid}.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        self.keys.append(key)
        self.keys.sort(key=lambda k: k.signs_from)
        self._save()
        return key

    def _save(self) -> None:
        entries = [{"kid": k.kid, "signs_from": k.signs_from} for k in self.keys]
        tmp = self.directory / f".{RING_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"keys": entries}, indent=1))
        os.replace(tmp, self.directory / RING_FILE)
        self._stamp = self._ring_stamp()

    def rotate(self, lead_s: float, now: float | None = None) -> SigningKey:
        """Publish a new key now that starts signing ``lead_s`` later; drop keys whose tokens
        have all expired."""
        now = time.time() if now is None else now
        key = self._add(now + lead_s)
        self.prune(now)
        return key

    def signer(self, now: float | None = None) -> SigningKey:
        """The newest key whose signing time has come."""
        now = time.time() if now is None else now
        ready = [k for k in self.keys if k.signs_from <= now]
        return ready[-1] if ready else self.keys[0]

    def published(self, now: float | None = None) -> list[SigningKey]:
        """Keys in the JWKS: every key but those superseded longer ago than a token lives."""
        now = time.time() if now is None else now
        out = []
        for i, key in enumerate(self.keys):
            successor = self.keys[i + 1] if i + 1 < len(self.keys) else None
            if successor is None or successor.signs_from + self.max_token_lifetime_s > now:
                out.append(key)
        return out

    def prune(self, now: float | None = None) -> None:
        keep = {k.kid for k in self.published(now)}
        for key in [k for k in self.keys if k.kid not in keep]:
            (self.directory / f"{key.kid}.pem").unlink(missing_ok=True)
        self.keys = [k for k in self.keys if k.kid in keep]
        self._save()

    def jwks(self, now: float | None = None) -> dict[str, Any]:
        return {"keys": [k.jwk() for k in self.published(now)]}

    def sign(self, claims: dict[str, Any], now: float | None = None) -> str:
        """An RS256 JWT of ``claims`` under the current signer, its ``kid`` in the header."""
        key = self.signer(now)
        return jwt.encode(
            claims, key.private, algorithm="RS256", headers={"kid": key.kid, "x5t": key.kid}
        )

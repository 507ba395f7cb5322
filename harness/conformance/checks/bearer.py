"""OAuth bearer tokens and user delegation SAS: what a façade trusting the lab tenant must refuse.

The checks need the ``bearer`` capability: a ``BearerEndpoint`` (harness/identity/lab.py) naming
the account URL over https, the lab identity (tenant, principals, the token service's key
material) and, when it listens there too, the same façade over plain http. Tokens are minted here
with the token service's keys (pyjwt), or forged; user delegation SAS are signed by the SDK's
``generate_blob_sas``. The account must hold the lab role layout (``LAB_ROLES``): ``writer`` a
Contributor and ``reader`` a Reader on the account, ``scoped`` a Contributor on one container
only, ``norole`` nothing. Without the capability every check skips, saying why.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from harness.conformance.framework import CheckContext, RecordingHttp, check, register_cases
from harness.http import Response

BEARER = "Auth Bearer"
UD_SAS = "Auth User Delegation SAS"
PAYLOAD = b"bearer payload"
OTHER_TENANT = "0b0b0b0b-1111-4222-8333-444444444444"


class _Session:
    """The bearer endpoint's clients for one check: Shared Key fixtures, token requests; every
    response joins ``ctx.http.seen`` so the error-shape invariant covers them."""

    def __init__(self, ctx: CheckContext) -> None:
        endpoint = ctx.capabilities.get("bearer")
        if endpoint is None:
            ctx.skip(
                f"target {ctx.target} has no bearer configuration trusting the lab tenant "
                "(run `harness conformance --target reference`, or give --identity for a façade "
                "configured with the lab tenant)"
            )
        self.ctx = ctx
        self.endpoint = endpoint
        self.lab = endpoint.identity
        self.http = RecordingHttp(
            endpoint.url, endpoint.account, endpoint.key, ca_bundle=endpoint.ca_bundle
        )
        self.containers: list[str] = []

    def _seen(self, method: str, resp: Response) -> Response:
        self.ctx.http.seen.append((method, "", resp))
        return resp

    def fixture(self) -> str:
        """A fresh container holding ``secret`` = PAYLOAD, made with Shared Key."""
        if not self.endpoint.key:
            self.ctx.skip("the bearer endpoint's account key is not known: no fixture blob")
        name = self.ctx.name("bearer")
        resp = self._seen("PUT", self.http.request("PUT", name, query={"restype": "container"}))
        self.ctx.expect_status(resp, 201, f"create container {name}")
        self.containers.append(name)
        put = self.http.request(
            "PUT", name, "secret", body=PAYLOAD, headers={"x-ms-blob-type": "BlockBlob"}
        )
        self.ctx.expect_status(self._seen("PUT", put), 201, "put fixture blob")
        return name

    def send(
        self,
        token: str,
        method: str = "GET",
        container: str | None = None,
        blob: str | None = "secret",
        *,
        url: str | None = None,
        **options: object,
    ) -> Response:
        http = self.http
        if url:
            http = RecordingHttp(url, self.endpoint.account, ca_bundle=self.endpoint.ca_bundle)
        headers = {"Authorization": f"Bearer {token}", **options.pop("headers", {})}  # type: ignore[dict-item]
        try:
            resp = http.request(method, container, blob, headers=headers, sign=False, **options)  # type: ignore[arg-type]
        finally:
            if url:
                http.close()
        return self._seen(method, resp)

    def close(self) -> None:
        for name in self.containers:
            try:
                self.http.request("DELETE", name, query={"restype": "container"})
            except OSError:
                pass
        self.http.close()


def _bearer_check(
    body: Callable[[CheckContext, _Session], None],
) -> Callable[[CheckContext], None]:
    def run(ctx: CheckContext) -> None:
        session = _Session(ctx)
        try:
            body(ctx, session)
        finally:
            session.close()

    return run


def _expect_refused(ctx: CheckContext, s: _Session, resp: Response) -> None:
    """401 InvalidAuthenticationInfo with the bearer challenge of the account's tenant."""
    ctx.expect_error(resp, 401, "InvalidAuthenticationInfo")
    ctx.expect_header(
        resp,
        "www-authenticate",
        f"Bearer authorization_uri=https://login.microsoftonline.com/{s.lab.tenant}/oauth2/"
        "authorize resource_id=https://storage.azure.com",
    )
    ctx.expect_no_leak(resp, PAYLOAD)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256_with_public_key(s: _Session) -> str:
    """HS256 keyed with the issuer's published public key: the RS/HS confusion attack."""
    key = s.lab.signing_key()
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    signing_input = (
        f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(s.lab.claims('writer')).encode())}"
    )
    mac = hmac.new(key.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _tampered(s: _Session) -> str:
    """A reader's token whose payload now names the writer, signature left as it was."""
    head, payload, sig = s.lab.mint("reader").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["oid"] = s.lab.principal("writer")[0]
    return f"{head}.{_b64(json.dumps(claims).encode())}.{sig}"


def _unknown_kid(s: _Session) -> str:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = s.lab.claims("writer")
    return jwt.encode(claims, stranger, algorithm="RS256", headers={"kid": "not-published"})


def _mint(**claims: object) -> Callable[[_Session], str]:
    def make(s: _Session) -> str:
        values = {k: v(s) if callable(v) else v for k, v in claims.items()}
        return s.lab.mint("writer", **values)

    return make


TOKENS: list[tuple[str, str, Callable[[_Session], str]]] = [
    ("expired", "a token past exp (beyond 5 min skew)",
     _mint(exp=lambda s: int(time.time()) - 900)),
    ("not-yet-valid", "a token before nbf (beyond 5 min skew)",
     _mint(nbf=lambda s: int(time.time()) + 900)),
    ("wrong-audience", "aud of another resource (Key Vault)", _mint(aud="https://vault.azure.net")),
    ("other-tenant", "signed by a trusted key, issued for another tenant",
     _mint(tid=OTHER_TENANT, iss=f"https://sts.windows.net/{OTHER_TENANT}/")),
    ("unknown-issuer", "iss that is not the tenant's v1 or v2 issuer",
     _mint(iss=lambda s: f"https://sts.example.invalid/{s.lab.tenant}/")),
    ("unknown-kid", "signed by a key no trusted issuer publishes", _unknown_kid),
    ("tampered-payload", "payload changed after signing (oid swapped)", _tampered),
    ("alg-none", "alg none, no signature",
     lambda s: jwt.encode(s.lab.claims("writer"), None, algorithm="none")),
    ("hs256-public-key", "HS256 keyed with the issuer's public key", _hs256_with_public_key),
]  # fmt: skip


def _refusal(make: Callable[[_Session], str]) -> Callable[[CheckContext], None]:
    def body(ctx: CheckContext, s: _Session) -> None:
        ct = s.fixture()
        _expect_refused(ctx, s, s.send(make(s), "GET", ct))

    return _bearer_check(body)


register_cases(
    "bearer",
    BEARER,
    [(name, f"{what} -> 401 InvalidAuthenticationInfo", _refusal(make))
     for name, what, make in TOKENS],
)  # fmt: skip


@check(
    "bearer.valid", BEARER, "a Contributor's token reads the blob and writes another -> 200 / 201"
)
def _valid(ctx: CheckContext) -> None:
    def body(ctx: CheckContext, s: _Session) -> None:
        ct = s.fixture()
        token = s.lab.mint("writer")
        got = s.send(token, "GET", ct)
        ctx.expect("status / body", (200, PAYLOAD), (got.status, got.body))
        put = s.send(token, "PUT", ct, "new", body=b"x", headers={"x-ms-blob-type": "BlockBlob"})
        ctx.expect_status(put, 201, "put with a token")

    _bearer_check(body)(ctx)


@check("bearer.over-http", BEARER, "a valid token over plain http is refused, never served")
def _over_http(ctx: CheckContext) -> None:
    def body(ctx: CheckContext, s: _Session) -> None:
        if not s.endpoint.http_url:
            ctx.skip("the target listens on https only: nothing to send a token over http to")
        resp = s.send(s.lab.mint("writer"), "GET", "any-container", url=s.endpoint.http_url)
        ctx.expect_true("refused", resp.status in (400, 401, 403), "400, 401 or 403", resp.status)
        ctx.expect_no_leak(resp, PAYLOAD)

    _bearer_check(body)(ctx)


@check(
    "bearer.no-role", BEARER, "a principal without a role -> 403 AuthorizationPermissionMismatch"
)
def _no_role(ctx: CheckContext) -> None:
    def body(ctx: CheckContext, s: _Session) -> None:
        ct = s.fixture()
        resp = s.send(s.lab.mint("norole"), "GET", ct)
        ctx.expect_error(resp, 403, "AuthorizationPermissionMismatch")
        ctx.expect_no_leak(resp, PAYLOAD)

    _bearer_check(body)(ctx)


@check(
    "bearer.reader-writes",
    BEARER,
    "a Reader's Put Blob -> 403 AuthorizationPermissionMismatch; its read -> 200",
)
def _reader(ctx: CheckContext) -> None:
    def body(ctx: CheckContext, s: _Session) -> None:
        ct = s.fixture()
        token = s.lab.mint("reader")
        ctx.expect_status(s.send(token, "GET", ct), 200, "reader reads")
        put = s.send(token, "PUT", ct, "w", body=b"x", headers={"x-ms-blob-type": "BlockBlob"})
        ctx.expect_error(put, 403, "AuthorizationPermissionMismatch")

    _bearer_check(body)(ctx)


@check(
    "bearer.other-container",
    BEARER,
    "a role scoped to another container -> 403 AuthorizationPermissionMismatch",
)
def _other_container(ctx: CheckContext) -> None:
    def body(ctx: CheckContext, s: _Session) -> None:
        ct = s.fixture()
        resp = s.send(s.lab.mint("scoped"), "GET", ct)
        ctx.expect_error(resp, 403, "AuthorizationPermissionMismatch")
        ctx.expect_no_leak(resp, PAYLOAD)

    _bearer_check(body)(ctx)


# ---- user delegation SAS ---------------------------------------------------------------------


def _delegation_key(ctx: CheckContext, s: _Session, start: datetime, expiry: datetime) -> object:
    """Get User Delegation Key with the writer's token, as the SDK's UserDelegationKey."""
    from azure.storage.blob import UserDelegationKey

    root = ET.Element("KeyInfo")
    ET.SubElement(root, "Start").text = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    ET.SubElement(root, "Expiry").text = expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
    body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    resp = s.send(
        s.lab.mint("writer"), "POST", None, None, body=body,
        query={"restype": "service", "comp": "userdelegationkey"},
        headers={"Content-Type": "application/xml"},
    )  # fmt: skip
    ctx.expect_status(resp, 200, "Get User Delegation Key")
    xml = resp.xml()
    key = UserDelegationKey()
    key.signed_oid = xml.findtext("SignedOid")
    key.signed_tid = xml.findtext("SignedTid")
    key.signed_start = xml.findtext("SignedStart")
    key.signed_expiry = xml.findtext("SignedExpiry")
    key.signed_service = xml.findtext("SignedService")
    key.signed_version = xml.findtext("SignedVersion")
    key.value = xml.findtext("Value")
    ctx.expect("SignedOid", s.lab.principal("writer")[0], key.signed_oid)
    return key


def _ud_sas(s: _Session, container: str, key: object, expiry: datetime) -> str:
    from azure.storage.blob import generate_blob_sas

    return generate_blob_sas(
        s.endpoint.account, container, "secret", user_delegation_key=key, permission="r",
        expiry=expiry,
    )  # fmt: skip


def _get_with_sas(s: _Session, container: str, sas: str) -> Response:
    http = RecordingHttp(s.endpoint.url, s.endpoint.account, ca_bundle=s.endpoint.ca_bundle)
    try:
        return s._seen("GET", http.request("GET", container, "secret", sas=sas))
    finally:
        http.close()


def _retouch(sas: str, **changes: str) -> str:
    fields = dict(parse_qsl(sas, keep_blank_values=True))
    return urlencode({**fields, **changes})


@check("user-delegation.valid", UD_SAS, "a user delegation SAS (SDK-signed) reads the blob -> 200")
def _ud_valid(ctx: CheckContext) -> None:
    def body(ctx: CheckContext, s: _Session) -> None:
        ct = s.fixture()
        now = datetime.now(UTC)
        key = _delegation_key(ctx, s, now - timedelta(minutes=5), now + timedelta(hours=1))
        resp = _get_with_sas(s, ct, _ud_sas(s, ct, key, now + timedelta(minutes=30)))
        ctx.expect("status / body", (200, PAYLOAD), (resp.status, resp.body))

    _bearer_check(body)(ctx)


def _ud_refused(field: str, value: Callable[[_Session], str]) -> Callable[[CheckContext], None]:
    def body(ctx: CheckContext, s: _Session) -> None:
        ct = s.fixture()
        now = datetime.now(UTC)
        key = _delegation_key(ctx, s, now - timedelta(minutes=5), now + timedelta(hours=1))
        sas = _retouch(_ud_sas(s, ct, key, now + timedelta(minutes=30)), **{field: value(s)})
        resp = _get_with_sas(s, ct, sas)
        ctx.expect_error(resp, 403, "AuthenticationFailed")
        ctx.expect_no_leak(resp, PAYLOAD)

    return _bearer_check(body)


_LATER = (datetime.now(UTC) + timedelta(days=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
register_cases(
    "user-delegation",
    UD_SAS,
    [
        ("tampered-oid", "skoid changed to another principal -> 403 AuthenticationFailed",
         _ud_refused("skoid", lambda s: s.lab.principal("reader")[0])),
        ("tampered-expiry", "ske pushed later after signing -> 403 AuthenticationFailed",
         _ud_refused("ske", lambda s: _LATER)),
        ("other-tenant", "sktid of another tenant -> 403 AuthenticationFailed",
         _ud_refused("sktid", lambda s: OTHER_TENANT)),
    ],
)  # fmt: skip


@check(
    "user-delegation.expired-key",
    UD_SAS,
    "a SAS signed with a key past its SignedExpiry -> 403 AuthenticationFailed",
)
def _ud_expired(ctx: CheckContext) -> None:
    def body(ctx: CheckContext, s: _Session) -> None:
        ct = s.fixture()
        now = datetime.now(UTC)
        key = _delegation_key(ctx, s, now - timedelta(minutes=5), now + timedelta(seconds=2))
        sas = _ud_sas(s, ct, key, now + timedelta(minutes=30))
        time.sleep(3.5)  # the key expires (whole seconds); the SAS itself would still be valid
        resp = _get_with_sas(s, ct, sas)
        ctx.expect_error(resp, 403, "AuthenticationFailed")
        ctx.expect_no_leak(resp, PAYLOAD)

    _bearer_check(body)(ctx)

"""Bearer tokens on the reference façade: real tokens from the lab token service, real https,
the façade fetching discovery and JWKS itself. Each refusal is checked on the wire: status,
x-ms-error-code, the bearer challenge naming the tenant, the reason."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from identity_fixtures import SCOPED_CONTAINER, BearerFacade

from harness.http import BlobHttp, Response

BLOB = b"bearer-protected bytes"


def _http(facade: BearerFacade, url: str | None = None) -> BlobHttp:
    return BlobHttp(url or facade.account_url, facade.account, ca_bundle=facade.ca_bundle)


def _send(
    facade: BearerFacade, token: str, method: str = "GET", container: str | None = None,
    blob: str | None = None, url: str | None = None, body: bytes = b"", **options: object,
) -> Response:  # fmt: skip
    http = _http(facade, url)
    try:
        headers = {"Authorization": f"Bearer {token}", **options.pop("headers", {})}  # type: ignore[dict-item]
        return http.request(
            method, container, blob, body=body, headers=headers, sign=False, **options
        )
    finally:
        http.close()


@pytest.fixture(scope="module")
def fixture_blob(bearer_facade: BearerFacade) -> str:
    """A container with one blob, made with Shared Key."""
    http = BlobHttp(
        bearer_facade.account_url, bearer_facade.account, bearer_facade.key,
        ca_bundle=bearer_facade.ca_bundle,
    )  # fmt: skip
    for ct in ("bearer-ct", SCOPED_CONTAINER):
        assert http.request("PUT", ct, query={"restype": "container"}).status in (201, 409)
        put = http.request("PUT", ct, "b.bin", body=BLOB, headers={"x-ms-blob-type": "BlockBlob"})
        assert put.status == 201
    http.close()
    return "bearer-ct"


def _refused(resp: Response, tenant: str, reason: str) -> None:
    assert (resp.status, resp.error_code) == (401, "InvalidAuthenticationInfo"), resp.body
    assert resp.header("www-authenticate") == (
        f"Bearer authorization_uri=https://login.microsoftonline.com/{tenant}/oauth2/authorize "
        "resource_id=https://storage.azure.com"
    )
    detail = resp.xml().findtext("AuthenticationErrorDetail") or ""
    assert reason in detail, detail
    assert BLOB not in resp.body


def test_valid_token_reads_and_writes(bearer_facade: BearerFacade, fixture_blob: str) -> None:
    lab = bearer_facade.identity
    token = lab.mint("writer")
    got = _send(bearer_facade, token, "GET", fixture_blob, "b.bin")
    assert (got.status, got.body) == (200, BLOB)
    put = _send(
        bearer_facade, token, "PUT", fixture_blob, "new.bin", body=b"x",
        headers={"x-ms-blob-type": "BlockBlob"},
    )  # fmt: skip
    assert put.status == 201


@pytest.mark.parametrize(
    "audience",
    ["https://storage.azure.com/", "e406a681-f3d4-42a8-90b6-c2b029497af1",
     "https://devstoreaccount1.blob.core.windows.net"],
)  # fmt: skip
def test_audiences_azure_storage_accepts(
    bearer_facade: BearerFacade, fixture_blob: str, audience: str
) -> None:
    token = bearer_facade.identity.mint("reader", aud=audience)
    assert _send(bearer_facade, token, "GET", fixture_blob, "b.bin").status == 200


def test_v2_issuer_form_is_accepted(bearer_facade: BearerFacade, fixture_blob: str) -> None:
    lab = bearer_facade.identity
    token = lab.mint("reader", iss=f"https://login.microsoftonline.com/{lab.tenant}/v2.0")
    assert _send(bearer_facade, token, "GET", fixture_blob, "b.bin").status == 200


def _forged_alg(lab, alg: str) -> str:  # type: ignore[no-untyped-def]
    claims = lab.claims("writer")
    if alg == "none":
        return jwt.encode(claims, None, algorithm="none", headers={"kid": lab.signing_key().kid})
    # HS256 keyed with the published public key: the classic RS/HS confusion
    pem = lab.signing_key().public_pem()
    head = {"alg": "HS256", "typ": "JWT", "kid": lab.signing_key().kid}
    segments = [
        base64.urlsafe_b64encode(json.dumps(x).encode()).rstrip(b"=") for x in (head, claims)
    ]
    import hashlib
    import hmac

    signing_input = b".".join(segments)
    sig = base64.urlsafe_b64encode(hmac.new(pem, signing_input, hashlib.sha256).digest())
    return (signing_input + b"." + sig.rstrip(b"=")).decode()


def _tampered(lab) -> str:  # type: ignore[no-untyped-def]
    head, payload, sig = lab.mint("reader").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["oid"] = lab.principal("writer")[0]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{sig}"


REFUSALS = {
    "expired": (lambda lab: lab.mint("writer", exp=int(time.time()) - 600), "expired"),
    "not-yet-valid": (lambda lab: lab.mint("writer", nbf=int(time.time()) + 900), "not yet valid"),
    "wrong-audience": (lambda lab: lab.mint("writer", aud="https://vault.azure.net"), "Audience"),
    "other-tenant": (
        lambda lab: lab.mint(
            "writer",
            tid="0b0b0b0b-1111-4222-8333-444444444444",
            iss="https://sts.windows.net/0b0b0b0b-1111-4222-8333-444444444444/",
        ),
        "Issuer validation failed",
    ),
    "unknown-issuer": (
        lambda lab: lab.mint("writer", iss=f"https://sts.example.invalid/{lab.tenant}/"),
        "Issuer validation failed",
    ),
    "tampered": (_tampered, "Signature validation failed"),
    "alg-none": (lambda lab: _forged_alg(lab, "none"), "'none' is not allowed"),
    "hs256-public-key": (lambda lab: _forged_alg(lab, "hs"), "'HS256' is not allowed"),
    "garbage": (lambda lab: "not.a.jwt", "not a well-formed JWT"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_invalid_tokens_get_401_with_the_tenant_challenge(
    bearer_facade: BearerFacade, fixture_blob: str, case: str
) -> None:
    make, reason = REFUSALS[case]
    lab = bearer_facade.identity
    _refused(_send(bearer_facade, make(lab), "GET", fixture_blob, "b.bin"), lab.tenant, reason)


def test_unknown_kid_is_refused_after_one_refetch(
    bearer_facade: BearerFacade, fixture_blob: str
) -> None:
    lab = bearer_facade.identity
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(lab.claims("writer"), other, algorithm="RS256", headers={"kid": "nope"})
    _refused(_send(bearer_facade, token, "GET", fixture_blob, "b.bin"), lab.tenant, "'nope'")


def test_bearer_over_http_is_refused(bearer_facade: BearerFacade, fixture_blob: str) -> None:
    lab = bearer_facade.identity
    resp = _send(
        bearer_facade, lab.mint("writer"), "GET", fixture_blob, "b.bin",
        url=bearer_facade.http_account_url,
    )  # fmt: skip
    _refused(resp, lab.tenant, "https only")


def test_old_api_version_is_refused(bearer_facade: BearerFacade, fixture_blob: str) -> None:
    lab = bearer_facade.identity
    resp = _send(
        bearer_facade, lab.mint("writer"), "GET", fixture_blob, "b.bin",
        headers={"x-ms-version": "2017-07-29"},
    )  # fmt: skip
    _refused(resp, lab.tenant, "2017-11-09")


@pytest.mark.parametrize(
    ("who", "method", "container", "status"),
    [
        ("reader", "GET", "bearer-ct", 200),
        ("reader", "PUT", "bearer-ct", 403),  # Reader cannot write
        ("norole", "GET", "bearer-ct", 403),
        ("scoped", "GET", SCOPED_CONTAINER, 200),
        ("scoped", "PUT", SCOPED_CONTAINER, 201),
        ("scoped", "GET", "bearer-ct", 403),  # role on another container
    ],
)
def test_roles_and_scopes(
    bearer_facade: BearerFacade, fixture_blob: str, who: str, method: str, container: str,
    status: int,
) -> None:  # fmt: skip
    token = bearer_facade.identity.mint(who)
    headers = {"x-ms-blob-type": "BlockBlob"} if method == "PUT" else {}
    resp = _send(
        bearer_facade,
        token,
        method,
        container,
        "b.bin",
        body=b"" if method == "GET" else BLOB,
        headers=headers,
    )
    assert resp.status == status, resp.body
    if status == 403:
        assert resp.error_code == "AuthorizationPermissionMismatch"
        assert BLOB not in resp.body


def test_list_containers_needs_an_account_scope_role(bearer_facade: BearerFacade) -> None:
    lab = bearer_facade.identity
    assert _send(bearer_facade, lab.mint("reader"), "GET", query={"comp": "list"}).status == 200
    denied = _send(bearer_facade, lab.mint("scoped"), "GET", query={"comp": "list"})
    assert (denied.status, denied.error_code) == (403, "AuthorizationPermissionMismatch")


def test_rotated_key_is_fetched_on_first_sight_and_old_tokens_still_pass(
    bearer_facade: BearerFacade, fixture_blob: str
) -> None:
    from harness.identity.keys import KeyRing

    lab = bearer_facade.identity
    before = lab.mint("reader")
    assert _send(bearer_facade, before, "GET", fixture_blob, "b.bin").status == 200
    ring = KeyRing.load_or_create(lab.state_dir, lab.config.token_lifetime_s)
    new = ring.rotate(lead_s=0)  # the running service reloads the ring and publishes it
    after = lab.mint("reader")
    assert jwt.get_unverified_header(after)["kid"] == new.kid
    time.sleep(1.1)  # past the façade's refresh floor (1 s here), spent by earlier unknown kids
    assert _send(bearer_facade, after, "GET", fixture_blob, "b.bin").status == 200
    assert _send(bearer_facade, before, "GET", fixture_blob, "b.bin").status == 200


def test_put_blob_from_url_passes_the_source_bearer_token(
    bearer_facade: BearerFacade, fixture_blob: str
) -> None:
    """Bearer on both sides: the destination's Authorization, and x-ms-copy-source-authorization
    forwarded to a source that requires a token (the same https façade here)."""
    lab = bearer_facade.identity
    source = f"{bearer_facade.account_url}/{fixture_blob}/b.bin"
    headers = {"x-ms-blob-type": "BlockBlob", "x-ms-copy-source": source}
    no_token = _send(
        bearer_facade, lab.mint("writer"), "PUT", fixture_blob, "copy.bin", headers=headers
    )
    assert (no_token.status, no_token.error_code) == (401, "CannotVerifyCopySource")
    headers["x-ms-copy-source-authorization"] = f"Bearer {lab.mint('reader')}"
    copied = _send(
        bearer_facade, lab.mint("writer"), "PUT", fixture_blob, "copy.bin", headers=headers
    )
    assert copied.status == 201, copied.body
    got = _send(bearer_facade, lab.mint("reader"), "GET", fixture_blob, "copy.bin")
    assert (got.status, got.body) == (200, BLOB)

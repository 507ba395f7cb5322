"""OAuth bearer tokens (Entra ID JWTs): signature against the issuers' published keys, claims,
then the account's role assignments.

Keys: each trusted issuer's OIDC discovery document (``<issuer>/.well-known/openid-configuration``)
names its ``jwks_uri``; both are fetched over https (trusting ``ServerConfig.trust_ca``) and kept
per worker. A token whose ``kid`` is not known refetches the JWKS, at most once per
``jwks_refresh_floor_s`` per issuer (a stream of forged kids cannot turn into a stream of fetches).
Fetching is asynchronous (``ensure_keys``, awaited before ``verify``), so the first bearer request
of a worker never blocks its event loop; ``verify`` itself is synchronous and uses cached keys only.

Checks, in order: https, x-ms-version >= 2017-11-09, RS256 only (never ``none``, never an HMAC
keyed with the public key), a known ``kid``, the signature, ``nbf``/``exp`` with 5 minutes of skew,
the issuer (v1 ``https://sts.windows.net/<tid>/`` or v2 ``https://login.microsoftonline.com/<tid>/
v2.0`` of the account's tenant, or what a trusted discovery document names), ``tid``, and the
audience (``https://storage.azure.com`` with or without ``/``, the account's blob URL, the
Storage app id). Failures are 401 InvalidAuthenticationInfo with Azure's bearer challenge naming
the account's tenant and the reason in AuthenticationErrorDetail; a valid token whose principal
(``oid`` or ``appid``) holds no role granting the operation is 403 AuthorizationPermissionMismatch.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from reference_server.auth import Access, Principal, RequestView
from reference_server.config import ROLES, Account, BearerConfig
from reference_server.errors import StorageError

log = logging.getLogger(__name__)

MIN_VERSION = "2017-11-09"  # the first x-ms-version that takes bearer tokens
SKEW_S = 300
ALGORITHMS = ["RS256"]  # the allow-list: asymmetric only, so a public key can never be an HMAC key
STORAGE_APP_ID = "e406a681-f3d4-42a8-90b6-c2b029497af1"
STORAGE_AUDIENCES = {"https://storage.azure.com", "https://storage.azure.com/", STORAGE_APP_ID}
FETCH_TIMEOUT_S = 10.0


def v1_issuer(tenant: str) -> str:
    return f"https://sts.windows.net/{tenant}/"


def v2_issuer(tenant: str) -> str:
    return f"https://login.microsoftonline.com/{tenant}/v2.0"


def challenge(tenant: str) -> str:
    return (
        f"Bearer authorization_uri=https://login.microsoftonline.com/{tenant}/oauth2/authorize "
        "resource_id=https://storage.azure.com"
    )


# ---- key cache ---------------------------------------------------------------------------------


@dataclass
class IssuerKeys:
    """What one trusted issuer published, as last fetched."""

    discovered_issuer: str = ""
    jwks_uri: str = ""
    keys: dict[str, Any] = field(default_factory=dict)  # kid -> RSA public key
    fetched_at: float = float("-inf")  # last JWKS fetch attempt (monotonic)
    lock: asyncio.Lock | None = None
    lock_loop: object = None  # the loop the lock belongs to (a lock is bound to one loop)


_CACHE: dict[str, IssuerKeys] = {}  # issuer URL -> keys; one per worker process
# Tokens whose signature and claims already passed, exact string -> claims: a client sends one
# token for many requests, and the RSA verification and JSON decoding are most of the cost.
# Time window, audience and roles are still checked on every request.
# Keyed by account too: which issuers and tenant a token was checked against is per account.
_VERIFIED: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
VERIFIED_MAX = 4096


def _client_ssl(trust_ca: Path | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(trust_ca) if trust_ca else None)


async def _fetch_json(url: str, trust_ca: Path | None) -> Any:
    import aiohttp

    if not url.startswith("https://"):
        raise ValueError(f"{url}: issuer documents are fetched over https only")
    timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(url, ssl=_client_ssl(trust_ca)) as resp:
            resp.raise_for_status()
            return await resp.json(content_type=None)


def _parse_jwks(document: Any) -> dict[str, Any]:
    keys = {}
    for jwk in (document or {}).get("keys", []):
        if jwk.get("kty") != "RSA" or not jwk.get("kid"):
            continue  # only RSA signing keys are ever used
        try:
            keys[jwk["kid"]] = jwt.algorithms.RSAAlgorithm.from_jwk(jwk)
        except (jwt.InvalidKeyError, ValueError, KeyError):
            log.warning("ignoring a malformed JWK %r", jwk.get("kid"))
    return keys


async def _refresh(issuer: str, entry: IssuerKeys, trust_ca: Path | None) -> None:
    entry.fetched_at = time.monotonic()
    try:
        if not entry.jwks_uri:
            doc = await _fetch_json(f"{issuer}/.well-known/openid-configuration", trust_ca)
            entry.discovered_issuer = str(doc.get("issuer", ""))
            entry.jwks_uri = str(doc["jwks_uri"])
        entry.keys = _parse_jwks(await _fetch_json(entry.jwks_uri, trust_ca))
    except Exception as exc:  # the token then fails as signed by an unknown key
        log.warning("fetching the keys of issuer %s failed: %s", issuer, exc)


async def ensure_keys(
    account: str, token: str, bearer: BearerConfig, trust_ca: Path | None, refresh_floor_s: float
) -> None:
    """Make sure the key the token names is cached when any trusted issuer publishes it:
    fetch discovery and JWKS the first time, refetch on an unknown kid (rate-limited)."""
    if (account, token) in _VERIFIED:
        return
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return  # verify() explains what is wrong with it
    if any(kid in _CACHE.get(i, IssuerKeys()).keys for i in bearer.issuers):
        return
    for issuer in bearer.issuers:
        entry = _CACHE.setdefault(issuer, IssuerKeys())
        loop = asyncio.get_running_loop()
        if entry.lock is None or entry.lock_loop is not loop:
            entry.lock, entry.lock_loop = asyncio.Lock(), loop
        async with entry.lock:  # a burst of first requests makes one fetch
            if kid in entry.keys:
                return
            if time.monotonic() - entry.fetched_at < refresh_floor_s:
                continue
            await _refresh(issuer, entry, trust_ca)
            if kid in entry.keys:
                return


def clear_cache() -> None:
    _CACHE.clear()
    _VERIFIED.clear()


# ---- verification ------------------------------------------------------------------------------


def _fail(bearer: BearerConfig, detail: str) -> StorageError:
    return StorageError(
        "InvalidAuthenticationInfo",
        headers={"WWW-Authenticate": challenge(bearer.tenant)},
        details={"AuthenticationErrorDetail": detail},
    )


def _audiences(view: RequestView, account: Account) -> set[str]:
    host = view.headers.get("Host", "")
    own = f"https://{host}/{account.name}" if view.path_style else f"https://{host}"
    blob = f"https://{account.name}.blob.core.windows.net"
    return STORAGE_AUDIENCES | {own, own + "/", blob, blob + "/"}


def _issuers(bearer: BearerConfig) -> set[str]:
    allowed = {v1_issuer(bearer.tenant), v2_issuer(bearer.tenant)}
    for issuer in bearer.issuers:
        discovered = _CACHE.get(issuer, IssuerKeys()).discovered_issuer.replace(
            "{tenantid}", bearer.tenant
        )
        if discovered and bearer.tenant in discovered:
            allowed.add(discovered)
    return allowed


def _key_for(bearer: BearerConfig, kid: str | None) -> Any:
    for issuer in bearer.issuers:
        key = _CACHE.get(issuer, IssuerKeys()).keys.get(kid or "")
        if key is not None:
            return key
    return None


def role_allows(bearer: BearerConfig, principals: Iterable[str], access: Access) -> bool:
    """True when one of ``principals`` holds a role granting ``access``: one of its permission
    letters ("" = any role) at account scope, or on the operation's container."""
    wanted = {p.lower() for p in principals if p}
    for assignment in bearer.roles:
        if assignment.principal.lower() not in wanted:
            continue
        granted = ROLES[assignment.role]
        if access.permission and not any(p in granted for p in access.permission):
            continue
        if access.resource_type == "s" and "w" in access.permission and "o" not in granted:
            continue  # service properties: Owner only
        if assignment.scope == "account":
            return True
        if access.container and assignment.scope == f"containers/{access.container}":
            return True
    return False


def validate_token(
    token: str, view: RequestView, account: Account, now: float | None = None
) -> dict[str, Any]:
    """The verified claims of ``token`` for a request to ``account``; StorageError 401 when any
    check fails."""
    bearer = account.bearer
    assert bearer is not None
    if not view.secure:
        raise _fail(bearer, "Bearer tokens are accepted over https only.")
    if view.headers.get("x-ms-version", "") < MIN_VERSION:
        raise _fail(bearer, f"Bearer tokens need x-ms-version {MIN_VERSION} or later.")
    cache_key = (account.name, token)
    claims = _VERIFIED.get(cache_key)
    if claims is None:
        claims = _verified_claims(token, bearer)
        _VERIFIED[cache_key] = claims
        if len(_VERIFIED) > VERIFIED_MAX:
            _VERIFIED.popitem(last=False)
    else:
        _VERIFIED.move_to_end(cache_key)
        current = time.time() if now is None else now
        if current > claims["exp"] + SKEW_S:
            raise _fail(bearer, "IDX10223: Lifetime validation failed. The token is expired.")
        if current < claims["nbf"] - SKEW_S:
            raise _fail(bearer, "IDX10222: Lifetime validation failed. The token is not yet valid.")
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if not set(audiences) & _audiences(view, account):
        raise _fail(bearer, f"Audience validation failed. Audience did not match: {audiences}.")
    return claims


def _verified_claims(token: str, bearer: BearerConfig) -> dict[str, Any]:
    """Signature, lifetime, issuer and tenant of a token not seen before."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise _fail(bearer, f"The token is not a well-formed JWT: {exc}") from None
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise _fail(bearer, f"The token's signing algorithm {alg!r} is not allowed (RS256 only).")
    key = _key_for(bearer, header.get("kid"))
    if key is None:
        raise _fail(
            bearer,
            f"IDX10503: Signature validation failed. The signing key {header.get('kid')!r} is "
            "not published by any issuer trusted for this account.",
        )
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=ALGORITHMS,
            leeway=SKEW_S,
            options={
                "require": ["exp", "nbf", "iss", "aud", "tid"],
                "verify_aud": False,
                "verify_iss": False,
                "verify_iat": False,
            },
        )
    except jwt.ExpiredSignatureError:
        raise _fail(bearer, "IDX10223: Lifetime validation failed. The token is expired.") from None
    except jwt.ImmatureSignatureError:
        raise _fail(
            bearer, "IDX10222: Lifetime validation failed. The token is not yet valid."
        ) from None
    except jwt.InvalidSignatureError:
        raise _fail(bearer, "IDX10511: Signature validation failed.") from None
    except jwt.PyJWTError as exc:
        raise _fail(bearer, f"The token failed validation: {exc}") from None
    if claims["iss"] not in _issuers(bearer) or str(claims["tid"]).lower() != bearer.tenant:
        raise _fail(
            bearer,
            f"Issuer validation failed. Issuer {claims['iss']!r} (tid {claims['tid']!r}) is not "
            f"the tenant {bearer.tenant} of this account.",
        )
    return claims


def verify(view: RequestView, account: Account, access: Access) -> Principal:
    """Authorize a request carrying ``Authorization: Bearer <token>``."""
    if account.bearer is None:
        raise StorageError("AuthenticationFailed", "Bearer tokens are not enabled on this server")
    token = view.headers.get("Authorization", "").strip()[len("Bearer") :].strip()
    claims = validate_token(token, view, account)
    principals = [str(claims.get("oid", "")), str(claims.get("appid") or claims.get("azp", ""))]
    if not role_allows(account.bearer, principals, access):
        raise StorageError(
            "AuthorizationPermissionMismatch",
            details={
                "AuthenticationErrorDetail": f"Principal {principals[0] or principals[1]} holds "
                "no role assignment granting this operation."
            },
        )
    details = {"oid": principals[0], "appid": principals[1], "tid": str(claims["tid"])}
    return Principal("bearer", account.name, details)

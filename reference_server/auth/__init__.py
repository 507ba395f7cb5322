"""Authorization of one request: Shared Key, SAS (account, service, user delegation), bearer.

The HTTP layer builds a RequestView and an Access (what the operation needs) and calls
``authorize``; it raises StorageError (403 AuthenticationFailed, AuthorizationPermissionMismatch,
...) or returns the Principal. Each scheme is a small module; canonicalisation is written once in
``shared_key`` / ``sas`` and used both to verify (server) and to sign (harness clients).

Schemes carried in the Authorization header are looked up in ``HEADER_SCHEMES``. Bearer tokens
need their issuer's keys: ``prepare`` (awaited before ``authorize``) fetches them without
blocking the event loop, so ``authorize`` stays synchronous.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from reference_server.config import Account, ServerConfig
from reference_server.errors import StorageError


@dataclass(frozen=True)
class RequestView:
    method: str
    raw_path: str  # URL path exactly as sent, percent-encoded (e.g. /devstoreaccount1/ct/a%2Fb)
    query: list[tuple[str, str]]  # decoded query parameters in arrival order
    headers: Mapping[str, str]  # case-insensitive mapping (aiohttp CIMultiDictProxy)
    account: str  # account the request addresses
    path_style: bool  # True when the account is the first path segment (IP hosts)
    secure: bool = False  # arrived over TLS
    client_ip: str | None = None


@dataclass(frozen=True)
class Access:
    """What one operation needs, for SAS permission/resource checks."""

    # SAS permission letters r a c w d l t m x y i; several letters mean any one of them suffices
    # (Put Blob: "cw", Azure accepts Create or Write); "" accepts any signed permission
    permission: str
    resource_type: str  # account SAS srt letters, any one suffices: "s", "c" container, "o" object
    container: str | None = None
    blob: str | None = None
    is_read: bool = False  # GET/HEAD/list: allowed anonymously when the account says so
    # service SAS signed resources (sr) that may authorize the operation: container and blob SAS
    # for blob operations (the default, e.g. a copy source read); none for container operations
    service_sas: tuple[str, ...] = ("c", "b")


@dataclass(frozen=True)
class Principal:
    scheme: str  # "sharedkey", "sas", "bearer", "anonymous"
    account: str
    details: dict[str, str] = field(default_factory=dict)


Verifier = Callable[[RequestView, Account, Access], Principal]

# Anonymous requests with x-ms-version at or after this get 401 NoAuthenticationInformation and a
# bearer challenge, as Azure answers; older (or no) versions get 404 ResourceNotFound.
BEARER_CHALLENGE_VERSION = "2019-12-12"
BEARER_CHALLENGE = (
    "Bearer authorization_uri=https://login.microsoftonline.com/common/oauth2/authorize "
    "resource_id=https://storage.azure.com"
)


def _shared_key(view: RequestView, account: Account, access: Access) -> Principal:
    from reference_server.auth import shared_key

    return shared_key.verify(view, account)  # Shared Key grants the whole account


def _bearer(view: RequestView, account: Account, access: Access) -> Principal:
    from reference_server.auth import bearer

    return bearer.verify(view, account, access)


HEADER_SCHEMES: dict[str, Verifier] = {"SharedKey": _shared_key, "Bearer": _bearer}


async def prepare(view: RequestView, account: Account, config: ServerConfig) -> None:
    """Fetch what ``authorize`` will need from the network: a bearer token's signing keys."""
    header = view.headers.get("Authorization", "").strip()
    if account.bearer is not None and header.startswith("Bearer "):
        from reference_server.auth import bearer

        await bearer.ensure_keys(
            account.name,
            header[len("Bearer ") :].strip(),
            account.bearer,
            config.trust_ca,
            config.jwks_refresh_floor_s,
        )


def _anonymous_denied(view: RequestView) -> StorageError:
    if view.headers.get("x-ms-version", "") >= BEARER_CHALLENGE_VERSION:
        return StorageError(
            "NoAuthenticationInformation", headers={"WWW-Authenticate": BEARER_CHALLENGE}
        )
    return StorageError("ResourceNotFound")


def authorize(view: RequestView, account: Account, access: Access) -> Principal:
    """Authorization header (SharedKey, Bearer) first, then a SAS in the query, then anonymous
    (reads only, and only when the account allows it). Raises StorageError on refusal."""
    header = view.headers.get("Authorization", "").strip()
    if header:
        scheme = header.split(" ", 1)[0]
        verifier = HEADER_SCHEMES.get(scheme)
        if verifier is None:
            detail = f"Authorization scheme '{scheme}' is not supported."
            raise StorageError(
                "AuthenticationFailed", details={"AuthenticationErrorDetail": detail}
            )
        return verifier(view, account, access)
    from reference_server.auth import sas

    if sas.is_sas(view.query):
        return sas.verify(view, account, access)
    if account.allow_anonymous_read and access.is_read:
        return Principal("anonymous", account.name)
    raise _anonymous_denied(view)

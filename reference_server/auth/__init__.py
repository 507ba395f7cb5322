"""Authorization of one request: Shared Key, SAS (account, service), later bearer tokens.

The HTTP layer builds a RequestView and an Access (what the operation needs) and calls
``authorize``; it raises StorageError (403 AuthenticationFailed, AuthorizationPermissionMismatch,
...) or returns the Principal. Each scheme is a small module; canonicalisation is written once in
``shared_key`` / ``sas`` and used both to verify (server) and to sign (harness clients).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from reference_server.config import Account


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

    permission: str  # one SAS permission letter: r a c w d l t m x y i
    resource_type: str  # account SAS srt letter: "s" service, "c" container, "o" object
    container: str | None = None
    blob: str | None = None
    is_read: bool = False  # GET/HEAD/list: allowed anonymously when the account says so


@dataclass(frozen=True)
class Principal:
    scheme: str  # "sharedkey", "sas", "bearer", "anonymous"
    account: str
    details: dict[str, str] = field(default_factory=dict)


def authorize(view: RequestView, account: Account, access: Access) -> Principal:
    """Placeholder until the Shared Key / SAS modules land: allows everything."""
    return Principal("anonymous", account.name)

"""Shared Key for the Blob service (version 2009-09-19 and later): sign and verify.

The string-to-sign is written once here and used by the server (``verify``) and by every client
of the project (``sign_request``)::

    VERB \\n Content-Encoding \\n Content-Language \\n Content-Length (empty when 0) \\n
    Content-MD5 \\n Content-Type \\n Date \\n If-Modified-Since \\n If-Match \\n If-None-Match \\n
    If-Unmodified-Since \\n Range \\n
    x-ms-*:value \\n ... (lowercase names, sorted)
    /account/<raw path> [\\n name:v1,v2 ...] (lowercase query names, sorted; values decoded, sorted)

The raw path is the path exactly as sent, so with path-style URLs (``/devstoreaccount1/ct/b``) the
canonicalized resource is ``/devstoreaccount1/devstoreaccount1/ct/b`` (the emulator convention,
which both azure-storage-blob and AzCopy follow) and with virtual-host URLs ``/account/ct/b``.

Real clients differ in small ways, so the verifier accepts any of a few canonical forms:
- x-ms-* header order: azure-storage-blob sorts like the service (a culture-aware order that
  ignores '-'), AzCopy (Go SDK) sorts by bytes; they differ for names such as ``x-ms-meta-a_b``
  beside ``x-ms-meta-ab``.
- the Go SDK always leaves the Date line empty (it sends x-ms-date); the Python SDK never fills the
  Range line (it sends x-ms-range).
Every form is HMAC'd with every key of the account and compared in constant time. The
canonicalized resource is never shortened: it is ``/account`` + the path exactly as sent, which
is what every client signs (the Python SDK's ``_get_canonicalized_resource`` and the Go SDK's
``buildCanonicalizedResource`` alike), so a signature names one path.

Because the string-to-sign does not include the Host header, a path-style request
(``/acct/ct/blob``, signed as ``/acct/acct/ct/blob``) would verify unchanged when replayed with a
virtual-host name (``Host: acct.blob.<domain>``), where the same path addresses blob ``ct/blob`` of
a container named ``acct``. Every path-style signature has such a twin, and only those twins name
a container called like the account, so the verifier refuses Shared Key on virtual-host requests
for that container (403 AuthenticationFailed): with both addressing styles on one endpoint, their
signature cannot tell which one the client meant.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import ipaddress
import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import formatdate, parsedate_to_datetime
from itertools import product
from urllib.parse import parse_qsl, unquote, urlsplit

from reference_server.auth import Principal, RequestView
from reference_server.config import Account
from reference_server.errors import StorageError

log = logging.getLogger(__name__)

# Azure rejects a request whose date is further than this from the server clock.
MAX_CLOCK_SKEW = timedelta(minutes=15)

# The standard headers of the string-to-sign, in order; "date" and "range" may be blanked (above).
_STANDARD_HEADERS = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)
_CONTENT_LENGTH = _STANDARD_HEADERS.index("content-length")
_DATE = _STANDARD_HEADERS.index("date")
_RANGE = _STANDARD_HEADERS.index("range")

# The service's header collation: characters with a weight, from lightest to heaviest; any other
# character ('-', "'", '/', ...) is ignored at the first level. Letters compare case-insensitively.
_WEIGHTED = "!#$%&*.^_`|~+0123456789abcdefghijklmnopqrstuvwxyz"
_RANK = {c: i for i, c in enumerate(_WEIGHTED)}
# Second level: only "'" and '-' count; the string whose first such character comes later (or
# that has none) sorts first.
_SECOND_LEVEL = {"'": 0, "-": 1}
_END = -(1 << 30)


def _service_collation_key(name: str) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
    lowered = name.lower()
    primary = tuple(_RANK[c] for c in lowered if c in _RANK)
    secondary = tuple((-i, _SECOND_LEVEL[c]) for i, c in enumerate(lowered) if c in _SECOND_LEVEL)
    return primary, (*secondary, (_END, 0))


# The same few x-ms-* names come on every request: their keys are cached, short names only, so a
# client sending many long names cannot grow the cache's memory.
_cached_collation_key = functools.lru_cache(maxsize=1024)(_service_collation_key)


def _collation_key(name: str) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
    return _cached_collation_key(name) if len(name) <= 64 else _service_collation_key(name)


def _lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Lowercase names; repeated headers (a multidict) are joined with ',' as Azure does."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        key = name.strip().lower()
        value = value.strip()
        out[key] = f"{out[key]},{value}" if key in out else value
    return out


def canonicalized_headers(headers: Mapping[str, str], order: str = "service") -> str:
    """The x-ms-* lines, each ending in a newline; ``order`` is "service" or "ordinal" (bytes)."""
    return _canonical_lines(_lower_headers(headers), order)


def _canonical_lines(lowered: dict[str, str], order: str) -> str:
    names = [n for n in lowered if n.startswith("x-ms-")]
    names.sort(key=_collation_key if order == "service" else None)
    return "".join(f"{n}:{lowered[n]}\n" for n in names)


def canonicalized_resource(account: str, path: str, query: list[tuple[str, str]]) -> str:
    """``/account`` + the raw path + one line per query name (values decoded, sorted)."""
    grouped: dict[str, list[str]] = {}
    for name, value in query:
        grouped.setdefault(name.lower(), []).append(value)
    lines = [f"\n{n}:{','.join(sorted(grouped[n]))}" for n in sorted(grouped)]
    return f"/{account}{path or '/'}" + "".join(lines)


def _strip_query(raw_path: str) -> str:
    # aiohttp's request.raw_path carries the query string too
    return raw_path.split("?", 1)[0]


def string_to_sign(
    method: str,
    raw_path: str,
    query: list[tuple[str, str]],
    headers: Mapping[str, str],
    account: str,
    path_style: bool,
    *,
    header_order: str = "service",
    blank_date: bool = False,
    blank_range: bool = False,
) -> str:
    """The Shared Key string-to-sign. The keyword options produce the variants real clients sign
    (see the module docstring); the defaults are the form Azure documents."""
    lowered = _lower_headers(headers)
    values = []
    for name in _STANDARD_HEADERS:
        value = lowered.get(name, "")
        if (name == "content-length" and value == "0") or (name == "date" and blank_date):
            value = ""
        if name == "range" and blank_range:
            value = ""
        values.append(value)
    path = _strip_query(raw_path)
    return (
        method.upper()
        + "\n"
        + "".join(v + "\n" for v in values)
        + canonicalized_headers(headers, header_order)
        + canonicalized_resource(account, path, query)
    )


_KEYED: dict[str, hmac.HMAC] = {}  # base64 key -> HMAC keyed and ready to copy


def compute_signature(key_b64: str, string_to_sign: str) -> str:
    """Base64 HMAC-SHA256 of the UTF-8 string-to-sign under the base64-decoded key."""
    keyed = _KEYED.get(key_b64)
    if keyed is None:
        keyed = hmac.new(base64.b64decode(key_b64), digestmod=hashlib.sha256)
        if len(_KEYED) < 1024:  # accounts come from the config: a handful of keys
            _KEYED[key_b64] = keyed
    mac = keyed.copy()
    # surrogateescape: header bytes that are not UTF-8 (0xFF) are signed as sent, not a 500
    mac.update(string_to_sign.encode("utf-8", "surrogateescape"))
    return base64.b64encode(mac.digest()).decode("ascii")


def _is_path_style(host: str, path: str, account: str) -> bool:
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        is_local = True
    except ValueError:
        is_local = host == "localhost"
    first = path.lstrip("/").split("/", 1)[0]
    return is_local and first == account


def sign_request(
    method: str, url: str, headers: dict[str, str], account: str, key_b64: str
) -> dict[str, str]:
    """Add ``x-ms-date`` (when missing) and ``Authorization: SharedKey account:sig`` to ``headers``
    and return it. ``url`` is the full URL as it will be sent (path percent-encoded as on the
    wire). Content-Length must already be in ``headers`` when a body is sent, as HTTP clients
    add it after signing."""
    if not any(k.lower() in ("x-ms-date", "date") for k in headers):
        headers["x-ms-date"] = formatdate(usegmt=True)
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    path = parts.path or "/"
    sts = string_to_sign(
        method, path, query, headers, account, _is_path_style(parts.hostname or "", path, account)
    )
    for existing in [k for k in headers if k.lower() == "authorization"]:
        del headers[existing]
    headers["Authorization"] = f"SharedKey {account}:{compute_signature(key_b64, sts)}"
    return headers


def _fail(detail: str) -> StorageError:
    return StorageError("AuthenticationFailed", details={"AuthenticationErrorDetail": detail})


# Concurrent clients send the same x-ms-date (whole seconds) many times: parse each once. The
# skew is still checked against the clock on every request; malformed dates are not cached.
_parse_date = functools.lru_cache(maxsize=256)(parsedate_to_datetime)


def check_request_date(headers: Mapping[str, str], now: datetime | None = None) -> datetime:
    """The request time from x-ms-date (preferred) or Date; AuthenticationFailed when it is
    missing, malformed or more than MAX_CLOCK_SKEW away from the server clock."""
    return _request_date(_lower_headers(headers), now)


def _request_date(lowered: dict[str, str], now: datetime | None = None) -> datetime:
    raw = lowered.get("x-ms-date") or lowered.get("date")
    if not raw:
        raise _fail("The Date header or the x-ms-date header is required.")
    try:
        when = _parse_date(raw)
    except (TypeError, ValueError) as exc:
        raise _fail(f"The date header value '{raw}' is not a valid HTTP date.") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    if when < now - MAX_CLOCK_SKEW:
        raise _fail(f"Request date header too old: '{raw}'")
    if when > now + MAX_CLOCK_SKEW:
        raise _fail(f"Request date header is in the future: '{raw}'")
    return when


def _candidates(view: RequestView, account: str, lowered: dict[str, str]) -> Iterator[str]:
    """The strings-to-sign real clients produce for this request (``lowered``: its headers by
    ``_lower_headers``), distinct, most common first (the documented form, which the Python SDK
    signs; AzCopy's differs only in rare header orders). Generated lazily: a good signature
    costs one HMAC."""
    values = [lowered.get(name, "") for name in _STANDARD_HEADERS]
    if values[_CONTENT_LENGTH] == "0":
        values[_CONTENT_LENGTH] = ""
    blank_dates = [False, True] if values[_DATE] and lowered.get("x-ms-date") else [False]
    blank_ranges = [False, True] if values[_RANGE] else [False]
    service = _canonical_lines(lowered, "service")
    ordinal: str | None = None  # sorted only when the first form did not verify
    resource = canonicalized_resource(account, _strip_query(view.raw_path), view.query)
    verb = view.method.upper() + "\n"
    for bd, br in product(blank_dates, blank_ranges):
        line_values = list(values)
        if bd:
            line_values[_DATE] = ""
        if br:
            line_values[_RANGE] = ""
        head = verb + "".join(v + "\n" for v in line_values)
        yield head + service + resource
        if ordinal is None:
            ordinal = _canonical_lines(lowered, "ordinal")
        if ordinal != service:
            yield head + ordinal + resource


def _first_segment(raw_path: str) -> str:
    segment = _strip_query(raw_path).lstrip("/").split("/", 1)[0]
    try:
        return unquote(segment, errors="strict")
    except UnicodeDecodeError:
        return segment


def verify(view: RequestView, account: Account) -> Principal:
    """Verify ``Authorization: SharedKey account:signature`` against every key of the account.
    Raises StorageError AuthenticationFailed (with an AuthenticationErrorDetail) on any failure.
    Shared Key grants the whole account: no permission checks follow."""
    header = view.headers.get("Authorization", "")
    scheme, _, credential = header.strip().partition(" ")
    if scheme != "SharedKey":
        raise _fail(f"Authorization scheme '{scheme}' is not supported; use SharedKey.")
    name, sep, signature = credential.strip().rpartition(":")
    if not sep or not name or not signature:
        raise _fail("The Authorization header is not of the form 'SharedKey account:signature'.")
    if name != account.name:
        raise _fail(f"The account '{name}' in the Authorization header does not match the request.")
    lowered = _lower_headers(view.headers)  # once: the date check and the candidates share it
    _request_date(lowered)
    if not view.path_style and _first_segment(view.raw_path) == account.name:
        raise _fail(
            f"Shared Key cannot address the container '{account.name}' by virtual-host name on "
            "this service: the same signature is valid for a path-style request to another "
            "resource. Use path-style addressing or a SAS."
        )
    presented = signature.encode("ascii", "replace")
    # Each comparison is constant-time; stopping at the first match reveals only which variant
    # the client itself signed, nothing about the key.
    first = None
    for sts in _candidates(view, account.name, lowered):
        first = first or sts
        for key_index, key in enumerate(account.keys):
            if hmac.compare_digest(compute_signature(key, sts).encode("ascii"), presented):
                return Principal("sharedkey", account.name, {"key_index": str(key_index)})
    log.debug("Shared Key mismatch for account %s; string-to-sign %r", name, first)
    raise _fail(
        "The MAC signature found in the HTTP request is not the same as any computed "
        f"signature. Server used following string to sign: '{first}'."
    )

"""The lab's client-side signing: Shared Key and account / service SAS, written from Azure's REST
documentation ("Authorize with Shared Key", "Create an account SAS", "Create a service SAS").

The façade's verifier is deliberately not reused: a canonicalisation bug shared by signer and
verifier would pass every check. ``tests/harness/test_signing.py`` holds these signatures equal
to azure-storage-blob's for a table of requests and tokens.

Shared Key string-to-sign (version 2009-09-19 and later)::

    VERB \\n Content-Encoding \\n Content-Language \\n Content-Length (empty when 0) \\n
    Content-MD5 \\n Content-Type \\n Date \\n If-Modified-Since \\n If-Match \\n If-None-Match \\n
    If-Unmodified-Since \\n Range \\n
    CanonicalizedHeaders (x-ms-* lines) + CanonicalizedResource

CanonicalizedResource is ``/account`` followed by the encoded URI path as sent, so a path-style
URL (``/devstoreaccount1/ct/b``) repeats the account, then one ``name:value`` line per query
parameter (lowercase names, sorted; values decoded, a repeated name's values sorted and joined
with ',').
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import formatdate
from urllib.parse import quote, unquote, urlsplit

# The signed version of the SAS tokens the lab makes (the API version its requests carry).
SAS_VERSION = "2025-07-05"

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

# The service sorts x-ms-* names with the Windows culture-aware ("word sort") comparison, not by
# bytes: letters compare case-insensitively after digits and after these symbols, in this order,
# and the hyphen and apostrophe are ignored at first and only break ties (see _header_sort_key).
_SYMBOLS_THEN_ALPHANUMERICS = "!#$%&*.^_`|~+0123456789abcdefghijklmnopqrstuvwxyz"
_WORD_SORT_MARKS = "'-"
_NO_MORE_MARKS = -(1 << 30)


def _header_sort_key(name: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Sort key of a lowercase header name in the service's order. First the weighted characters
    alone; on a tie, the hyphens and apostrophes by position: at the first position where only one
    name has such a mark, the name without it comes first (so 'x-ms-meta-ab' < 'x-ms-meta-a-b')."""
    first = [_SYMBOLS_THEN_ALPHANUMERICS.index(c) for c in name if c in _SYMBOLS_THEN_ALPHANUMERICS]
    # (position, mark) pairs; a later position sorts first, so the position is negated, and a
    # sentinel below every real position makes "no more marks" sort first.
    marks = [
        (-pos, _WORD_SORT_MARKS.index(c)) for pos, c in enumerate(name) if c in _WORD_SORT_MARKS
    ]
    return first, [*marks, (_NO_MORE_MARKS, 0)]


def _canonical_headers(headers: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """Lowercase names (repeats joined with ','), and the x-ms-* lines in the service's order."""
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        key, value = name.strip().lower(), value.strip()
        lowered[key] = f"{lowered[key]},{value}" if key in lowered else value
    names = sorted((n for n in lowered if n.startswith("x-ms-")), key=_header_sort_key)
    return lowered, "".join(f"{n}:{lowered[n]}\n" for n in names)


def _canonical_resource(account: str, path: str, query: str) -> str:
    values: dict[str, list[str]] = {}
    for pair in filter(None, query.split("&")):
        name, _, value = pair.partition("=")
        values.setdefault(unquote(name).lower(), []).append(unquote(value))
    lines = "".join(f"\n{name}:{','.join(sorted(values[name]))}" for name in sorted(values))
    return f"/{account}{path or '/'}{lines}"


def string_to_sign(method: str, url: str, headers: Mapping[str, str], account: str) -> str:
    """The documented Shared Key string-to-sign of a request to ``url`` (path percent-encoded as
    on the wire) carrying ``headers``."""
    lowered, x_ms_lines = _canonical_headers(headers)
    values = [lowered.get(name, "") for name in _STANDARD_HEADERS]
    if lowered.get("content-length") == "0":  # documented: empty, not "0" (version 2015-02-21+)
        values[_STANDARD_HEADERS.index("content-length")] = ""
    parts = urlsplit(url)
    resource = _canonical_resource(account, parts.path, parts.query)
    return method.upper() + "\n" + "".join(v + "\n" for v in values) + x_ms_lines + resource


def hmac_sha256(key_b64: str, text: str) -> str:
    """Base64 HMAC-SHA256 of the UTF-8 text under the base64-decoded account key. Raw bytes
    carried as surrogate escapes (a deliberately malformed header) are signed as sent."""
    data = text.encode("utf-8", "surrogateescape")
    digest = hmac.new(base64.b64decode(key_b64), data, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def sign_request(
    method: str, url: str, headers: dict[str, str], account: str, key_b64: str
) -> dict[str, str]:
    """Add ``x-ms-date`` (when no date is set) and ``Authorization: SharedKey account:sig`` to
    ``headers`` and return it. Content-Length must already be there when a body is sent."""
    if not any(k.lower() in ("x-ms-date", "date") for k in headers):
        headers["x-ms-date"] = formatdate(usegmt=True)
    for existing in [k for k in headers if k.lower() == "authorization"]:
        del headers[existing]
    signature = hmac_sha256(key_b64, string_to_sign(method, url, headers, account))
    headers["Authorization"] = f"SharedKey {account}:{signature}"
    return headers


def _sas_time(value: datetime | None) -> str:
    """ISO 8601 UTC without fractions; a naive datetime is taken as UTC."""
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _token(fields: Mapping[str, str]) -> str:
    return "&".join(f"{name}={quote(value, safe='')}" for name, value in fields.items() if value)


def generate_account_sas(
    account: str,
    key_b64: str,
    *,
    services: str = "b",
    resource_types: str = "sco",
    permissions: str,
    expiry: datetime,
    start: datetime | None = None,
    protocol: str | None = None,
    ip: str | None = None,
    encryption_scope: str | None = None,
    version: str = SAS_VERSION,
) -> str:
    """An account SAS query string (without '?')."""
    fields = {
        "sv": version,
        "ss": services,
        "srt": resource_types,
        "sp": permissions,
        "st": _sas_time(start),
        "se": _sas_time(expiry),
        "sip": ip or "",
        "spr": protocol or "",
        "ses": encryption_scope or "",
    }
    signed = ["sp", "ss", "srt", "st", "se", "sip", "spr", "sv"]
    if version >= "2020-12-06":
        signed.append("ses")
    text = account + "\n" + "".join(fields[name] + "\n" for name in signed)
    return _token({**fields, "sig": hmac_sha256(key_b64, text)})


# keyword -> query name of the response headers a service SAS may override, in signed order
_OVERRIDES = {
    "cache_control": "rscc",
    "content_disposition": "rscd",
    "content_encoding": "rsce",
    "content_language": "rscl",
    "content_type": "rsct",
}


def generate_service_sas(
    account: str,
    key_b64: str,
    *,
    container: str,
    blob: str | None,
    permissions: str,
    expiry: datetime,
    start: datetime | None = None,
    protocol: str | None = None,
    ip: str | None = None,
    identifier: str | None = None,
    encryption_scope: str | None = None,
    version: str = SAS_VERSION,
    snapshot: str | None = None,
    version_id: str | None = None,
    **response_overrides: str,
) -> str:
    """A container SAS (``blob=None``, sr=c) or blob SAS (sr=b) query string (without '?'),
    for signed versions 2018-11-09 and later; with ``snapshot`` or ``version_id`` a snapshot
    (sr=bs) or version (sr=bv) SAS, whose time or id is signed but sent by the client as the
    request's own ``snapshot`` / ``versionid`` parameter. ``response_overrides`` are
    cache_control, content_disposition, content_encoding, content_language and content_type."""
    unknown = set(response_overrides) - set(_OVERRIDES)
    if unknown:
        raise TypeError(f"unknown response overrides: {sorted(unknown)}")
    fields = {
        "sv": version,
        "sr": "bs" if snapshot else "bv" if version_id else "b" if blob else "c",
        "sp": permissions,
        "st": _sas_time(start),
        "se": _sas_time(expiry),
        "si": identifier or "",
        "sip": ip or "",
        "spr": protocol or "",
        "ses": encryption_scope or "",
    }
    fields.update({q: response_overrides.get(kw) or "" for kw, q in _OVERRIDES.items()})
    # The canonicalized resource uses the decoded names: /blob/account/container[/blob]
    resource = f"/blob/{account}/{container}" + (f"/{blob}" if blob else "")
    lines = [fields["sp"], fields["st"], fields["se"], resource, fields["si"], fields["sip"]]
    lines += [fields["spr"], version, fields["sr"], snapshot or version_id or ""]
    if version >= "2020-12-06":
        lines.append(fields["ses"])
    lines += [fields[q] for q in _OVERRIDES.values()]
    return _token({**fields, "sig": hmac_sha256(key_b64, "\n".join(lines))})

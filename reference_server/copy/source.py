"""The copy source: its URL and credentials as the client sent them, and where it lives.

A source on this very façade (same host:port as the request came in on, or the same virtual-host
domain, and an account configured here) is read from the data root; anything else is fetched
over HTTP(S) by ``fetch.SourceFetcher``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from reference_server.addressing import resolve
from reference_server.auth.sas import redact
from reference_server.conditions import Conditions, parse_http_date
from reference_server.errors import StorageError

_VHOST_RE = re.compile(r"^[a-z0-9]{1,64}\.(blob\..+)$")
# 19 digits hold any offset; longer ones are refused, not fed to int() (limited to 4,300 digits)
_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d{1,19})\s*-\s*(\d{0,19})\s*$", re.ASCII)
SOURCE_CONDITION_HEADERS = {
    "If-Match": "x-ms-source-if-match",
    "If-None-Match": "x-ms-source-if-none-match",
    "If-Modified-Since": "x-ms-source-if-modified-since",
    "If-Unmodified-Since": "x-ms-source-if-unmodified-since",
}


def _header_error(name: str, message: str) -> StorageError:
    return StorageError("InvalidHeaderValue", message, details={"HeaderName": name})


@dataclass(frozen=True)
class CopySource:
    url: str  # as sent in x-ms-copy-source (percent-encoded, SAS included)
    scheme: str
    hostname: str
    port: int
    raw_path: str
    query: tuple[tuple[str, str], ...]
    authorization: str | None  # x-ms-copy-source-authorization, e.g. "Bearer <token>"
    account: str | None = None  # None when the URL is not shaped like a blob URL
    container: str | None = None
    blob: str | None = None
    path_style: bool = True

    @classmethod
    def from_headers(cls, headers: Any) -> CopySource:
        url = (headers.get("x-ms-copy-source") or "").strip()
        try:
            parts = urlsplit(url)
        except ValueError:  # e.g. an unclosed IPv6 bracket
            raise _header_error("x-ms-copy-source", "The copy source is not a URL.") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _header_error("x-ms-copy-source", "The copy source must be an http(s) URL.")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise _header_error("x-ms-copy-source", "The copy source port is invalid.") from None
        account = container = blob = None
        path_style = True
        try:
            target = resolve(parts.netloc, parts.path or "/")
            account, container, blob = target.account, target.container, target.blob
            path_style = target.path_style
        except StorageError:
            pass  # any URL may be a source; only blob-shaped ones can be local
        return cls(
            url=url,
            scheme=parts.scheme,
            hostname=parts.hostname.lower(),
            port=port,
            raw_path=parts.path or "/",
            query=tuple(parse_qsl(parts.query, keep_blank_values=True)),
            authorization=headers.get("x-ms-copy-source-authorization") or None,
            account=account,
            container=container,
            blob=blob,
            path_style=path_style,
        )

    @property
    def redacted(self) -> str:
        """The URL with the SAS signature blanked: what x-ms-copy-source reports back."""
        return redact(self.url)

    @property
    def has_credentials(self) -> bool:
        return self.authorization is not None or any(k == "sig" for k, _ in self.query)

    def is_on(self, host_header: str, scheme: str, sockname: tuple | None) -> bool:
        """True when the source URL addresses the server that received this request."""
        if self.blob is None or self.container is None:
            return False
        here = set()
        host, _, port_text = (
            host_header.rpartition(":") if ":" in host_header else (host_header, "", "")
        )
        default = 443 if scheme == "https" else 80
        here.add(
            (
                _domain(host.strip("[]").lower()),
                int(port_text) if port_text.isdigit() and len(port_text) <= 5 else default,
            )
        )
        if sockname:
            ip, port = sockname[0], sockname[1]
            here.add((ip, port))
            if ipaddress.ip_address(ip).is_unspecified:
                here.update({("127.0.0.1", port), ("localhost", port)})
        return (_domain(self.hostname), self.port) in here


def _domain(hostname: str) -> str:
    """``acct.blob.lab`` -> ``blob.lab``: every account of a virtual-host domain is this server."""
    m = _VHOST_RE.match(hostname)
    return m.group(1) if m else hostname


def parse_source_range(value: str | None) -> tuple[int, int | None] | None:
    """``bytes=a-b`` -> (a, b) inclusive; ``bytes=a-`` -> (a, None); absent -> None."""
    if not value:
        return None
    m = _RANGE_RE.match(value)
    if not m:
        raise _header_error("x-ms-source-range", "The source range must be bytes=start-end.")
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else None
    if end is not None and end < start:
        raise _header_error("x-ms-source-range", "The source range ends before it starts.")
    return start, end


def source_conditions(headers: Any) -> Conditions:
    """The x-ms-source-if-* headers, as conditions on the source's ETag and Last-Modified."""
    return Conditions.from_headers(
        {plain: headers[src] for plain, src in SOURCE_CONDITION_HEADERS.items() if src in headers}
    )


def check_source_conditions(
    conditions: Conditions, etag: str | None, last_modified: str | None
) -> None:
    """412 SourceConditionNotMet when the source does not match the x-ms-source-if-* headers."""
    if conditions.empty:
        return
    lm = parse_http_date(last_modified)
    try:
        conditions.check_read((etag or "").strip('"'), lm if lm is not None else 0.0)
    except StorageError:
        raise StorageError("SourceConditionNotMet") from None

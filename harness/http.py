"""A small raw HTTP client for the Blob REST API, signed with the project's own Shared Key / SAS.

It sends exactly the method, path, query and headers it is given (http.client, no SDK and no URL
normalisation), so conformance checks and tools test the server and not a client's tolerance.
"""

from __future__ import annotations

import http.client
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from urllib.parse import quote, urlsplit

API_VERSION = "2025-07-05"

Query = Mapping[str, str] | Iterable[tuple[str, str]]


def quote_name(name: str) -> str:
    """Percent-encode a blob name for a URL path the way the SDKs do ('/' kept as a separator)."""
    return quote(name, safe="/~")


def encode_query(query: Query | None) -> str:
    if not query:
        return ""
    pairs = list(query.items()) if isinstance(query, Mapping) else list(query)
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def error_code(self) -> str | None:
        return self.header("x-ms-error-code")

    def xml(self) -> ET.Element:
        return ET.fromstring(self.body)

    def body_error_code(self) -> str | None:
        """<Code> of an <Error> body, or None when the body is not Azure's error XML."""
        try:
            root = self.xml()
        except ET.ParseError:
            return None
        return root.findtext("Code") if root.tag == "Error" else None


class BlobHttp:
    """Raw requests against one account URL (path style ``http://host:port/account`` or
    virtual-host style ``https://account.blob.domain``), one keep-alive connection per thread."""

    def __init__(
        self,
        account_url: str,
        account: str,
        key: str | None = None,
        *,
        api_version: str = API_VERSION,
        timeout_s: float = 30.0,
    ) -> None:
        parts = urlsplit(account_url.rstrip("/"))
        self.scheme = parts.scheme
        self.netloc = parts.netloc
        self.base_path = parts.path  # "/account" for path style, "" for virtual-host style
        self.account = account
        self.key = key
        self.api_version = api_version
        self.timeout_s = timeout_s
        self._local = threading.local()

    @property
    def account_url(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.base_path}"

    def path(self, container: str | None = None, blob: str | None = None) -> str:
        path = self.base_path + "/"
        if container:
            path += container
            if blob is not None:
                path += "/" + quote_name(blob)
        return path

    def url(self, raw_path: str, query: Query | None = None) -> str:
        qs = encode_query(query)
        return f"{self.scheme}://{self.netloc}{raw_path}" + (f"?{qs}" if qs else "")

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = (
                http.client.HTTPSConnection
                if self.scheme == "https"
                else http.client.HTTPConnection
            )
            conn = cls(self.netloc, timeout=self.timeout_s)
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def request(
        self,
        method: str,
        container: str | None = None,
        blob: str | None = None,
        *,
        query: Query | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        sign: bool = True,
        sas: str | None = None,
        raw_path: str | None = None,
        date: str | None = None,
    ) -> Response:
        """Send one request. ``sign`` uses Shared Key with the account key; ``sas`` (a query string
        without '?') is appended instead when given. Default headers (x-ms-version, x-ms-date,
        Content-Length) are added unless the caller sets them (a None value removes one)."""
        path = raw_path if raw_path is not None else self.path(container, blob)
        url = self.url(path, query)
        if sas:
            url += ("&" if "?" in url else "?") + sas
        hdrs: dict[str, str] = {
            "x-ms-version": self.api_version,
            "x-ms-date": date or formatdate(usegmt=True),
        }
        if body or method in ("PUT", "POST"):
            hdrs["Content-Length"] = str(len(body))
        for name, value in (headers or {}).items():
            for existing in [k for k in hdrs if k.lower() == name.lower()]:
                del hdrs[existing]
            if value is not None:
                hdrs[name] = value
        if sign and not sas and self.key:
            from reference_server.auth.shared_key import sign_request

            hdrs = dict(sign_request(method, url, hdrs, self.account, self.key))
        target = url.split(self.netloc, 1)[1]
        return self._send(method, target, hdrs, body)

    def _send(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        for attempt in (0, 1):
            conn = self._connection()
            try:
                conn.putrequest(method, target, skip_host=False, skip_accept_encoding=True)
                for name, value in headers.items():
                    conn.putheader(name, value)
                conn.endheaders(body or None)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A keep-alive connection the server closed between requests: reconnect once.
                self.close()
                if attempt:
                    raise
                continue
            merged: dict[str, str] = {}
            for name, value in resp.getheaders():
                key = name.lower()
                merged[key] = f"{merged[key]}, {value}" if key in merged else value
            if resp.will_close:
                self.close()
            return Response(resp.status, resp.reason, merged, data)
        raise AssertionError("unreachable")

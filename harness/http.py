"""The one way the project shapes raw Blob REST requests: URL building, default headers, signing.

``BlobRequests`` turns (method, container, blob, query, headers, body length) into the exact
target and headers to send, signed with the lab's client-side Shared Key (``harness.signing``,
independent of the façade's verifier) or carrying a SAS. It has no transport, so every client
uses it: ``BlobHttp`` below (http.client, for the conformance gate, tools and tests), the
benchmark client (aiohttp) and the load mix (Locust's FastHttpUser).

``BlobHttp`` sends exactly the method, path, query and headers it is given (no SDK and no URL
normalisation), so conformance checks and tools test the server and not a client's tolerance.
"""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from harness.signing import sign_request

API_VERSION = "2025-07-05"

Query = Mapping[str, str] | Iterable[tuple[str, str]]


def client_ssl_context(ca_bundle: Path | str | None = None) -> ssl.SSLContext:
    """The one client-side TLS context of the lab: verification on, trusting ``ca_bundle`` (the
    lab CA) or, without it, the system's CAs. Every raw client (http.client, aiohttp) uses it."""
    return ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)


def quote_name(name: str) -> str:
    """Percent-encode a blob name for a URL path the way the SDKs do ('/' kept as a separator)."""
    return quote(name, safe="/~")


def encode_query(query: Query | None) -> str:
    if not query:
        return ""
    pairs = list(query.items()) if isinstance(query, Mapping) else list(query)
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)


def block_id(index: int) -> str:
    """Base64 of a fixed-width string: every block ID of a blob has the same length, as Azure
    requires."""
    return base64.b64encode(f"block-{index:010d}".encode()).decode()


def block_list_xml(entries: Iterable[str | tuple[str, str]]) -> bytes:
    """A Put Block List body: bare IDs go in as <Latest>, (kind, id) pairs as <kind>."""
    root = ET.Element("BlockList")
    for entry in entries:
        kind, bid = ("Latest", entry) if isinstance(entry, str) else entry
        ET.SubElement(root, kind).text = bid
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


@dataclass(frozen=True)
class Prepared:
    """One request ready for any transport: send ``headers`` to ``target`` on ``url``'s host."""

    method: str
    url: str  # scheme://host + target: what was signed
    target: str  # path and query exactly as sent
    headers: dict[str, str]

    def head(self) -> bytes:
        """The HTTP/1.1 request line and headers (Host included), for callers that write the
        request to a socket themselves and send the body late, slowly or never."""
        lines = [f"{self.method} {self.target} HTTP/1.1"]
        if not any(k.lower() == "host" for k in self.headers):
            lines.append(f"Host: {urlsplit(self.url).netloc}")
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class BlobRequests:
    """Request shaping for one account URL (path style ``http://host:port/account`` or
    virtual-host style ``https://account.blob.domain``)."""

    def __init__(
        self,
        account_url: str,
        account: str,
        key: str | None = None,
        *,
        sas: str | None = None,
        api_version: str = API_VERSION,
    ) -> None:
        parts = urlsplit(account_url.rstrip("/"))
        self.scheme = parts.scheme
        self.netloc = parts.netloc
        self.base_path = parts.path  # "/account" for path style, "" for virtual-host style
        self.account = account
        self.key = key
        self.sas = sas  # a SAS query string without '?', sent instead of Shared Key
        self.api_version = api_version

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.netloc}"

    @property
    def account_url(self) -> str:
        return f"{self.origin}{self.base_path}"

    def path(self, container: str | None = None, blob: str | None = None) -> str:
        path = self.base_path + "/"
        if container:
            path += container
            if blob is not None:
                path += "/" + quote_name(blob)
        return path

    def url(self, raw_path: str, query: Query | None = None) -> str:
        qs = encode_query(query)
        return f"{self.origin}{raw_path}" + (f"?{qs}" if qs else "")

    def prepare(
        self,
        method: str,
        container: str | None = None,
        blob: str | None = None,
        *,
        query: Query | None = None,
        headers: Mapping[str, str | None] | None = None,
        content_length: int = 0,
        sign: bool = True,
        sas: str | None = None,
        key: str | None = None,
        raw_path: str | None = None,
        date: str | None = None,
        host: str | None = None,
    ) -> Prepared:
        """Shape one request. Default headers (x-ms-version, x-ms-date, Content-Length for a body
        or a PUT/POST) are added unless the caller sets them (a None value removes one). ``sas``
        (else the instance's) is appended to the query instead of signing; otherwise ``sign``
        signs with Shared Key under ``key`` (else the account key). ``host`` sends another Host
        header (virtual-host names routed to this address) and signs for it."""
        path = raw_path if raw_path is not None else self.path(container, blob)
        qs = encode_query(query)
        sas = sas or self.sas
        if sas:
            qs = f"{qs}&{sas}" if qs else sas
        target = path + (f"?{qs}" if qs else "")
        hdrs: dict[str, str] = {
            "x-ms-version": self.api_version,
            "x-ms-date": date or formatdate(usegmt=True),
        }
        if content_length or method in ("PUT", "POST"):
            hdrs["Content-Length"] = str(content_length)
        if host:
            hdrs["Host"] = host
        for name, value in (headers or {}).items():
            for existing in [k for k in hdrs if k.lower() == name.lower()]:
                del hdrs[existing]
            if value is not None:
                hdrs[name] = value
        url = f"{self.scheme}://{host or self.netloc}{target}"
        key = key or self.key
        if sign and not sas and key:
            hdrs = sign_request(method, url, hdrs, self.account, key)
        return Prepared(method, url, target, hdrs)


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


class BlobHttp(BlobRequests):
    """Raw requests over http.client, one keep-alive connection per thread."""

    def __init__(
        self,
        account_url: str,
        account: str,
        key: str | None = None,
        *,
        api_version: str = API_VERSION,
        timeout_s: float = 30.0,
        ca_bundle: Path | str | None = None,
    ) -> None:
        super().__init__(account_url, account, key, api_version=api_version)
        self.timeout_s = timeout_s
        self.ca_bundle = ca_bundle  # the CA an https endpoint's certificate must chain to
        self._local = threading.local()

    def connection(self) -> http.client.HTTPConnection:
        """This thread's connection, for callers that stream a body or a response themselves."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self.scheme == "https":
                conn = http.client.HTTPSConnection(
                    self.netloc, timeout=self.timeout_s, context=client_ssl_context(self.ca_bundle)
                )
            else:
                conn = http.client.HTTPConnection(self.netloc, timeout=self.timeout_s)
            self._local.conn = conn
        return conn

    def open_socket(self, timeout_s: float) -> socket.socket:
        """A new connection of its own (TLS for https, verified like ``connection``) for callers
        that write a request by hand and hold it open, slow or half-sent."""
        parts = urlsplit(self.origin)
        host = parts.hostname or "127.0.0.1"
        port = parts.port or (443 if self.scheme == "https" else 80)
        sock = socket.create_connection((host, port), timeout=timeout_s)
        if self.scheme != "https":
            return sock
        try:
            return client_ssl_context(self.ca_bundle).wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise

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
        body: bytes = b"",
        **options: Any,
    ) -> Response:
        """Send one request shaped by ``prepare`` (``options`` are its keywords: query, headers,
        sign, sas, key, raw_path, date, host) and read the whole response."""
        req = self.prepare(method, container, blob, content_length=len(body), **options)
        return self._send(req, body)

    def _send(self, req: Prepared, body: bytes) -> Response:
        own_host = any(k.lower() == "host" for k in req.headers)
        for attempt in (0, 1):
            conn = self.connection()
            try:
                conn.putrequest(
                    req.method, req.target, skip_host=own_host, skip_accept_encoding=True
                )
                for name, value in req.headers.items():
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

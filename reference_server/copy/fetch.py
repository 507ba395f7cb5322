"""Reading a copy source: over HTTP(S) with a bounded pool per source host, or from the data root
when the source is on this façade. Either way the bytes arrive as chunks, never as a whole object.

Source failures become Azure's answer: ``CannotVerifyCopySource`` with the status the source
returned, plus ``x-ms-copy-source-status-code`` and ``x-ms-copy-source-error-code``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
from lxml import etree
from yarl import URL

from reference_server.auth import Access, RequestView, authorize
from reference_server.config import ServerConfig
from reference_server.copy.source import CopySource
from reference_server.errors import ERROR_TABLE, StorageError
from reference_server.headers import META_PREFIX
from reference_server.store import ContentSettings, OpenBlob, Store, Upload
from reference_server.threads import blocking
from reference_server.xmlbody import http_date

CHUNK = 4 * 1024 * 1024
ERROR_BODY_LIMIT = 64 * 1024
_CONTENT_RANGE_RE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_XML = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
# Reserved names (RFC 2606 / 6761) never resolve in DNS: they are reached through a proxy or not
# at all, so a lookup is never attempted (lab host names end in .test).
RESERVED_SUFFIXES = (".test", ".example", ".invalid")
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")


@dataclass
class SourceProps:
    """What the copy learns about its source from the read itself."""

    size: int  # the whole source blob
    etag: str | None
    last_modified: str | None  # RFC 1123, as the source sent it
    content: ContentSettings = field(default_factory=ContentSettings)
    metadata: dict[str, str] = field(default_factory=dict)


class SourceBody(Protocol):
    props: SourceProps
    length: int  # bytes ``chunks`` yields

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def write_to(
        self, upload: Upload, observe: Callable[[bytes], None] | None = None
    ) -> None: ...

    async def close(self) -> None: ...


def source_error(status: int, source_code: str | None, message: str | None = None) -> StorageError:
    """Azure's answer to a source that refused: CannotVerifyCopySource with the source's status
    and, as its message, the source's own (Azure words a private source read without
    credentials "Server failed to authenticate the request. Please refer to the information in
    the www-authenticate header.", status 401: azure-sdk-for-java issue 37625)."""
    headers = {"x-ms-copy-source-status-code": str(status)}
    if source_code:
        headers["x-ms-copy-source-error-code"] = source_code
    known = ERROR_TABLE.get(source_code or "")
    return StorageError(
        "CannotVerifyCopySource",
        message
        or (known[1] if known else None)
        or f"The copy source answered {status} {source_code or ''}".strip() + ".",
        headers=headers,
        http_status=status if 400 <= status <= 599 else 500,
    )


def _range_header(start: int, end: int | None) -> str:
    return f"bytes={start}-{'' if end is None else end}"


# ---------------------------------------------------------------------------- remote sources


class RemoteBody:
    def __init__(self, response: aiohttp.ClientResponse, props: SourceProps, length: int) -> None:
        self._response = response
        self.props = props
        self.length = length

    async def chunks(self) -> AsyncIterator[bytes]:
        received = 0
        try:
            async for chunk in self._response.content.iter_chunked(CHUNK):
                received += len(chunk)
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise StorageError(
                "CannotVerifyCopySource",
                f"Reading the copy source failed: {type(exc).__name__}.",
                http_status=500,
            ) from None
        if received != self.length:
            raise StorageError(
                "CannotVerifyCopySource", "The copy source ended early.", http_status=500
            )

    async def write_to(
        self, upload: Upload, observe: Callable[[bytes], None] | None = None
    ) -> None:
        """Stream the body into ``upload``; ``observe`` sees every chunk (a checksum)."""
        async for chunk in self.chunks():
            upload.write(chunk)
            if observe is not None:
                observe(chunk)

    async def close(self) -> None:
        self._response.release()


def _props_from_headers(h: Mapping[str, str], status: int) -> tuple[SourceProps, int]:
    """The source blob's properties from a Get Blob answer; and the length of this body."""
    length = int(h.get("Content-Length") or 0)
    size = length
    if status == 206 and (m := _CONTENT_RANGE_RE.match(h.get("Content-Range", ""))):
        size = int(m.group(3)) if m.group(3) != "*" else length
    content = ContentSettings(
        content_type=h.get("Content-Type"),
        content_encoding=h.get("Content-Encoding"),
        content_language=h.get("Content-Language"),
        content_disposition=h.get("Content-Disposition"),
        cache_control=h.get("Cache-Control"),
        # a ranged read carries the whole blob's MD5 in x-ms-blob-content-md5
        content_md5=h.get("x-ms-blob-content-md5") if status == 206 else h.get("Content-MD5"),
    )
    metadata = {k[len(META_PREFIX) :]: v for k, v in h.items() if k.lower().startswith(META_PREFIX)}
    props = SourceProps(size, h.get("ETag"), h.get("Last-Modified"), content, metadata)
    return props, length


def _error_code(headers: Mapping[str, str], body: bytes) -> tuple[str | None, str | None]:
    """The source's error code and the first line of its message (Azure appends RequestId and
    Time lines, which belong to the source's request, not to this one)."""
    code, message = headers.get("x-ms-error-code"), None
    if body:
        with contextlib.suppress(etree.XMLSyntaxError, ValueError):
            root = etree.fromstring(body, _XML)
            code = code or root.findtext("Code")
            message = (root.findtext("Message") or "").strip().split("\n")[0].strip() or None
    return code, message


class SourceFetcher:
    """One aiohttp ClientSession per source host (scheme, host, port), each with a bounded pool."""

    def __init__(
        self,
        limit_per_host: int = 64,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 120.0,
    ) -> None:
        self.limit_per_host = limit_per_host
        self.timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout_s, sock_read=read_timeout_s
        )
        self._sessions: dict[tuple[str, str, int], aiohttp.ClientSession] = {}

    def _session(self, source: CopySource) -> aiohttp.ClientSession:
        key = (source.scheme, source.hostname, source.port)
        session = self._sessions.get(key)
        if session is None or session.closed:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.limit_per_host, limit_per_host=self.limit_per_host
                ),
                timeout=self.timeout,
                auto_decompress=False,  # bytes as stored, Content-Encoding is a property
                trust_env=True,  # HTTP(S)_PROXY: lab host names are reached through a proxy
            )
            self._sessions[key] = session
        return session

    async def open(
        self, source: CopySource, start: int = 0, end: int | None = None, api_version: str = ""
    ) -> RemoteBody:
        if source.hostname.endswith(RESERVED_SUFFIXES) and not any(
            os.environ.get(v) for v in PROXY_VARIABLES
        ):
            raise StorageError(
                "CannotVerifyCopySource",
                f"The copy source host {source.hostname} is a reserved name and no proxy is set.",
                http_status=404,
            )
        headers = {"x-ms-version": api_version} if api_version else {}
        if start or end is not None:
            headers["x-ms-range"] = _range_header(start, end)
        if source.authorization:
            headers["Authorization"] = source.authorization
        try:
            response = await self._session(source).get(
                URL(source.url, encoded=True), headers=headers, allow_redirects=False
            )
        except TimeoutError:
            raise StorageError(
                "CannotVerifyCopySource",
                "Could not verify the copy source within the specified time.",
                http_status=500,
            ) from None
        except aiohttp.ClientError as exc:
            raise StorageError(
                "CannotVerifyCopySource",
                f"Could not reach the copy source: {type(exc).__name__}.",
                http_status=500,
            ) from None
        if response.status not in (200, 206):
            body = b""
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                body = await response.content.read(ERROR_BODY_LIMIT)
            response.release()
            raise source_error(response.status, *_error_code(response.headers, body))
        props, length = _props_from_headers(response.headers, response.status)
        return RemoteBody(response, props, length)

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()


# ---------------------------------------------------------------------------- local sources


class LocalBody:
    """A byte range of a blob on this façade's data root, read in chunks in the thread pool."""

    def __init__(self, opened: OpenBlob, start: int, length: int) -> None:
        self._opened = opened
        self._start = start
        self.length = length
        p = opened.props
        self.props = SourceProps(
            p.size, f'"{p.etag}"', http_date(p.last_modified), p.content, dict(p.metadata)
        )

    async def chunks(self) -> AsyncIterator[bytes]:
        fd = self._opened.file.fileno()
        offset, left = self._start, self.length
        while left > 0:
            chunk = await blocking(os.pread, fd, min(CHUNK, left), offset)
            if not chunk:
                raise StorageError(
                    "CannotVerifyCopySource", "The copy source shrank.", http_status=500
                )
            offset += len(chunk)
            left -= len(chunk)
            yield chunk

    async def write_to(
        self, upload: Upload, observe: Callable[[bytes], None] | None = None
    ) -> None:
        """Copy the range into ``upload`` in the kernel (copy_file_range: extents shared on a
        reflink filesystem); the bytes are read only for a checksum (``observe``, MD5)."""
        await blocking(
            upload.copy_from, self._opened.file.fileno(), self._start, self.length, observe
        )

    async def close(self) -> None:
        self._opened.close()


def authorize_local(
    source: CopySource,
    config: ServerConfig,
    dest_account: str,
    dest_authorization: str,
    client_ip: str | None = None,
    async_copy: bool = False,
) -> None:
    """Check the source's own credentials as if it had been fetched from this façade.

    Only the asynchronous Copy Blob (``async_copy``) lets a request signed with the destination
    account's Shared Key read a source in the same account without credentials of its own, as
    its REST reference allows. Put Blob From URL, Put Block From URL and Copy Blob From URL need
    a public source or one authorized by a SAS or x-ms-copy-source-authorization (Copy Blob
    From URL's REST reference: a source "that's either public or authorized with a shared
    access signature"; the two From URL pages say the same of x-ms-copy-source). A source
    SAS's ``sip`` is checked against ``client_ip``, the address of the client that asked for
    the copy: the read never leaves the façade, so no other address could be meant."""
    assert source.account is not None
    account = config.account(source.account)
    if account is None:
        raise source_error(404, "AccountNotFound")
    if (
        async_copy
        and not source.has_credentials
        and source.account == dest_account
        and dest_authorization.startswith("SharedKey ")
    ):
        return
    headers = {"x-ms-version": config.api_version}
    if source.authorization:
        headers["Authorization"] = source.authorization
    view = RequestView(
        method="GET",
        raw_path=source.raw_path,
        query=list(source.query),
        headers=headers,
        account=source.account,
        path_style=source.path_style,
        secure=source.scheme == "https",
        client_ip=client_ip,
    )
    try:
        authorize(view, account, Access("r", "o", source.container, source.blob, is_read=True))
    except StorageError as err:
        raise source_error(err.status, err.code, err.text) from None


async def open_local(store: Store, source: CopySource, start: int, end: int | None) -> LocalBody:
    assert source.account and source.container and source.blob
    try:
        opened = await blocking(store.open_blob, source.account, source.container, source.blob)
    except StorageError as err:
        raise source_error(err.status, err.code, err.text) from None
    size = opened.props.size
    if start or end is not None:
        if start >= size:
            opened.close()
            raise source_error(416, "InvalidRange")
        last = size - 1 if end is None else min(end, size - 1)
        return LocalBody(opened, start, last - start + 1)
    return LocalBody(opened, 0, size)

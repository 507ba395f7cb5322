"""What every handler shares: the request context, header parsing, body streaming, responses."""

from __future__ import annotations

import asyncio
import base64
import re
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web

from reference_server.addressing import Target
from reference_server.checksums import md5_header  # noqa: F401 (re-exported to the handlers)
from reference_server.conditions import Conditions
from reference_server.config import ServerConfig
from reference_server.copy import CopyService
from reference_server.errors import StorageError
from reference_server.headers import META_PREFIX
from reference_server.store import BlobProps, ContentSettings, Store, Upload, decode_block_id
from reference_server.threads import blocking
from reference_server.xmlbody import http_date, xml_representable

WRITE_BATCH = 2 * 1024 * 1024  # body bytes per thread hop of an upload
MAX_XML_BODY = 64 * 1024 * 1024  # Put Block List of 50,000 IDs fits; blob bodies are streamed
MAX_METADATA_BYTES = 8 * 1024  # names plus values, as Azure counts them
_META_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # a C# identifier, as Azure requires


@dataclass
class Ctx:
    request: web.Request
    target: Target
    store: Store
    config: ServerConfig
    copy: CopyService  # this worker's copy machinery, built by create_app

    @property
    def headers(self) -> Any:
        return self.request.headers

    @property
    def query(self) -> Any:
        return self.request.query

    @property
    def account(self) -> str:
        return self.target.account

    @property
    def container(self) -> str:
        assert self.target.container is not None
        return self.target.container

    @property
    def blob(self) -> str:
        assert self.target.blob is not None
        return self.target.blob

    @property
    def service_endpoint(self) -> str:
        check_header_value("Host", self.request.host)  # echoed in listings' ServiceEndpoint
        base = f"{self.request.scheme}://{self.request.host}/"
        return base + f"{self.account}/" if self.target.path_style else base

    def conditions(self) -> Conditions:
        conditions = Conditions.from_headers(self.headers)
        principal = self.request.get("principal")
        if principal is not None and principal.details.get("create_only"):
            conditions = replace(conditions, create_only=True)  # a SAS with c but not w
        return conditions


def check_header_value(name: str, value: str) -> str:
    """``value`` unless it cannot be stored and sent back as it came: a header value the façade
    keeps (content headers, metadata) reappears in response headers and listing XML, so bytes
    that are not UTF-8 (0xFF) or characters XML cannot carry are refused before anything is
    written (400 InvalidHeaderValue), rather than breaking every later listing."""
    if not xml_representable(value):
        raise StorageError(
            "InvalidHeaderValue",
            "The header value contains bytes that are not UTF-8 or characters not allowed.",
            details={"HeaderName": name},
        )
    return value


async def read_xml_body(ctx: Ctx) -> bytes:
    """The whole (small) XML body of a request: 413 RequestBodyTooLarge past MAX_XML_BODY, from
    Content-Length before reading or, for a chunked body, once the limit is crossed."""
    content_length(ctx.headers, MAX_XML_BODY)
    try:
        return await ctx.request.read()
    except web.HTTPRequestEntityTooLarge:
        raise StorageError("RequestBodyTooLarge", details={"MaxLimit": str(MAX_XML_BODY)}) from None


def respond(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> web.Response:
    resp = web.Response(status=status, body=body, headers=headers or {})
    if body:
        resp.content_type = "application/xml"
    return resp


def parse_metadata(headers: Any) -> dict[str, str]:
    """``x-ms-meta-*`` headers -> {name: value}, keeping the case the client sent."""
    meta: dict[str, str] = {}
    for key, value in headers.items():
        if key.lower().startswith(META_PREFIX):
            name = key[len(META_PREFIX) :]
            if not name:
                raise StorageError("EmptyMetadataKey")
            if not _META_NAME.match(name):
                raise StorageError("InvalidMetadata", details={"MetadataName": name})
            meta[name] = check_header_value(key, value)
    if sum(len(k) + len(v) for k, v in meta.items()) > MAX_METADATA_BYTES:
        raise StorageError("MetadataTooLarge")
    return meta


def metadata_headers(metadata: dict[str, str]) -> dict[str, str]:
    return {META_PREFIX + k: v for k, v in metadata.items()}


def content_settings(headers: Any, *, use_plain: bool) -> ContentSettings:
    """The blob's content headers from ``x-ms-blob-*`` (or, for Put Blob, the plain headers)."""

    def pick(name: str) -> str | None:
        header = f"x-ms-blob-{name}"
        value = headers.get(header)
        if value is None and use_plain:
            header, value = name, headers.get(name)
        return value if value is None else check_header_value(header, value)

    return ContentSettings(
        content_type=pick("content-type") or "application/octet-stream",
        content_encoding=pick("content-encoding"),
        content_language=pick("content-language"),
        content_disposition=pick("content-disposition"),
        cache_control=pick("cache-control"),
        content_md5=headers.get("x-ms-blob-content-md5"),
    )


def content_length(headers: Any, limit: int) -> int | None:
    value = headers.get("Content-Length")
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        raise StorageError("InvalidHeaderValue", details={"HeaderName": "Content-Length"}) from None
    if length > limit:
        raise StorageError("RequestBodyTooLarge", details={"MaxLimit": str(limit)})
    return length


async def stream_body(request: web.Request, upload: Upload) -> None:
    """Stream the request body into ``upload``: every WRITE_BATCH bytes go to a thread in one hop
    (written and hashed there while the loop reads on); the last, partial batch stays in
    ``upload.tail`` for the hop that commits it. Memory stays flat (two batches) at any size."""
    batch: list[bytes] = []
    size = 0
    pending: asyncio.Future | None = None
    try:
        while chunk := await request.content.readany():
            upload.count(len(chunk))
            batch.append(chunk)
            size += len(chunk)
            if size >= WRITE_BATCH:
                if pending is not None:
                    await pending
                pending = asyncio.ensure_future(blocking(upload.write_chunks, batch))
                batch, size = [], 0
        if pending is not None:
            await pending
        upload.tail = batch
    except BaseException:
        if pending is not None:  # its error, if any, is superseded by this one
            pending.add_done_callback(lambda f: f.cancelled() or f.exception())
        upload.abort()  # waits for a write still running in a thread
        raise


def blob_headers(props: BlobProps) -> dict[str, str]:
    """Headers of Get Blob / Get Blob Properties (Content-Length is set by the response)."""
    c = props.content
    headers = {
        "ETag": f'"{props.etag}"',
        "Last-Modified": http_date(props.last_modified),
        "x-ms-creation-time": http_date(props.creation_time),
        "x-ms-blob-type": "BlockBlob",
        "x-ms-lease-state": "available",
        "x-ms-lease-status": "unlocked",
        "x-ms-server-encrypted": "true",
        "x-ms-access-tier": "Hot",
        "x-ms-access-tier-inferred": "true",
        "Accept-Ranges": "bytes",
    }
    # Put Blob stores application/octet-stream when none is sent; a Content-Type cleared by Set
    # Blob Properties stays absent, as on Azure (the JS SDK's setHTTPHeaders({}) test)
    optional = {
        "Content-Type": c.content_type,
        "Content-Encoding": c.content_encoding,
        "Content-Language": c.content_language,
        "Content-Disposition": c.content_disposition,
        "Cache-Control": c.cache_control,
        "Content-MD5": c.content_md5,
    }
    headers.update({k: v for k, v in optional.items() if v})
    if props.committed_blocks:
        headers["x-ms-blob-committed-block-count"] = str(len(props.committed_blocks))
    headers.update(metadata_headers(props.metadata))
    headers.update(props.copy)  # x-ms-copy-* of the last Copy Blob into this blob
    return headers


# SAS query parameters that override response headers of reads (signed, so only with a SAS).
SAS_RESPONSE_OVERRIDES = {
    "rscc": "Cache-Control",
    "rscd": "Content-Disposition",
    "rsce": "Content-Encoding",
    "rscl": "Content-Language",
    "rsct": "Content-Type",
}


def apply_sas_overrides(headers: dict[str, str], query: Any) -> dict[str, str]:
    if "sig" in query:
        for param, header in SAS_RESPONSE_OVERRIDES.items():
            value = query.get(param)
            if not value:
                continue
            # CR/LF would split the response head (aiohttp refuses to send it): refuse the SAS
            if "\r" in value or "\n" in value or not xml_representable(value):
                raise StorageError(
                    "InvalidQueryParameterValue",
                    f"The response header override {param} is not a valid header value.",
                    details={"QueryParameterName": param},
                )
            headers[header] = value
    return headers


def write_headers(props: BlobProps) -> dict[str, str]:
    """Headers of a successful write (Put Blob, Put Block List, Set Properties/Metadata)."""
    return {
        "ETag": f'"{props.etag}"',
        "Last-Modified": http_date(props.last_modified),
        "x-ms-request-server-encrypted": "true",
    }


def block_id_param(ctx: Ctx) -> str:
    """The ``blockid`` query parameter of Put Block (From URL), checked to be base64.

    Blocks are kept by their decoded bytes and listed (Get Block List, commit) by the canonical
    encoding of those bytes, so a non-canonical ID (``QR==``: the same byte as ``QQ==``, with
    stray low bits) could be staged but never committed by the string sent. It is refused."""
    block_id = ctx.query.get("blockid")
    if not block_id:
        raise StorageError(
            "MissingRequiredQueryParameter", details={"QueryParameterName": "blockid"}
        )
    raw = decode_block_id(block_id)
    if base64.b64encode(raw).decode() != block_id:
        raise StorageError(
            "InvalidQueryParameterValue",
            "The block ID is not in canonical base64 (padding bits must be zero).",
            details={"QueryParameterName": "blockid"},
        )
    return block_id


async def commit_blob(
    ctx: Ctx, upload: Upload, content: ContentSettings, metadata: dict[str, str]
) -> web.Response:
    """Commit a whole uploaded body as the blob and answer 201 (Put Blob, Put Blob From URL).

    The store writes what is left of the body, verifies the MD5s and commits in one thread hop."""
    props = await blocking(
        ctx.store.put_blob,
        ctx.account,
        ctx.container,
        ctx.blob,
        upload,
        content,
        metadata,
        ctx.conditions(),
    )
    headers = write_headers(props)
    headers["Content-MD5"] = upload.md5_b64 or ""
    if upload.crc64_b64:  # computed only when the request sent one to check
        headers["x-ms-content-crc64"] = upload.crc64_b64
    return respond(201, headers)

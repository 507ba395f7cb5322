"""Blob operations: Put Blob, Get Blob (ranges), properties, metadata, Delete Blob."""

from __future__ import annotations

import base64
import hashlib
import os
import re

from aiohttp import web

from reference_server.checksums import stored_md5, transactional
from reference_server.conditions import parse_etag_list, parse_http_date
from reference_server.errors import StorageError
from reference_server.handlers.common import (
    Ctx,
    apply_sas_overrides,
    blob_headers,
    blocking,
    commit_blob,
    content_length,
    content_settings,
    md5_header,
    metadata_headers,
    parse_metadata,
    respond,
    stream_body,
    write_headers,
)
from reference_server.store import MAX_PUT_BLOB_SIZE, BlobProps
from reference_server.store.names import blob_segments
from reference_server.transport import FileSliceResponse
from reference_server.xmlbody import http_date

_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.ASCII)
# Offsets longer than this are past any blob (and past Python's 4,300-digit int() limit).
_MAX_OFFSET_DIGITS = 19
# Blobs up to this size are read whole in the thread hop that opens them and answered in one
# socket write; larger ones are sent with sendfile(2), never entering Python.
SMALL_BLOB_READ = 64 * 1024
MAX_RANGE_MD5 = 4 * 1024 * 1024
_OTHER_BLOB_TYPES = {"PageBlob": "Page blob", "AppendBlob": "Append blob"}


def parse_range(value: str | None, size: int) -> tuple[int, int] | None:
    """``bytes=a-b`` / ``bytes=a-`` -> inclusive (start, end); None means the whole blob.

    The Blob service accepts only these two forms; a suffix range (``bytes=-n``), a malformed or
    a multi-range header is ignored and the whole blob is served, as Azure does."""
    if not value:
        return None
    m = _RANGE_RE.match(value)
    if not m or m.group(1) == "":
        return None
    first, last = m.groups()
    start = _offset(first)
    end = _offset(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise StorageError("InvalidRange", headers={"Content-Range": f"bytes */{size}"})
    return start, min(end, size - 1)


def _offset(digits: str) -> int:
    """A range offset; an absurdly long one means "past the end" (so 416 for a start)."""
    significant = digits.lstrip("0") or "0"
    return int(significant) if len(significant) <= _MAX_OFFSET_DIGITS else 1 << 64


def _if_range_holds(value: str | None, props: BlobProps) -> bool:
    if not value:
        return True
    if value.strip().startswith(('"', "W/")):
        tags = parse_etag_list(value) or ()
        return props.etag in tags
    date = parse_http_date(value)
    return date is not None and int(props.last_modified) <= int(date)


async def get_blob(ctx: Ctx) -> web.StreamResponse:
    ctx.conditions().check_unsatisfiable_read()  # present or not: a request property
    opened = await blocking(
        ctx.store.open_blob, ctx.account, ctx.container, ctx.blob, SMALL_BLOB_READ
    )
    try:
        props = opened.props
        ctx.conditions().check_read(props.etag, props.last_modified)
        headers = apply_sas_overrides(blob_headers(props), ctx.query)
        rng = None
        if _if_range_holds(ctx.headers.get("If-Range"), props):
            rng = parse_range(ctx.headers.get("x-ms-range") or ctx.headers.get("Range"), props.size)
        if rng is None:
            start, end, status = 0, props.size - 1, 200
        else:
            start, end = rng
            headers["Content-Range"] = f"bytes {start}-{end}/{props.size}"
            blob_md5 = headers.pop("Content-MD5", None)
            if blob_md5:
                headers["x-ms-blob-content-md5"] = blob_md5
            if ctx.headers.get("x-ms-range-get-content-md5", "").lower() == "true":
                if end - start + 1 > MAX_RANGE_MD5:
                    raise StorageError(
                        "OutOfRangeInput", "Range MD5 needs a range of 4 MiB or less."
                    )
                if opened.content is not None:
                    data = opened.content[start : end + 1]
                else:
                    data = await blocking(os.pread, opened.file.fileno(), end - start + 1, start)
                headers["Content-MD5"] = base64.b64encode(hashlib.md5(data).digest()).decode()
            status = 206
        if opened.content is not None:  # a small blob: headers and body in one write
            body = opened.content[start : end + 1]
            return web.Response(status=status, body=body, headers=headers)
        resp = FileSliceResponse(opened.file, start, end - start + 1, status, headers)
        await resp.prepare(ctx.request)
        return resp
    finally:
        opened.close()


async def get_blob_properties(ctx: Ctx) -> web.StreamResponse:
    ctx.conditions().check_unsatisfiable_read()
    props = await blocking(ctx.store.get_blob, ctx.account, ctx.container, ctx.blob)
    ctx.conditions().check_read(props.etag, props.last_modified)
    headers = apply_sas_overrides(blob_headers(props), ctx.query)
    resp = FileSliceResponse(None, 0, props.size, 200, headers)
    await resp.prepare(ctx.request)
    return resp


async def put_blob(ctx: Ctx) -> web.StreamResponse:
    blob_type = ctx.headers.get("x-ms-blob-type")
    if blob_type is None:
        raise StorageError("MissingRequiredHeader", details={"HeaderName": "x-ms-blob-type"})
    if blob_type in _OTHER_BLOB_TYPES:
        # Azure's answer on an account kind without that blob type (a page blob on a
        # BlockBlobStorage account: 400 BlobTypeNotSupported)
        raise StorageError(
            "BlobTypeNotSupported",
            f"{_OTHER_BLOB_TYPES[blob_type]} is not supported for this account type.",
        )
    if blob_type != "BlockBlob":
        raise StorageError("InvalidHeaderValue", details={"HeaderName": "x-ms-blob-type"})
    blob_segments(ctx.blob)  # refuse unmappable names before reading the body
    content_length(ctx.headers, MAX_PUT_BLOB_SIZE)
    body_md5, body_crc64 = transactional(ctx.headers, "Content-MD5", "x-ms-content-crc64")
    blob_md5 = md5_header(ctx.headers, "x-ms-blob-content-md5")
    metadata = parse_metadata(ctx.headers)
    content = content_settings(ctx.headers, use_plain=True)
    upload = ctx.store.new_upload(
        ctx.account,
        ctx.container,
        want_md5=True,
        limit=MAX_PUT_BLOB_SIZE,
        # x-ms-blob-content-md5, the MD5 stored, is the one checked when both are sent: for
        # Put Blob the two are "interchangeable" (Microsoft, azure-storage-ruby issue 64) and
        # Azurite 3.37 records x-ms-blob-content-md5 taking precedence as verified on Azure
        expect_md5=(blob_md5 or body_md5,),
        expect_crc64=body_crc64,
    )
    await stream_body(ctx.request, upload)
    # the computed MD5 becomes the blob's Content-MD5 unless the client set one
    return await commit_blob(ctx, upload, content, metadata)


async def set_blob_properties(ctx: Ctx) -> web.StreamResponse:
    stored_md5(ctx.headers, "x-ms-blob-content-md5")  # stored as sent, any length (as Azure)
    content = content_settings(ctx.headers, use_plain=False)
    if ctx.headers.get("x-ms-blob-content-type") is None:
        content.content_type = None  # Azure clears properties that are not sent
    props = await blocking(
        ctx.store.set_blob_properties,
        ctx.account,
        ctx.container,
        ctx.blob,
        content,
        None,
        ctx.conditions(),
    )
    return respond(200, write_headers(props))


async def get_blob_metadata(ctx: Ctx) -> web.StreamResponse:
    ctx.conditions().check_unsatisfiable_read()
    props = await blocking(ctx.store.get_blob, ctx.account, ctx.container, ctx.blob)
    ctx.conditions().check_read(props.etag, props.last_modified)
    headers = {"ETag": f'"{props.etag}"', "Last-Modified": http_date(props.last_modified)}
    return respond(200, headers | metadata_headers(props.metadata))


async def set_blob_metadata(ctx: Ctx) -> web.StreamResponse:
    metadata = parse_metadata(ctx.headers)
    props = await blocking(
        ctx.store.set_blob_properties,
        ctx.account,
        ctx.container,
        ctx.blob,
        None,
        metadata,
        ctx.conditions(),
    )
    return respond(200, write_headers(props))


async def delete_blob(ctx: Ctx) -> web.StreamResponse:
    await blocking(ctx.store.delete_blob, ctx.account, ctx.container, ctx.blob, ctx.conditions())
    return respond(202, {"x-ms-delete-type-permanent": "true"})

"""Block operations: Put Block, Put Block List, Get Block List."""

from __future__ import annotations

import hashlib

from aiohttp import web

from reference_server.checksums import crc64, crc64_bytes, transactional
from reference_server.errors import StorageError
from reference_server.handlers.common import (
    Ctx,
    block_id_param,
    blocking,
    content_length,
    content_settings,
    md5_header,
    parse_metadata,
    read_xml_body,
    respond,
    stream_body,
    write_headers,
)
from reference_server.store import MAX_BLOCK_SIZE
from reference_server.store.names import blob_segments
from reference_server.xmlbody import block_list_body, http_date, parse_block_list


async def put_block(ctx: Ctx) -> web.StreamResponse:
    """Put Block. A block sent with x-ms-content-crc64 is checked against it and answered with
    the CRC64 the façade computed, without Content-MD5 (Azure's Put Block reference, versions
    2019-02-02 and later: Content-MD5 comes back only when the request had it). Without one,
    the answer carries the MD5 (Azure would compute a CRC64 instead; see the README)."""
    block_id = block_id_param(ctx)
    blob_segments(ctx.blob)
    content_length(ctx.headers, MAX_BLOCK_SIZE)
    body_md5, body_crc64 = transactional(ctx.headers, "Content-MD5", "x-ms-content-crc64")
    upload = ctx.store.new_upload(
        ctx.account,
        ctx.container,
        want_md5=body_crc64 is None,
        limit=MAX_BLOCK_SIZE,
        expect_md5=(body_md5,),
        expect_crc64=body_crc64,
    )
    await stream_body(ctx.request, upload)
    # writes the rest, hashes and verifies
    await blocking(ctx.store.stage_block, ctx.account, ctx.container, ctx.blob, block_id, upload)
    headers = {"x-ms-request-server-encrypted": "true"}
    if upload.crc64_b64:
        headers["x-ms-content-crc64"] = upload.crc64_b64
    elif upload.md5_b64:
        headers["Content-MD5"] = upload.md5_b64
    return respond(201, headers)


async def put_block_list(ctx: Ctx) -> web.StreamResponse:
    blob_segments(ctx.blob)
    expected, expected_crc64 = transactional(ctx.headers, "Content-MD5", "x-ms-content-crc64")
    body = await read_xml_body(ctx)
    if expected is not None and hashlib.md5(body).digest() != expected:
        raise StorageError("Md5Mismatch")
    if expected_crc64 is not None and crc64_bytes(crc64(body)) != expected_crc64:
        raise StorageError("Crc64Mismatch")
    md5_header(ctx.headers, "x-ms-blob-content-md5")  # stored, not recomputed (as Azure)
    entries = parse_block_list(body)
    props = await blocking(
        ctx.store.put_block_list,
        ctx.account,
        ctx.container,
        ctx.blob,
        entries,
        content_settings(ctx.headers, use_plain=False),
        parse_metadata(ctx.headers),
        ctx.conditions(),
    )
    headers = write_headers(props)
    if props.content.content_md5:
        headers["Content-MD5"] = props.content.content_md5
    return respond(201, headers)


async def get_block_list(ctx: Ctx) -> web.StreamResponse:
    which = ctx.query.get("blocklisttype", "committed").lower()
    if which not in ("committed", "uncommitted", "all"):
        raise StorageError(
            "InvalidQueryParameterValue", details={"QueryParameterName": "blocklisttype"}
        )
    props, committed, uncommitted = await blocking(
        ctx.store.get_block_list, ctx.account, ctx.container, ctx.blob
    )
    headers = {"x-ms-blob-content-length": str(props.size if props else 0)}
    if props is not None:
        headers |= {"ETag": f'"{props.etag}"', "Last-Modified": http_date(props.last_modified)}
    body = block_list_body(
        committed if which in ("committed", "all") else None,
        uncommitted if which in ("uncommitted", "all") else None,
    )
    return respond(200, headers, body)

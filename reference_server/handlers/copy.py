"""Server-side copy: Put Blob From URL, Put Block From URL, Copy Blob (sync and async), Abort Copy.

The façade is the client of the source (reference_server/copy): it reads the source over HTTP(S)
or, when the source is on this façade, from the data root, and streams it into the store's
staging files exactly like a request body.
"""

from __future__ import annotations

import uuid

from aiohttp import web

from reference_server.checksums import transactional
from reference_server.copy import CopyService
from reference_server.copy.fetch import SourceBody
from reference_server.copy.jobs import JobRecord
from reference_server.copy.source import (
    CopySource,
    check_source_conditions,
    parse_source_range,
    source_conditions,
)
from reference_server.copy.state import finished_state
from reference_server.errors import StorageError
from reference_server.handlers.common import (
    Ctx,
    block_id_param,
    blocking,
    commit_blob,
    content_settings,
    md5_header,
    parse_metadata,
    respond,
    write_headers,
)
from reference_server.store import (
    MAX_BLOCK_SIZE,
    MAX_PUT_BLOB_SIZE,
    ContentSettings,
    Upload,
)
from reference_server.store.names import blob_segments

CONTENT_HEADERS = (
    "content-type",
    "content-encoding",
    "content-language",
    "content-disposition",
    "cache-control",
)


def _service(ctx: Ctx) -> CopyService:
    return ctx.copy


def _require_empty_body(ctx: Ctx) -> None:
    if int(ctx.headers.get("Content-Length") or 0) != 0:
        raise StorageError(
            "InvalidHeaderValue",
            "A copy from a URL takes no request body.",
            details={"HeaderName": "Content-Length"},
        )


async def _stream(body: SourceBody, upload: Upload) -> None:
    """The source into the staging file: a kernel copy for a local source, read only for the
    checksums the upload computes."""
    try:
        await body.write_to(upload)
    except BaseException:
        upload.abort()
        raise
    finally:
        await body.close()


async def _copy_into_upload(
    ctx: Ctx,
    source: CopySource,
    limit: int,
    start: int = 0,
    end: int | None = None,
    want_md5: bool = True,
    async_copy: bool = False,
) -> tuple[SourceBody, Upload]:
    """Open the source, check size and source conditions, stream it. The source checksums
    (x-ms-source-content-md5 / -crc64, one or the other, as for a request body) are verified
    when the upload is finished, before anything is committed or staged. Without ``want_md5``
    the bytes are hashed only to verify a source checksum."""
    source_md5, source_crc64 = transactional(
        ctx.headers, "x-ms-source-content-md5", "x-ms-source-content-crc64"
    )
    body = await _service(ctx).open(source, ctx.request, ctx.account, start, end, async_copy)
    try:
        check_source_conditions(
            source_conditions(ctx.headers), body.props.etag, body.props.last_modified
        )
        if body.length > limit:
            raise StorageError("RequestBodyTooLarge", details={"MaxLimit": str(limit)})
        upload = ctx.store.new_upload(
            ctx.account,
            ctx.container,
            want_md5=want_md5,
            limit=limit,
            expect_md5=(source_md5,),
            expect_crc64=source_crc64,
        )
    except BaseException:
        await body.close()
        raise
    await _stream(body, upload)
    return body, upload


def _content_for(ctx: Ctx, source_content: ContentSettings | None) -> ContentSettings:
    """The source's content headers (when copied), each overridden by an x-ms-blob-* header."""
    sent = content_settings(ctx.headers, use_plain=False)
    if source_content is None:
        return sent
    merged = ContentSettings(**source_content.to_dict())
    for name in CONTENT_HEADERS:
        if ctx.headers.get(f"x-ms-blob-{name}") is not None:
            attr = name.replace("-", "_")
            setattr(merged, attr, getattr(sent, attr))
    if ctx.headers.get("x-ms-blob-content-md5"):
        merged.content_md5 = sent.content_md5
    return merged


async def put_blob_from_url(ctx: Ctx) -> web.StreamResponse:
    """Put Blob From URL: a whole block blob from a source URL, synchronously (201)."""
    if ctx.headers.get("x-ms-blob-type") != "BlockBlob":
        raise StorageError(
            "BlobTypeNotSupported", "Only block blobs are supported for this account type."
        )
    _require_empty_body(ctx)
    blob_segments(ctx.blob)
    md5_header(ctx.headers, "x-ms-blob-content-md5")
    metadata = parse_metadata(ctx.headers)
    copy_props = ctx.headers.get("x-ms-copy-source-blob-properties", "true").lower() != "false"
    source = CopySource.from_headers(ctx.headers)
    body, upload = await _copy_into_upload(ctx, source, MAX_PUT_BLOB_SIZE)
    content = _content_for(ctx, body.props.content if copy_props else None)
    content.content_md5 = content.content_md5 or upload.md5_b64
    return await commit_blob(ctx, upload, content, metadata)


async def put_block_from_url(ctx: Ctx) -> web.StreamResponse:
    """Put Block From URL: stage a block from a byte range (x-ms-source-range) of a source."""
    block_id = block_id_param(ctx)
    blob_segments(ctx.blob)
    _require_empty_body(ctx)
    rng = parse_source_range(ctx.headers.get("x-ms-source-range"))
    start, end = rng if rng else (0, None)
    if end is not None and end - start + 1 > MAX_BLOCK_SIZE:
        raise StorageError("RequestBodyTooLarge", details={"MaxLimit": str(MAX_BLOCK_SIZE)})
    source = CopySource.from_headers(ctx.headers)
    # A block's MD5 is computed only to verify a source checksum: a local source is copied by
    # the kernel without reading it (4,000 MiB blocks of a 4.5 TiB blob in milliseconds).
    _, upload = await _copy_into_upload(ctx, source, MAX_BLOCK_SIZE, start, end, want_md5=False)
    await blocking(ctx.store.stage_block, ctx.account, ctx.container, ctx.blob, block_id, upload)
    headers = {"x-ms-request-server-encrypted": "true"}
    if upload.md5_b64:
        headers["Content-MD5"] = upload.md5_b64
    if upload.crc64_b64:
        headers["x-ms-content-crc64"] = upload.crc64_b64
    return respond(201, headers)


async def copy_blob(ctx: Ctx) -> web.StreamResponse:
    """Copy Blob: synchronous with x-ms-requires-sync: true or when the copy can finish at once
    (a small same-account source on this façade: CopyService.finishes_at_once), answering 202
    with status success; otherwise a job (202, status pending) that HEAD follows through
    x-ms-copy-status / -progress."""
    blob_segments(ctx.blob)
    metadata = parse_metadata(ctx.headers)
    source = CopySource.from_headers(ctx.headers)
    copy_id = str(uuid.uuid4())
    requires_sync = ctx.headers.get("x-ms-requires-sync", "").lower() == "true"
    if requires_sync or await _service(ctx).finishes_at_once(source, ctx.request, ctx.account):
        body, upload = await _copy_into_upload(
            ctx, source, MAX_PUT_BLOB_SIZE, async_copy=not requires_sync
        )
        content = ContentSettings(**body.props.content.to_dict())
        content.content_md5 = content.content_md5 or upload.md5_b64
        state = {
            "x-ms-copy-id": copy_id,
            "x-ms-copy-source": source.redacted,
            **finished_state("success", upload.size, upload.size),
        }
        props = await blocking(
            ctx.store.put_blob,
            ctx.account,
            ctx.container,
            ctx.blob,
            upload,
            content,
            metadata or body.props.metadata,
            ctx.conditions(),
            state,
        )
        headers = write_headers(props) | {"x-ms-copy-id": copy_id, "x-ms-copy-status": "success"}
        # Copy Blob From URL echoes the checksum it verified (its REST reference: Content-MD5
        # "returned so that the client can check for message content integrity")
        if ctx.headers.get("x-ms-source-content-md5") and upload.md5_b64:
            headers["Content-MD5"] = upload.md5_b64
        if upload.crc64_b64:
            headers["x-ms-content-crc64"] = upload.crc64_b64
        return respond(202, headers)

    # Asynchronous: the source is opened (and so verified) before the answer, as Azure does.
    service = _service(ctx)
    local = service.is_local(source, ctx.request)
    body = await service.open(source, ctx.request, ctx.account, async_copy=True)
    try:
        check_source_conditions(
            source_conditions(ctx.headers), body.props.etag, body.props.last_modified
        )
        content = ContentSettings(**body.props.content.to_dict())
        placeholder = ctx.store.new_upload(ctx.account, ctx.container, want_md5=False, limit=0)
        state = {
            "x-ms-copy-id": copy_id,
            "x-ms-copy-source": source.redacted,
            "x-ms-copy-status": "pending",
            "x-ms-copy-progress": f"0/{body.props.size}",
        }
        props = await blocking(
            ctx.store.put_blob,
            ctx.account,
            ctx.container,
            ctx.blob,
            placeholder,
            content,
            metadata or body.props.metadata,
            ctx.conditions(),
            state,
        )
    except BaseException:
        await body.close()
        raise
    record = JobRecord(
        copy_id=copy_id,
        account=ctx.account,
        container=ctx.container,
        blob=ctx.blob,
        source_url=source.url,
        source_authorization=source.authorization,
        local=local,
        etag=props.etag,
        content=content.to_dict(),
        metadata=dict(props.metadata),
        api_version=ctx.headers.get("x-ms-version") or ctx.config.api_version,
    )
    await service.jobs.start(record, body)
    headers = write_headers(props) | {"x-ms-copy-id": copy_id, "x-ms-copy-status": "pending"}
    return respond(202, headers)


async def abort_copy(ctx: Ctx) -> web.StreamResponse:
    """Abort Copy (comp=copy&copyid=...): 204; 409 CopyIdMismatch / NoPendingCopyOperation."""
    if (ctx.headers.get("x-ms-copy-action") or "").lower() != "abort":
        raise StorageError("MissingRequiredHeader", details={"HeaderName": "x-ms-copy-action"})
    copy_id = ctx.query.get("copyid")
    if not copy_id:
        raise StorageError(
            "MissingRequiredQueryParameter", details={"QueryParameterName": "copyid"}
        )
    await _service(ctx).jobs.abort(ctx.account, ctx.container, ctx.blob, copy_id)
    return respond(204)

"""Server-side copy: Put Blob From URL, Put Block From URL (x-ms-source-range), Copy Blob."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from harness.conformance.framework import CheckContext, block_id, check
from harness.signing import generate_service_sas

PUT_FROM_URL = "Put Blob From URL"
BLOCK_FROM_URL = "Put Block From URL"
COPY = "Copy Blob"

SOURCE = bytes(range(256)) * 40  # 10,240 bytes


def _source(ctx: CheckContext) -> tuple[str, str]:
    """A source blob and its SAS URL (the façade fetches it as a client would)."""
    ct = ctx.container("src")
    ctx.put_blob(ct, "source.bin", SOURCE)
    sas = generate_service_sas(
        ctx.account,
        ctx.key,
        container=ct,
        blob="source.bin",
        permissions="r",
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    return ct, ctx.http.url(ctx.http.path(ct, "source.bin")) + "?" + sas


@check("put-blob-from-url.status", PUT_FROM_URL, "201 and the destination has the source bytes")
def _pfu(ctx: CheckContext) -> None:
    _, url = _source(ctx)
    dst = ctx.container("dst")
    resp = ctx.http.request(
        "PUT", dst, "copy.bin", headers={"x-ms-blob-type": "BlockBlob", "x-ms-copy-source": url}
    )
    ctx.expect_status(resp, 201)
    ctx.expect("bytes", SOURCE, ctx.get(dst, "copy.bin").body)


@check("put-blob-from-url.etag", PUT_FROM_URL, "the response ETag is the destination's ETag")
def _pfu_etag(ctx: CheckContext) -> None:
    _, url = _source(ctx)
    dst = ctx.container("dst")
    resp = ctx.http.request(
        "PUT", dst, "copy.bin", headers={"x-ms-blob-type": "BlockBlob", "x-ms-copy-source": url}
    )
    ctx.expect_header(ctx.head(dst, "copy.bin"), "etag", resp.header("etag"))


@check(
    "put-blob-from-url.missing-source",
    PUT_FROM_URL,
    "a source that does not exist -> 404 CannotVerifyCopySource",
)
def _pfu_missing(ctx: CheckContext) -> None:
    _, url = _source(ctx)
    dst = ctx.container("dst")
    bad = url.replace("source.bin", "absent.bin")
    resp = ctx.http.request(
        "PUT", dst, "copy.bin", headers={"x-ms-blob-type": "BlockBlob", "x-ms-copy-source": bad}
    )
    ctx.expect_true(
        "status 4xx with a code",
        400 <= resp.status < 500 and bool(resp.error_code),
        "4xx + x-ms-error-code",
        f"{resp.status} {resp.error_code}",
    )
    ctx.expect_error(ctx.head(dst, "copy.bin"), 404, "BlobNotFound", "no destination")


@check(
    "put-blob-from-url.content-md5", PUT_FROM_URL, "a matching x-ms-source-content-md5 is accepted"
)
def _pfu_md5(ctx: CheckContext) -> None:
    from harness.conformance.framework import md5_b64

    _, url = _source(ctx)
    dst = ctx.container("dst")
    resp = ctx.http.request(
        "PUT",
        dst,
        "copy.bin",
        headers={
            "x-ms-blob-type": "BlockBlob",
            "x-ms-copy-source": url,
            "x-ms-source-content-md5": md5_b64(SOURCE),
        },
    )
    ctx.expect_status(resp, 201)


@check(
    "put-block-from-url.range",
    BLOCK_FROM_URL,
    "x-ms-source-range blocks committed in order rebuild the source",
)
def _pbfu(ctx: CheckContext) -> None:
    _, url = _source(ctx)
    dst = ctx.container("dst")
    half = len(SOURCE) // 2
    for n, (lo, hi) in enumerate([(0, half - 1), (half, len(SOURCE) - 1)]):
        resp = ctx.http.request(
            "PUT",
            dst,
            "copy.bin",
            query={"comp": "block", "blockid": block_id(n)},
            headers={
                "x-ms-copy-source": url,
                "x-ms-source-range": f"bytes={lo}-{hi}",
                "Content-Length": "0",
            },
        )
        ctx.expect_status(resp, 201, f"block {n}")
    ctx.expect_status(
        ctx.put_block_list(dst, "copy.bin", [("Latest", block_id(0)), ("Latest", block_id(1))]), 201
    )
    ctx.expect("bytes", SOURCE, ctx.get(dst, "copy.bin").body)


@check("put-block-from-url.partial", BLOCK_FROM_URL, "a range in the middle stages exactly it")
def _pbfu_mid(ctx: CheckContext) -> None:
    _, url = _source(ctx)
    dst = ctx.container("dst")
    ctx.http.request(
        "PUT",
        dst,
        "copy.bin",
        query={"comp": "block", "blockid": block_id(0)},
        headers={
            "x-ms-copy-source": url,
            "x-ms-source-range": "bytes=100-199",
            "Content-Length": "0",
        },
    )
    ctx.put_block_list(dst, "copy.bin", [("Latest", block_id(0))])
    ctx.expect("bytes", SOURCE[100:200], ctx.get(dst, "copy.bin").body)


@check("copy-blob.sync", COPY, "x-ms-requires-sync: true -> 202 with x-ms-copy-status: success")
def _copy_sync(ctx: CheckContext) -> None:
    _, url = _source(ctx)
    dst = ctx.container("dst")
    resp = ctx.http.request(
        "PUT", dst, "copy.bin", headers={"x-ms-copy-source": url, "x-ms-requires-sync": "true"}
    )
    ctx.expect_status(resp, 202)
    ctx.expect_header(resp, "x-ms-copy-status", "success")
    ctx.expect("bytes", SOURCE, ctx.get(dst, "copy.bin").body)


@check("copy-blob.async", COPY, "asynchronous copy -> 202 with x-ms-copy-id and a copy status")
def _copy_async(ctx: CheckContext) -> None:
    _, url = _source(ctx)
    dst = ctx.container("dst")
    resp = ctx.http.request("PUT", dst, "copy.bin", headers={"x-ms-copy-source": url})
    ctx.expect_status(resp, 202)
    ctx.expect_header(resp, "x-ms-copy-id")
    status = ctx.expect_header(resp, "x-ms-copy-status")
    ctx.expect_true("status", status in ("pending", "success"), "pending|success", status)


@check("copy-blob.completes", COPY, "an asynchronous copy ends as success with the source bytes")
def _copy_done(ctx: CheckContext) -> None:
    import time

    _, url = _source(ctx)
    dst = ctx.container("dst")
    ctx.http.request("PUT", dst, "copy.bin", headers={"x-ms-copy-source": url})
    deadline = time.monotonic() + 10
    status = None
    while time.monotonic() < deadline:
        status = ctx.head(dst, "copy.bin").header("x-ms-copy-status")
        if status != "pending":
            break
        time.sleep(0.05)
    ctx.expect("copy status", "success", status)
    ctx.expect("bytes", SOURCE, ctx.get(dst, "copy.bin").body)

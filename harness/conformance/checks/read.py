"""Ranged reads, If-Range, and every conditional header on reads (304 / 412) and writes (412)."""

from __future__ import annotations

from collections.abc import Callable

from harness.conformance.framework import CheckContext, check, http_date, md5_b64, register_cases

RANGES = "Get Blob Ranges"
IF_RANGE = "If-Range"
COND_READ = "Conditional Reads"
COND_WRITE = "Conditional Writes"

DATA = bytes(range(100))  # 100 bytes; byte i has value i


def _blob(ctx: CheckContext, data: bytes = DATA) -> tuple[str, str]:
    ct = ctx.container()
    etag = ctx.put_blob(ct, "r", data).header("etag") or ""
    return ct, etag


def _ranged(
    header: str, value: str, status: int, content_range: str | None, body: bytes, data: bytes = DATA
) -> Callable[[CheckContext], None]:
    def run(ctx: CheckContext) -> None:
        ct, _ = _blob(ctx, data)
        resp = ctx.get(ct, "r", **{header: value})
        ctx.expect_status(resp, status)
        ctx.expect("Content-Range", content_range, resp.header("content-range"))
        ctx.expect("body", body, resp.body)
        ctx.expect("Content-Length", str(len(body)), resp.header("content-length"))

    return run


def _invalid(header: str, value: str, data: bytes = DATA) -> Callable[[CheckContext], None]:
    def run(ctx: CheckContext) -> None:
        ct, _ = _blob(ctx, data)
        resp = ctx.get(ct, "r", **{header: value})
        ctx.expect_error(resp, 416, "InvalidRange")
        ctx.expect_header(resp, "content-range", f"bytes */{len(data)}")

    return run


register_cases(
    "range",
    RANGES,
    [
        (
            "x-ms-range-closed",
            "x-ms-range bytes=10-19 -> 206, Content-Range bytes 10-19/100",
            _ranged("x-ms-range", "bytes=10-19", 206, "bytes 10-19/100", DATA[10:20]),
        ),
        (
            "range-closed",
            "Range bytes=10-19 -> 206, Content-Range bytes 10-19/100",
            _ranged("Range", "bytes=10-19", 206, "bytes 10-19/100", DATA[10:20]),
        ),
        (
            "first-byte",
            "bytes=0-0 -> 206 with one byte",
            _ranged("x-ms-range", "bytes=0-0", 206, "bytes 0-0/100", DATA[:1]),
        ),
        (
            "last-byte",
            "bytes=99-99 -> 206 with the last byte",
            _ranged("x-ms-range", "bytes=99-99", 206, "bytes 99-99/100", DATA[99:]),
        ),
        (
            "open-ended",
            "bytes=90- -> 206 with the tail",
            _ranged("x-ms-range", "bytes=90-", 206, "bytes 90-99/100", DATA[90:]),
        ),
        (
            "open-ended-range",
            "Range bytes=90- -> 206 with the tail",
            _ranged("Range", "bytes=90-", 206, "bytes 90-99/100", DATA[90:]),
        ),
        (
            "whole",
            "bytes=0-99 -> 206 covering the whole blob",
            _ranged("x-ms-range", "bytes=0-99", 206, "bytes 0-99/100", DATA),
        ),
        (
            "end-past-size",
            "bytes=95-200 -> 206 clipped to bytes 95-99/100",
            _ranged("x-ms-range", "bytes=95-200", 206, "bytes 95-99/100", DATA[95:]),
        ),
        (
            "start-past-end",
            "bytes=100-199 -> 416 InvalidRange with Content-Range bytes */100",
            _invalid("x-ms-range", "bytes=100-199"),
        ),
        (
            "start-past-end-range",
            "Range bytes=150- -> 416 InvalidRange",
            _invalid("Range", "bytes=150-"),
        ),
        (
            "zero-length-blob",
            "bytes=0- on a 0-byte blob -> 416 InvalidRange",
            _invalid("x-ms-range", "bytes=0-", b""),
        ),
        (
            "zero-length-blob-range",
            "Range bytes=0-0 on a 0-byte blob -> 416 InvalidRange",
            _invalid("Range", "bytes=0-0", b""),
        ),
        (
            "suffix",
            "Range bytes=-10 (suffix, unsupported by Blob) -> 200 with the whole blob",
            _ranged("Range", "bytes=-10", 200, None, DATA),
        ),
    ],
)


@check("range.x-ms-range-beats-range", RANGES, "with both headers, x-ms-range wins")
def _xms_wins(ctx: CheckContext) -> None:
    ct, _ = _blob(ctx)
    resp = ctx.get(ct, "r", **{"Range": "bytes=0-9", "x-ms-range": "bytes=50-59"})
    ctx.expect(
        "status / Content-Range",
        (206, "bytes 50-59/100"),
        (resp.status, resp.header("content-range")),
    )
    ctx.expect("body", DATA[50:60], resp.body)


@check("range.headers", RANGES, "a 206 carries ETag, Last-Modified, x-ms-blob-type, Accept-Ranges")
def _range_headers(ctx: CheckContext) -> None:
    ct, etag = _blob(ctx)
    resp = ctx.get(ct, "r", **{"x-ms-range": "bytes=0-9"})
    ctx.expect_header(resp, "etag", etag)
    ctx.expect_header(resp, "x-ms-blob-type", "BlockBlob")
    ctx.expect_header(resp, "last-modified")
    ctx.expect_header(resp, "accept-ranges", "bytes")


@check("range.content-md5", RANGES, "x-ms-range-get-content-md5: true returns the MD5 of the range")
def _range_md5(ctx: CheckContext) -> None:
    ct, _ = _blob(ctx)
    resp = ctx.get(ct, "r", **{"x-ms-range": "bytes=10-29", "x-ms-range-get-content-md5": "true"})
    ctx.expect_status(resp, 206)
    ctx.expect_header(resp, "content-md5", md5_b64(DATA[10:30]))


@check(
    "range.whole-blob-md5",
    RANGES,
    "a ranged read reports the whole blob's MD5 in x-ms-blob-content-md5",
)
def _range_blob_md5(ctx: CheckContext) -> None:
    ct, _ = _blob(ctx)
    resp = ctx.get(ct, "r", **{"x-ms-range": "bytes=0-9"})
    ctx.expect_header(resp, "x-ms-blob-content-md5", md5_b64(DATA))


@check("range.head", RANGES, "HEAD ignores ranges: Content-Length is the blob size")
def _range_head(ctx: CheckContext) -> None:
    ct, _ = _blob(ctx)
    resp = ctx.head(ct, "r")
    ctx.expect_header(resp, "content-length", "100")


# ---- If-Range ------------------------------------------------------------------------------------


def _if_range(match: bool, status: int, body: bytes) -> Callable[[CheckContext], None]:
    def run(ctx: CheckContext) -> None:
        ct, etag = _blob(ctx)
        value = etag if match else '"0x8D000000DEADBEEF"'
        resp = ctx.get(ct, "r", **{"Range": "bytes=0-9", "If-Range": value})
        ctx.expect_status(resp, status)
        ctx.expect("body", body, resp.body)

    return run


register_cases(
    "if-range",
    IF_RANGE,
    [
        (
            "etag-match",
            "If-Range with the current ETag -> 206 with the range",
            _if_range(True, 206, DATA[:10]),
        ),
        (
            "etag-stale",
            "If-Range with a stale ETag -> 200 with the whole blob",
            _if_range(False, 200, DATA),
        ),
    ],
)


@check(
    "if-range.after-overwrite",
    IF_RANGE,
    "If-Range with the ETag from before an overwrite -> 200 with the new bytes",
)
def _if_range_overwrite(ctx: CheckContext) -> None:
    ct, etag = _blob(ctx)
    ctx.put_blob(ct, "r", b"new bytes here")
    resp = ctx.get(ct, "r", **{"Range": "bytes=0-2", "If-Range": etag})
    ctx.expect("status / body", (200, b"new bytes here"), (resp.status, resp.body))


# ---- Conditional reads --------------------------------------------------------------------------

FUTURE = 3600.0
PAST = -3600.0


def _cond_value(kind: str, etag: str, last_modified: str) -> str:
    return {
        "current": etag,
        "other": '"0x8D000000DEADBEEF"',
        "star": "*",
        "past": http_date(PAST),
        "future": http_date(FUTURE),
        "last-modified": last_modified,
    }[kind]


def _cond_read(
    method: str, header: str, kind: str, status: int, code: str | None = None
) -> Callable[[CheckContext], None]:
    def run(ctx: CheckContext) -> None:
        ct = ctx.container()
        put = ctx.put_blob(ct, "r", DATA)
        value = _cond_value(kind, put.header("etag") or "", put.header("last-modified") or "")
        resp = ctx.http.request(method, ct, "r", headers={header: value})
        if code:
            ctx.expect_error(resp, status, code)
        else:
            ctx.expect_status(resp, status)
        if status == 304:
            ctx.expect("304 body", b"", resp.body)
            ctx.expect_header(resp, "etag", put.header("etag"))
        if status == 200 and method == "GET":
            ctx.expect("body", DATA, resp.body)

    return run


_READ_CASES: list[tuple[str, str, str, int, str | None]] = [
    ("If-Match", "current", "match", 200, None),
    ("If-Match", "other", "mismatch", 412, "ConditionNotMet"),
    ("If-Match", "star", "star", 200, None),
    ("If-None-Match", "current", "match", 304, None),
    ("If-None-Match", "other", "mismatch", 200, None),
    ("If-Modified-Since", "past", "past", 200, None),
    ("If-Modified-Since", "last-modified", "equal", 304, None),
    ("If-Unmodified-Since", "past", "past", 412, "ConditionNotMet"),
    ("If-Unmodified-Since", "future", "future", 200, None),
    ("If-Unmodified-Since", "last-modified", "equal", 200, None),
]

for _method in ("GET", "HEAD"):
    register_cases(
        f"cond-read.{_method.lower()}",
        COND_READ,
        [
            (
                f"{hdr.lower()}-{label}",
                f"{_method} with {hdr}: {label} -> {status}{' ' + code if code else ''}",
                _cond_read(_method, hdr, kind, status, code),
            )
            for hdr, kind, label, status, code in _READ_CASES
        ],
    )


@check(
    "cond-read.ranged-if-unmodified-since",
    COND_READ,
    "ranged GET with If-Unmodified-Since = Last-Modified -> 206 (AzCopy's download pattern)",
)
def _cond_azcopy(ctx: CheckContext) -> None:
    ct = ctx.container()
    put = ctx.put_blob(ct, "r", DATA)
    resp = ctx.get(
        ct,
        "r",
        **{"x-ms-range": "bytes=0-49", "If-Unmodified-Since": put.header("last-modified") or ""},
    )
    ctx.expect("status / body", (206, DATA[:50]), (resp.status, resp.body))


# ---- Conditional writes -------------------------------------------------------------------------


def _write_put(ctx: CheckContext, ct: str, headers: dict[str, str]):
    return ctx.http.request(
        "PUT", ct, "r", body=b"replacement", headers={"x-ms-blob-type": "BlockBlob", **headers}
    )


def _write_meta(ctx: CheckContext, ct: str, headers: dict[str, str]):
    return ctx.http.request(
        "PUT", ct, "r", query={"comp": "metadata"}, headers={"x-ms-meta-k": "v", **headers}
    )


def _write_props(ctx: CheckContext, ct: str, headers: dict[str, str]):
    return ctx.http.request(
        "PUT",
        ct,
        "r",
        query={"comp": "properties"},
        headers={"x-ms-blob-content-type": "text/plain", **headers},
    )


def _write_delete(ctx: CheckContext, ct: str, headers: dict[str, str]):
    return ctx.http.request("DELETE", ct, "r", headers=headers)


def _write_blocklist(ctx: CheckContext, ct: str, headers: dict[str, str]):
    return ctx.put_block_list(ct, "r", [], headers=headers)


WRITES = {
    "put-blob": (_write_put, 201),
    "set-metadata": (_write_meta, 200),
    "set-properties": (_write_props, 200),
    "delete": (_write_delete, 202),
    "put-block-list": (_write_blocklist, 201),
}


def _cond_write(
    op: str, header: str, kind: str, ok: bool, code: str = "ConditionNotMet"
) -> Callable[[CheckContext], None]:
    send, ok_status = WRITES[op]

    def run(ctx: CheckContext) -> None:
        ct = ctx.container()
        put = ctx.put_blob(ct, "r", DATA)
        value = _cond_value(kind, put.header("etag") or "", put.header("last-modified") or "")
        resp = send(ctx, ct, {header: value})
        if ok:
            ctx.expect_status(resp, ok_status)
        else:
            ctx.expect_error(resp, 409 if code == "BlobAlreadyExists" else 412, code)
            ctx.expect("blob unchanged", DATA, ctx.get(ct, "r").body)

    return run


_WRITE_CASES: list[tuple[str, str, str, bool, str]] = [
    ("If-Match", "current", "match", True, ""),
    ("If-Match", "other", "mismatch", False, "ConditionNotMet"),
    ("If-None-Match", "current", "match", False, "ConditionNotMet"),
    ("If-Modified-Since", "last-modified", "equal", False, "ConditionNotMet"),
    ("If-Unmodified-Since", "last-modified", "equal", True, ""),
    ("If-Unmodified-Since", "past", "past", False, "ConditionNotMet"),
]

for _op in WRITES:
    register_cases(
        f"cond-write.{_op}",
        COND_WRITE,
        [
            (
                f"{hdr.lower()}-{label}",
                f"{_op} with {hdr}: {label} -> {'success' if ok else code}",
                _cond_write(_op, hdr, kind, ok, code or "ConditionNotMet"),
            )
            for hdr, kind, label, ok, code in _WRITE_CASES
        ],
    )

register_cases(
    "cond-write.put-blob",
    COND_WRITE,
    [
        (
            "if-none-match-star-exists",
            "Put Blob with If-None-Match: * on an existing blob -> 409 BlobAlreadyExists",
            _cond_write("put-blob", "If-None-Match", "star", False, "BlobAlreadyExists"),
        ),
    ],
)


@check(
    "cond-write.put-blob.if-none-match-star-new",
    COND_WRITE,
    "Put Blob with If-None-Match: * on a new name -> 201 (create-only upload)",
)
def _create_only(ctx: CheckContext) -> None:
    ct = ctx.container()
    resp = ctx.http.request(
        "PUT", ct, "fresh", body=b"x", headers={"x-ms-blob-type": "BlockBlob", "If-None-Match": "*"}
    )
    ctx.expect_status(resp, 201)

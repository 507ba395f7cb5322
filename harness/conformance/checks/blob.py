"""Blob operations: Put Blob, Get Blob, Get / Set Blob Properties, metadata, Delete Blob, names."""

from __future__ import annotations

from harness.conformance.checks.service import QUOTED, RFC1123
from harness.conformance.framework import CheckContext, check, md5_b64, register_cases

PUT = "Put Blob"
GET = "Get Blob"
PROPS = "Blob Properties"
META = "Blob Metadata"
DELETE = "Delete Blob"
NAMES = "Blob Names"

DATA = b"0123456789abcdefghijklmnopqrstuvwxyz"


def _put(ctx: CheckContext, data: bytes = DATA, **headers: str):
    ct = ctx.container()
    resp = ctx.http.request(
        "PUT", ct, "blob", body=data, headers={"x-ms-blob-type": "BlockBlob", **headers}
    )
    return ct, resp


@check("put-blob.status", PUT, "201 Created")
def _pb_status(ctx: CheckContext) -> None:
    ctx.expect_status(_put(ctx)[1], 201)


@check("put-blob.etag", PUT, "strong quoted ETag")
def _pb_etag(ctx: CheckContext) -> None:
    etag = ctx.expect_header(_put(ctx)[1], "etag")
    ctx.expect_true("quoted, not weak", bool(QUOTED.match(etag)), '"..."', etag)


@check("put-blob.last-modified", PUT, "Last-Modified in RFC 1123")
def _pb_lm(ctx: CheckContext) -> None:
    lm = ctx.expect_header(_put(ctx)[1], "last-modified")
    ctx.expect_true("RFC 1123", bool(RFC1123.match(lm)), "RFC 1123", lm)


@check("put-blob.content-md5", PUT, "response Content-MD5 is the MD5 of the body")
def _pb_md5(ctx: CheckContext) -> None:
    ctx.expect_header(_put(ctx)[1], "content-md5", md5_b64(DATA))


@check("put-blob.md5-verified", PUT, "a correct Content-MD5 on upload is accepted (201)")
def _pb_md5_ok(ctx: CheckContext) -> None:
    ctx.expect_status(_put(ctx, **{"Content-MD5": md5_b64(DATA)})[1], 201)


@check("put-blob.md5-mismatch", PUT, "a wrong Content-MD5 -> 400 Md5Mismatch, nothing stored")
def _pb_md5_bad(ctx: CheckContext) -> None:
    ct, resp = _put(ctx, **{"Content-MD5": md5_b64(b"other")})
    ctx.expect_error(resp, 400, "Md5Mismatch")
    ctx.expect_error(ctx.head(ct, "blob"), 404, "BlobNotFound", "blob after mismatch")


@check("put-blob.invalid-md5", PUT, "a Content-MD5 that is not 16 bytes of base64 -> 400")
def _pb_md5_invalid(ctx: CheckContext) -> None:
    ctx.expect_status(_put(ctx, **{"Content-MD5": "bm90LW1kNQ=="})[1], 400)


@check("put-blob.missing-blob-type", PUT, "no x-ms-blob-type -> 400 MissingRequiredHeader")
def _pb_no_type(ctx: CheckContext) -> None:
    ct = ctx.container()
    resp = ctx.http.request("PUT", ct, "blob", body=DATA)
    ctx.expect_error(resp, 400, "MissingRequiredHeader")


@check("put-blob.missing-container", PUT, "into a missing container -> 404 ContainerNotFound")
def _pb_no_container(ctx: CheckContext) -> None:
    resp = ctx.http.request(
        "PUT", ctx.name("missing"), "blob", body=DATA, headers={"x-ms-blob-type": "BlockBlob"}
    )
    ctx.expect_error(resp, 404, "ContainerNotFound")


@check("put-blob.overwrite", PUT, "a second Put Blob replaces content and changes the ETag")
def _pb_overwrite(ctx: CheckContext) -> None:
    ct, first = _put(ctx)
    second = ctx.put_blob(ct, "blob", b"new content")
    ctx.expect_true(
        "ETag changed",
        first.header("etag") != second.header("etag"),
        "different",
        second.header("etag"),
    )
    ctx.expect("body", b"new content", ctx.get(ct, "blob").body)


@check("put-blob.zero-length", PUT, "an empty Put Blob -> 201 and a 0-byte blob")
def _pb_empty(ctx: CheckContext) -> None:
    ct, resp = _put(ctx, b"")
    ctx.expect_status(resp, 201)
    ctx.expect_header(ctx.head(ct, "blob"), "content-length", "0")


@check("put-blob.request-id", PUT, "x-ms-request-id, x-ms-version and Date on the response")
def _pb_common(ctx: CheckContext) -> None:
    resp = _put(ctx)[1]
    for name in ("x-ms-request-id", "x-ms-version", "date"):
        ctx.expect_header(resp, name)


def _persisted(header: str, value: str, response_header: str | None = None):
    def run(ctx: CheckContext) -> None:
        ct, _ = _put(ctx, **{header: value})
        ctx.expect_header(ctx.head(ct, "blob"), response_header or header, value)

    return run


register_cases(
    "put-blob.persists",
    PUT,
    [
        ("content-type", "Content-Type persisted", _persisted("Content-Type", "text/csv")),
        ("content-encoding", "Content-Encoding persisted", _persisted("Content-Encoding", "gzip")),
        ("content-language", "Content-Language persisted", _persisted("Content-Language", "fr-CA")),
        ("cache-control", "Cache-Control persisted", _persisted("Cache-Control", "max-age=60")),
        (
            "x-ms-blob-content-type",
            "x-ms-blob-content-type sets Content-Type",
            _persisted("x-ms-blob-content-type", "image/png", "content-type"),
        ),
        (
            "x-ms-blob-content-disposition",
            "x-ms-blob-content-disposition sets Content-Disposition",
            _persisted(
                "x-ms-blob-content-disposition", "attachment; filename=a.bin", "content-disposition"
            ),
        ),
        (
            "x-ms-blob-cache-control",
            "x-ms-blob-cache-control sets Cache-Control",
            _persisted("x-ms-blob-cache-control", "no-cache", "cache-control"),
        ),
        (
            "x-ms-blob-content-md5",
            "x-ms-blob-content-md5 sets the stored Content-MD5",
            _persisted("x-ms-blob-content-md5", md5_b64(DATA), "content-md5"),
        ),
    ],
)


@check("put-blob.default-content-type", PUT, "no Content-Type -> application/octet-stream")
def _pb_default_ctype(ctx: CheckContext) -> None:
    ct, _ = _put(ctx)
    ctx.expect_header(ctx.head(ct, "blob"), "content-type", "application/octet-stream")


# ---- Get Blob ---------------------------------------------------------------------------------


@check("get-blob.body", GET, "200 with the exact bytes")
def _gb_body(ctx: CheckContext) -> None:
    ct, _ = _put(ctx)
    resp = ctx.get(ct, "blob")
    ctx.expect_status(resp, 200)
    ctx.expect("body", DATA, resp.body)


@check("get-blob.headers", GET, "Content-Length, ETag, Last-Modified, x-ms-blob-type: BlockBlob")
def _gb_headers(ctx: CheckContext) -> None:
    ct, put = _put(ctx)
    resp = ctx.get(ct, "blob")
    ctx.expect_header(resp, "content-length", str(len(DATA)))
    ctx.expect_header(resp, "etag", put.header("etag"))
    ctx.expect_header(resp, "last-modified", put.header("last-modified"))
    ctx.expect_header(resp, "x-ms-blob-type", "BlockBlob")


@check("get-blob.content-md5", GET, "full read returns the stored Content-MD5")
def _gb_md5(ctx: CheckContext) -> None:
    ct, _ = _put(ctx)
    ctx.expect_header(ctx.get(ct, "blob"), "content-md5", md5_b64(DATA))


@check("get-blob.accept-ranges", GET, "Accept-Ranges: bytes")
def _gb_accept_ranges(ctx: CheckContext) -> None:
    ct, _ = _put(ctx)
    ctx.expect_header(ctx.get(ct, "blob"), "accept-ranges", "bytes")


@check("get-blob.missing", GET, "missing blob -> 404 BlobNotFound with XML body")
def _gb_missing(ctx: CheckContext) -> None:
    ct = ctx.container()
    resp = ctx.get(ct, "nope")
    ctx.expect_error(resp, 404, "BlobNotFound")
    ctx.expect("body Code", "BlobNotFound", resp.body_error_code())


@check("get-blob.missing-container", GET, "blob in a missing container -> 404 ContainerNotFound")
def _gb_missing_ct(ctx: CheckContext) -> None:
    ctx.expect_error(ctx.get(ctx.name("missing"), "nope"), 404, "ContainerNotFound")


@check("get-blob.empty", GET, "a 0-byte blob reads as 200 with Content-Length 0")
def _gb_empty(ctx: CheckContext) -> None:
    ct, _ = _put(ctx, b"")
    resp = ctx.get(ct, "blob")
    ctx.expect_status(resp, 200)
    ctx.expect("length", ("0", b""), (resp.header("content-length"), resp.body))


@check("get-blob.binary", GET, "all 256 byte values round-trip")
def _gb_binary(ctx: CheckContext) -> None:
    data = bytes(range(256)) * 8
    ct, _ = _put(ctx, data)
    ctx.expect("body", data, ctx.get(ct, "blob").body)


# ---- Blob properties (HEAD, Set Blob Properties) -----------------------------------------


@check(
    "blob-properties.head",
    PROPS,
    "HEAD: 200, Content-Length, ETag, Last-Modified, x-ms-blob-type, Content-MD5, no body",
)
def _bp_head(ctx: CheckContext) -> None:
    ct, put = _put(ctx)
    resp = ctx.head(ct, "blob")
    ctx.expect_status(resp, 200)
    ctx.expect_header(resp, "content-length", str(len(DATA)))
    ctx.expect_header(resp, "etag", put.header("etag"))
    ctx.expect_header(resp, "x-ms-blob-type", "BlockBlob")
    ctx.expect_header(resp, "content-md5", md5_b64(DATA))
    ctx.expect_header(resp, "last-modified")
    ctx.expect("body", b"", resp.body)


@check("blob-properties.head-missing", PROPS, "HEAD on a missing blob -> 404 + x-ms-error-code")
def _bp_missing(ctx: CheckContext) -> None:
    ct = ctx.container()
    ctx.expect_error(ctx.head(ct, "nope"), 404, "BlobNotFound")


@check("blob-properties.creation-time", PROPS, "HEAD carries x-ms-creation-time")
def _bp_creation(ctx: CheckContext) -> None:
    ct, _ = _put(ctx)
    ctx.expect_header(ctx.head(ct, "blob"), "x-ms-creation-time")


def _set_props(ctx: CheckContext, ct: str, **headers: str):
    return ctx.http.request("PUT", ct, "blob", query={"comp": "properties"}, headers=headers)


@check("blob-properties.set", PROPS, "Set Blob Properties -> 200, new ETag, value persisted")
def _bp_set(ctx: CheckContext) -> None:
    ct, put = _put(ctx)
    resp = _set_props(ctx, ct, **{"x-ms-blob-content-type": "text/plain"})
    ctx.expect_status(resp, 200)
    ctx.expect_true(
        "ETag changed", resp.header("etag") != put.header("etag"), "new ETag", resp.header("etag")
    )
    ctx.expect_header(ctx.head(ct, "blob"), "content-type", "text/plain")


@check(
    "blob-properties.set-clears-unsent",
    PROPS,
    "Set Blob Properties clears content headers it does not send (Azure semantics)",
)
def _bp_set_clears(ctx: CheckContext) -> None:
    ct, _ = _put(ctx, **{"Content-Language": "de", "Content-Type": "text/csv"})
    _set_props(ctx, ct, **{"x-ms-blob-content-type": "text/plain"})
    ctx.expect("Content-Language", None, ctx.head(ct, "blob").header("content-language"))


@check("blob-properties.set-keeps-body", PROPS, "Set Blob Properties leaves the bytes unchanged")
def _bp_set_body(ctx: CheckContext) -> None:
    ct, _ = _put(ctx)
    _set_props(ctx, ct, **{"x-ms-blob-cache-control": "no-store"})
    ctx.expect("body", DATA, ctx.get(ct, "blob").body)


@check("blob-properties.set-missing", PROPS, "Set Blob Properties on a missing blob -> 404")
def _bp_set_missing(ctx: CheckContext) -> None:
    ct = ctx.container()
    resp = ctx.http.request(
        "PUT",
        ct,
        "nope",
        query={"comp": "properties"},
        headers={"x-ms-blob-content-type": "text/plain"},
    )
    ctx.expect_error(resp, 404, "BlobNotFound")


# ---- Metadata -----------------------------------------------------------------------------


@check("blob-metadata.round-trip", META, "x-ms-meta-* on Put Blob come back on HEAD and GET")
def _bm_rt(ctx: CheckContext) -> None:
    ct, _ = _put(ctx, **{"x-ms-meta-epoch": "7", "x-ms-meta-source": "lake"})
    for resp in (ctx.head(ct, "blob"), ctx.get(ct, "blob")):
        ctx.expect(
            "meta", ("7", "lake"), (resp.header("x-ms-meta-epoch"), resp.header("x-ms-meta-source"))
        )


@check(
    "blob-metadata.case-preserved",
    META,
    "metadata name case is preserved (listing shows <CamelKey>)",
)
def _bm_case(ctx: CheckContext) -> None:
    ct, _ = _put(ctx, **{"x-ms-meta-CamelKey": "v"})
    root = ctx.list_blobs(ct, include="metadata").xml()
    meta = root.find("Blobs/Blob/Metadata")
    ctx.expect(
        "metadata elements", ["CamelKey"], [m.tag for m in meta] if meta is not None else None
    )


@check("blob-metadata.value-preserved", META, "metadata values keep spaces and punctuation")
def _bm_value(ctx: CheckContext) -> None:
    value = "a b, c=d; e/f"
    ct, _ = _put(ctx, **{"x-ms-meta-note": value})
    ctx.expect_header(ctx.head(ct, "blob"), "x-ms-meta-note", value)


def _set_meta(ctx: CheckContext, ct: str, blob: str = "blob", **meta: str):
    return ctx.http.request(
        "PUT",
        ct,
        blob,
        query={"comp": "metadata"},
        headers={f"x-ms-meta-{k}": v for k, v in meta.items()},
    )


@check("blob-metadata.set", META, "Set Blob Metadata -> 200 with a new ETag")
def _bm_set(ctx: CheckContext) -> None:
    ct, put = _put(ctx)
    resp = _set_meta(ctx, ct, k="v")
    ctx.expect_status(resp, 200)
    ctx.expect_true(
        "ETag changed", resp.header("etag") != put.header("etag"), "new ETag", resp.header("etag")
    )


@check("blob-metadata.replace", META, "Set Blob Metadata replaces all pairs")
def _bm_replace(ctx: CheckContext) -> None:
    ct, _ = _put(ctx, **{"x-ms-meta-old": "1"})
    _set_meta(ctx, ct, new="2")
    resp = ctx.head(ct, "blob")
    ctx.expect(
        "old / new", (None, "2"), (resp.header("x-ms-meta-old"), resp.header("x-ms-meta-new"))
    )


@check("blob-metadata.clear", META, "Set Blob Metadata with no pairs clears metadata")
def _bm_clear(ctx: CheckContext) -> None:
    ct, _ = _put(ctx, **{"x-ms-meta-old": "1"})
    _set_meta(ctx, ct)
    ctx.expect("old", None, ctx.head(ct, "blob").header("x-ms-meta-old"))


@check("blob-metadata.get", META, "Get Blob Metadata (GET ?comp=metadata) returns the pairs")
def _bm_get(ctx: CheckContext) -> None:
    ct, _ = _put(ctx, **{"x-ms-meta-k": "v"})
    resp = ctx.http.request("GET", ct, "blob", query={"comp": "metadata"})
    ctx.expect_status(resp, 200)
    ctx.expect_header(resp, "x-ms-meta-k", "v")


@check("blob-metadata.invalid-name", META, "a name that is not a C# identifier -> 400")
def _bm_invalid(ctx: CheckContext) -> None:
    ct = ctx.container()
    resp = ctx.http.request(
        "PUT", ct, "blob", body=DATA, headers={"x-ms-blob-type": "BlockBlob", "x-ms-meta-1bad": "v"}
    )
    ctx.expect_status(resp, 400)


@check("blob-metadata.keeps-body", META, "Set Blob Metadata leaves the bytes unchanged")
def _bm_body(ctx: CheckContext) -> None:
    ct, _ = _put(ctx)
    _set_meta(ctx, ct, k="v")
    ctx.expect("body", DATA, ctx.get(ct, "blob").body)


# ---- Delete Blob -----------------------------------------------------------------------------


@check("delete-blob.status", DELETE, "202 Accepted")
def _db_status(ctx: CheckContext) -> None:
    ct, _ = _put(ctx)
    ctx.expect_status(ctx.http.request("DELETE", ct, "blob"), 202)


@check("delete-blob.gone", DELETE, "after delete, GET -> 404 BlobNotFound")
def _db_gone(ctx: CheckContext) -> None:
    ct, _ = _put(ctx)
    ctx.http.request("DELETE", ct, "blob")
    ctx.expect_error(ctx.get(ct, "blob"), 404, "BlobNotFound")


@check("delete-blob.missing", DELETE, "delete a missing blob -> 404 BlobNotFound with XML body")
def _db_missing(ctx: CheckContext) -> None:
    ct = ctx.container()
    resp = ctx.http.request("DELETE", ct, "nope")
    ctx.expect_error(resp, 404, "BlobNotFound")
    ctx.expect("body Code", "BlobNotFound", resp.body_error_code())


@check(
    "delete-blob.missing-container",
    DELETE,
    "delete in a missing container -> 404 ContainerNotFound",
)
def _db_missing_ct(ctx: CheckContext) -> None:
    resp = ctx.http.request("DELETE", ctx.name("missing"), "nope")
    ctx.expect_error(resp, 404, "ContainerNotFound")


@check("delete-blob.unlisted", DELETE, "a deleted blob leaves the listing; siblings stay")
def _db_unlisted(ctx: CheckContext) -> None:
    ct, _ = _put(ctx)
    ctx.put_blob(ct, "keep", b"k")
    ctx.http.request("DELETE", ct, "blob")
    names = [b.findtext("Name") for b in ctx.list_blobs(ct).xml().iter("Blob")]
    ctx.expect("names", ["keep"], names)


# ---- Names ------------------------------------------------------------------------------------


def _name_case(name: str):
    def run(ctx: CheckContext) -> None:
        ct = ctx.container()
        data = name.encode() + b"!"
        ctx.put_blob(ct, name, data)
        ctx.expect("GET body", data, ctx.get(ct, name).body)
        listed = [b.findtext("Name") for b in ctx.list_blobs(ct).xml().iter("Blob")]
        ctx.expect("listed name", [name], listed)

    return run


register_cases(
    "names",
    NAMES,
    [
        (
            "space",
            "a name with spaces round-trips (PUT, GET, listing)",
            _name_case("my file 1.txt"),
        ),
        ("unicode", "a unicode name round-trips", _name_case("données/日本語/ß.bin")),
        ("percent", "a name with '%' round-trips (sent as %25)", _name_case("100%/a%20b")),
        ("plus", "a name with '+' stays '+' (not a space)", _name_case("c++/a+b.txt")),
        ("nested", "a deeply nested name round-trips", _name_case("a/b/c/d/e/f/g/h.bin")),
        ("punctuation", "names with !$&'()*,;=@ round-trip", _name_case("p!$&'()*,;=@x")),
        ("dots", "names with dots round-trip", _name_case("v1.2/file.tar.gz")),
    ],
)


@check("names.encoded-slash", NAMES, "'%2F' in the path is the same blob as '/' (AzCopy sends %2F)")
def _names_2f(ctx: CheckContext) -> None:
    ct = ctx.container()
    ctx.put_blob(ct, "dir/file", b"slash")
    raw = ctx.http.path(ct) + "/dir%2Ffile"
    resp = ctx.http.request("GET", raw_path=raw)
    ctx.expect("GET via %2F", (200, b"slash"), (resp.status, resp.body))


@check("names.max-length", NAMES, "a 1,024-character name is accepted")
def _names_1024(ctx: CheckContext) -> None:
    ct = ctx.container()
    name = "/".join(["d" * 99] * 10) + "/" + "f" * 24
    ctx.expect("length", 1024, len(name))
    ctx.put_blob(ct, name, b"long")
    ctx.expect("body", b"long", ctx.get(ct, name).body)


@check("names.too-long", NAMES, "a 1,025-character name -> 400")
def _names_1025(ctx: CheckContext) -> None:
    ct = ctx.container()
    name = "/".join(["d" * 99] * 10) + "/" + "f" * 25
    resp = ctx.http.request("PUT", ct, name, body=b"x", headers={"x-ms-blob-type": "BlockBlob"})
    ctx.expect_status(resp, 400)


@check(
    "names.trailing-slash",
    NAMES,
    "a name ending in '/' round-trips; a file-tree target refuses it with 400 and a code",
)
def _names_trailing(ctx: CheckContext) -> None:
    ct = ctx.container()
    resp = ctx.http.request(
        "PUT", ct, "folder/", body=b"stub", headers={"x-ms-blob-type": "BlockBlob"}
    )
    if ctx.capabilities.get("file_tree_names"):
        ctx.expect_true(
            "refused",
            resp.status == 400 and bool(resp.error_code),
            "400 + x-ms-error-code",
            f"{resp.status} {resp.error_code}",
        )
        return
    ctx.expect_status(resp, 201)
    ctx.expect("GET body", b"stub", ctx.get(ct, "folder/").body)


@check(
    "names.file-tree-conflict",
    NAMES,
    "a blob 'a' beside a blob 'a/b': object stores keep both; a file-tree target refuses "
    "the second with 400 InvalidPath",
)
def _names_conflict(ctx: CheckContext) -> None:
    ct = ctx.container()
    ctx.put_blob(ct, "a", b"file")
    resp = ctx.http.request(
        "PUT", ct, "a/b", body=b"child", headers={"x-ms-blob-type": "BlockBlob"}
    )
    if ctx.capabilities.get("file_tree_names"):
        ctx.expect_error(resp, 400, "InvalidPath")
        ctx.expect("first blob intact", b"file", ctx.get(ct, "a").body)
        return
    ctx.expect_status(resp, 201)
    ctx.expect(
        "both readable", (b"file", b"child"), (ctx.get(ct, "a").body, ctx.get(ct, "a/b").body)
    )

"""Put Block, Put Block List (Latest / Committed / Uncommitted) and Get Block List."""

from __future__ import annotations

from harness.conformance.framework import (
    CheckContext,
    block_id,
    check,
    children,
    crc64_b64,
    md5_b64,
)

PUT_BLOCK = "Put Block"
BLOCK_LIST = "Put Block List"
GET_LIST = "Get Block List"

MAX_COMMITTED_BLOCKS = 50_000


def _stage(ctx: CheckContext, ct: str, blob: str, parts: dict[int, bytes]) -> None:
    for n, data in parts.items():
        resp = ctx.put_block(ct, blob, block_id(n), data)
        ctx.expect_status(resp, 201, f"put block {n}")


def _commit(ctx: CheckContext, ct: str, blob: str, entries, **headers: str):
    return ctx.put_block_list(ct, blob, [(k, block_id(n)) for k, n in entries], headers=headers)


def _get_list(ctx: CheckContext, ct: str, blob: str, kind: str = "all"):
    return ctx.http.request("GET", ct, blob, query={"comp": "blocklist", "blocklisttype": kind})


def _names(root, section: str) -> list[str]:
    return [b.findtext("Name") or "" for b in root.findall(f"{section}/Block")]


# ---- Put Block ----------------------------------------------------------------------------------


@check("put-block.status", PUT_BLOCK, "201 Created with x-ms-request-server-encrypted")
def _pb_status(ctx: CheckContext) -> None:
    ct = ctx.container()
    resp = ctx.put_block(ct, "b", block_id(1), b"data")
    ctx.expect_status(resp, 201)
    ctx.expect_header(resp, "x-ms-request-server-encrypted")


@check(
    "put-block.response-checksum",
    PUT_BLOCK,
    "without a checksum sent, the answer carries Content-MD5 or x-ms-content-crc64 of the block",
)
def _pb_checksum(ctx: CheckContext) -> None:
    # Azure's Put Block reference (2019-02-02 and later) answers a computed x-ms-content-crc64
    # when the request sent no Content-MD5, and promises Content-MD5 only when it was sent: so
    # either is accepted, and every checksum answered must be the block's.
    ct = ctx.container()
    resp = ctx.put_block(ct, "b", block_id(1), b"data")
    ctx.expect_status(resp, 201)
    want = {"content-md5": md5_b64(b"data"), "x-ms-content-crc64": crc64_b64(b"data")}
    got = {name: resp.header(name) for name in want if resp.header(name)}
    answered = ", ".join(sorted(got)) or "neither"  # the headers the façade sent
    ctx.expect_true("a checksum", bool(got), "Content-MD5 or x-ms-content-crc64", answered)
    ctx.expect("checksums of the block", {n: want[n] for n in got}, got)


@check("put-block.md5-mismatch", PUT_BLOCK, "a wrong Content-MD5 -> 400 Md5Mismatch")
def _pb_md5_bad(ctx: CheckContext) -> None:
    ct = ctx.container()
    resp = ctx.http.request(
        "PUT",
        ct,
        "b",
        query={"comp": "block", "blockid": block_id(1)},
        body=b"data",
        headers={"Content-MD5": md5_b64(b"else")},
    )
    ctx.expect_error(resp, 400, "Md5Mismatch")


@check("put-block.invisible", PUT_BLOCK, "a staged block does not create a readable blob")
def _pb_invisible(ctx: CheckContext) -> None:
    ct = ctx.container()
    _stage(ctx, ct, "b", {1: b"x"})
    ctx.expect_error(ctx.get(ct, "b"), 404, "BlobNotFound")


@check("put-block.not-listed", PUT_BLOCK, "an uncommitted blob is not in List Blobs")
def _pb_unlisted(ctx: CheckContext) -> None:
    ct = ctx.container()
    _stage(ctx, ct, "b", {1: b"x"})
    ctx.expect("blobs", [], [b.findtext("Name") for b in ctx.list_blobs(ct).xml().iter("Blob")])


@check(
    "put-block.mixed-id-length",
    PUT_BLOCK,
    "a block ID of another length than the staged ones -> 400 InvalidBlobOrBlock",
)
def _pb_mixed(ctx: CheckContext) -> None:
    ct = ctx.container()
    _stage(ctx, ct, "b", {1: b"x"})
    resp = ctx.put_block(ct, "b", block_id(2, width=12), b"y")
    ctx.expect_error(resp, 400, "InvalidBlobOrBlock")


@check("put-block.missing-blockid", PUT_BLOCK, "comp=block without blockid -> 400")
def _pb_no_id(ctx: CheckContext) -> None:
    ct = ctx.container()
    resp = ctx.http.request("PUT", ct, "b", query={"comp": "block"}, body=b"x")
    ctx.expect_status(resp, 400)


@check("put-block.id-too-long", PUT_BLOCK, "a block ID over 64 bytes before encoding -> 400")
def _pb_long_id(ctx: CheckContext) -> None:
    ct = ctx.container()
    resp = ctx.put_block(ct, "b", block_id(1, width=65), b"x")
    ctx.expect_status(resp, 400)


@check(
    "put-block.missing-container", PUT_BLOCK, "into a missing container -> 404 ContainerNotFound"
)
def _pb_no_ct(ctx: CheckContext) -> None:
    resp = ctx.put_block(ctx.name("missing"), "b", block_id(1), b"x")
    ctx.expect_error(resp, 404, "ContainerNotFound")


@check(
    "put-block.azcopy-48-char-ids",
    PUT_BLOCK,
    "48-character base64 IDs (AzCopy's shape) stage and commit",
)
def _pb_azcopy(ctx: CheckContext) -> None:
    ct = ctx.container()
    ids = [block_id(n, width=36) for n in range(3)]
    ctx.expect("ID length", 48, len(ids[0]))
    for n, bid in enumerate(ids):
        ctx.expect_status(ctx.put_block(ct, "b", bid, bytes([65 + n]) * 3), 201)
    ctx.expect_status(ctx.put_block_list(ct, "b", [("Latest", i) for i in ids]), 201)
    ctx.expect("body", b"AAABBBCCC", ctx.get(ct, "b").body)


# ---- Put Block List -------------------------------------------------------------------------


@check(
    "block-list.commit", BLOCK_LIST, "Latest entries in order -> 201; bytes are the concatenation"
)
def _bl_commit(ctx: CheckContext) -> None:
    ct = ctx.container()
    _stage(ctx, ct, "b", {1: b"aa", 2: b"bb", 3: b"cc"})
    resp = _commit(ctx, ct, "b", [("Latest", 1), ("Latest", 2), ("Latest", 3)])
    ctx.expect_status(resp, 201)
    ctx.expect("body", b"aabbcc", ctx.get(ct, "b").body)


@check("block-list.etag", BLOCK_LIST, "commit returns ETag and Last-Modified that HEAD reports")
def _bl_etag(ctx: CheckContext) -> None:
    ct = ctx.container()
    _stage(ctx, ct, "b", {1: b"aa"})
    resp = _commit(ctx, ct, "b", [("Latest", 1)])
    head = ctx.head(ct, "b")
    ctx.expect("ETag", resp.header("etag"), head.header("etag"))
    ctx.expect("Last-Modified", resp.header("last-modified"), head.header("last-modified"))


@check(
    "block-list.out-of-order",
    BLOCK_LIST,
    "blocks staged 3,1,2 and committed 1,2,3 -> bytes in list order",
)
def _bl_ooo(ctx: CheckContext) -> None:
    ct = ctx.container()
    _stage(ctx, ct, "b", {3: b"cc", 1: b"aa", 2: b"bb"})
    _commit(ctx, ct, "b", [("Latest", 1), ("Latest", 2), ("Latest", 3)])
    ctx.expect("body", b"aabbcc", ctx.get(ct, "b").body)


@check("block-list.list-order", BLOCK_LIST, "the list, not the IDs, decides order (3,1,2)")
def _bl_order(ctx: CheckContext) -> None:
    ct = ctx.container()
    _stage(ctx, ct, "b", {1: b"aa", 2: b"bb", 3: b"cc"})
    _commit(ctx, ct, "b", [("Latest", 3), ("Latest", 1), ("Latest", 2)])
    ctx.expect("body", b"ccaabb", ctx.get(ct, "b").body)


@check("block-list.restaged", BLOCK_LIST, "a re-staged ID commits its last data")
def _bl_restaged(ctx: CheckContext) -> None:
    ct = ctx.container()
    _stage(ctx, ct, "b", {1: b"old"})
    _stage(ctx, ct, "b", {1: b"new"})
    _commit(ctx, ct, "b", [("Latest", 1)])
    ctx.expect("body", b"new", ctx.get(ct, "b").body)


@check("block-list.uncommitted", BLOCK_LIST, "<Uncommitted> entries commit staged blocks")
def _bl_uncommitted(ctx: CheckContext) -> None:
    ct = ctx.container()
    _stage(ctx, ct, "b", {1: b"aa", 2: b"bb"})
    ctx.expect_status(_commit(ctx, ct, "b", [("Uncommitted", 1), ("Uncommitted", 2)]), 201)
    ctx.expect("body", b"aabb", ctx.get(ct, "b").body)


def _committed_then_restaged(ctx: CheckContext) -> str:
    ct = ctx.container()
    _stage(ctx, ct, "b", {1: b"v1", 2: b"tail"})
    _commit(ctx, ct, "b", [("Latest", 1), ("Latest", 2)])
    _stage(ctx, ct, "b", {1: b"V2"})
    return ct


@check(
    "block-list.committed-reuse",
    BLOCK_LIST,
    "<Committed> reuses a committed block while a new one is appended (Latest)",
)
def _bl_committed(ctx: CheckContext) -> None:
    ct = ctx.container()
    _stage(ctx, ct, "b", {1: b"aa"})
    _commit(ctx, ct, "b", [("Latest", 1)])
    _stage(ctx, ct, "b", {2: b"bb"})
    ctx.expect_status(_commit(ctx, ct, "b", [("Committed", 1), ("Latest", 2)]), 201)
    ctx.expect("body", b"aabb", ctx.get(ct, "b").body)


@check(
    "block-list.latest-prefers-uncommitted",
    BLOCK_LIST,
    "<Latest> takes the uncommitted version of an ID that is also committed",
)
def _bl_latest(ctx: CheckContext) -> None:
    ct = _committed_then_restaged(ctx)
    _commit(ctx, ct, "b", [("Latest", 1), ("Committed", 2)])
    ctx.expect("body", b"V2tail", ctx.get(ct, "b").body)


@check(
    "block-list.committed-ignores-uncommitted",
    BLOCK_LIST,
    "<Committed> takes the committed version even when the ID is re-staged",
)
def _bl_committed_old(ctx: CheckContext) -> None:
    ct = _committed_then_restaged(ctx)
    _commit(ctx, ct, "b", [("Committed", 1), ("Committed", 2)])
    ctx.expect("body", b"v1tail", ctx.get(ct, "b").body)


@check(
    "block-list.uncommitted-not-committed",
    BLOCK_LIST,
    "<Uncommitted> naming a block only committed -> 400 InvalidBlockList",
)
def _bl_unc_missing(ctx: CheckContext) -> None:
    ct = ctx.container()
    _stage(ctx, ct, "b", {1: b"aa"})
    _commit(ctx, ct, "b", [("Latest", 1)])
    ctx.expect_error(_commit(ctx, ct, "b", [("Uncommitted", 1)]), 400, "InvalidBlockList")


@check(
    "block-list.committed-not-committed",
    BLOCK_LIST,
    "<Committed> naming a block only staged -> 400 InvalidBlockList",
)
def _bl_com_missing(ctx: CheckContext) -> None:
    ct = ctx.container()
    _stage(ctx, ct, "b", {1: b"aa"})
    ctx.expect_error(_commit(ctx, ct, "b", [("Committed", 1)]), 400, "InvalidBlockList")


@check("block-list.missing-block", BLOCK_LIST, "a never-staged block -> 400 InvalidBlockList")
def _bl_missing(ctx: CheckContext) -> None:
    ct = ctx.container()
    _stage(ctx, ct, "b", {1: b"aa"})
    resp = _commit(ctx, ct, "b", [("Latest", 1), ("Latest", 9)])
    ctx.expect_error(resp, 400, "InvalidBlockList")
    ctx.expect_error(ctx.head(ct, "b"), 404, "BlobNotFound", "blob after failed commit")


@check("block-list.repeated-id", BLOCK_LIST, "one ID listed twice appears twice in the blob")
def _bl_repeat(ctx: CheckContext) -> None:
    ct = ctx.container()
    _stage(ctx, ct, "b", {1: b"ab", 2: b"-"})
    _commit(ctx, ct, "b", [("Latest", 1), ("Latest", 2), ("Latest", 1)])
    ctx.expect("body", b"ab-ab", ctx.get(ct, "b").body)


@check("block-list.empty", BLOCK_LIST, "an empty block list creates a 0-byte blob")
def _bl_empty(ctx: CheckContext) -> None:
    ct = ctx.container()
    ctx.expect_status(_commit(ctx, ct, "b", []), 201)
    ctx.expect_header(ctx.head(ct, "b"), "content-length", "0")


@check(
    "block-list.discards-uncommitted",
    BLOCK_LIST,
    "blocks not in the committed list are discarded by the commit",
)
def _bl_discard(ctx: CheckContext) -> None:
    ct = ctx.container()
    _stage(ctx, ct, "b", {1: b"aa", 2: b"bb"})
    _commit(ctx, ct, "b", [("Latest", 1)])
    root = _get_list(ctx, ct, "b").xml()
    ctx.expect("uncommitted after commit", [], _names(root, "UncommittedBlocks"))


@check(
    "block-list.properties",
    BLOCK_LIST,
    "x-ms-blob-content-type / -md5 on the commit are stored (AzCopy --put-md5)",
)
def _bl_props(ctx: CheckContext) -> None:
    ct = ctx.container()
    _stage(ctx, ct, "b", {1: b"aa", 2: b"bb"})
    _commit(
        ctx,
        ct,
        "b",
        [("Latest", 1), ("Latest", 2)],
        **{"x-ms-blob-content-type": "text/x-lab", "x-ms-blob-content-md5": md5_b64(b"aabb")},
    )
    head = ctx.head(ct, "b")
    ctx.expect(
        "Content-Type / Content-MD5",
        ("text/x-lab", md5_b64(b"aabb")),
        (head.header("content-type"), head.header("content-md5")),
    )


@check("block-list.metadata", BLOCK_LIST, "x-ms-meta-* on the commit are stored")
def _bl_meta(ctx: CheckContext) -> None:
    ct = ctx.container()
    _stage(ctx, ct, "b", {1: b"aa"})
    _commit(ctx, ct, "b", [("Latest", 1)], **{"x-ms-meta-step": "42"})
    ctx.expect_header(ctx.head(ct, "b"), "x-ms-meta-step", "42")


@check("block-list.replaces-blob", BLOCK_LIST, "a commit over a Put Blob replaces its content")
def _bl_replace(ctx: CheckContext) -> None:
    ct = ctx.container()
    ctx.put_blob(ct, "b", b"single shot")
    _stage(ctx, ct, "b", {1: b"blocks"})
    _commit(ctx, ct, "b", [("Latest", 1)])
    ctx.expect("body", b"blocks", ctx.get(ct, "b").body)


@check("block-list.invalid-xml", BLOCK_LIST, "a body that is not XML -> 400 InvalidXmlDocument")
def _bl_bad_xml(ctx: CheckContext) -> None:
    ct = ctx.container()
    resp = ctx.http.request(
        "PUT",
        ct,
        "b",
        query={"comp": "blocklist"},
        body=b"<BlockList><Lat",
        headers={"Content-Type": "application/xml"},
    )
    ctx.expect_error(resp, 400, "InvalidXmlDocument")


@check(
    "block-list.too-long",
    BLOCK_LIST,
    f"more than {MAX_COMMITTED_BLOCKS:,} entries -> 400 BlockListTooLong",
)
def _bl_too_long(ctx: CheckContext) -> None:
    ct = ctx.container()
    _stage(ctx, ct, "b", {1: b"x"})
    entries = [("Latest", 1)] * (MAX_COMMITTED_BLOCKS + 1)
    ctx.expect_error(_commit(ctx, ct, "b", entries), 400, "BlockListTooLong")


@check(
    "block-list.max-entries", BLOCK_LIST, f"exactly {MAX_COMMITTED_BLOCKS:,} entries is accepted"
)
def _bl_max(ctx: CheckContext) -> None:
    ct = ctx.container()
    _stage(ctx, ct, "b", {1: b"x"})
    resp = _commit(ctx, ct, "b", [("Latest", 1)] * MAX_COMMITTED_BLOCKS)
    ctx.expect_status(resp, 201)
    ctx.expect_header(ctx.head(ct, "b"), "content-length", str(MAX_COMMITTED_BLOCKS))


@check(
    "block-list.missing-container", BLOCK_LIST, "in a missing container -> 404 ContainerNotFound"
)
def _bl_no_ct(ctx: CheckContext) -> None:
    ctx.expect_error(_commit(ctx, ctx.name("missing"), "b", []), 404, "ContainerNotFound")


# ---- Get Block List -------------------------------------------------------------------------


@check("get-block-list.uncommitted", GET_LIST, "staged blocks are listed with Name and Size")
def _gl_unc(ctx: CheckContext) -> None:
    ct = ctx.container()
    _stage(ctx, ct, "b", {1: b"aaa", 2: b"bbbbb"})
    resp = _get_list(ctx, ct, "b", "uncommitted")
    ctx.expect_status(resp, 200)
    root = resp.xml()
    blocks = {b.findtext("Name"): b.findtext("Size") for b in root.iter("Block")}
    ctx.expect("blocks", {block_id(1): "3", block_id(2): "5"}, blocks)


@check("get-block-list.committed", GET_LIST, "committed blocks in commit order")
def _gl_com(ctx: CheckContext) -> None:
    ct = ctx.container()
    _stage(ctx, ct, "b", {1: b"a", 2: b"b"})
    _commit(ctx, ct, "b", [("Latest", 2), ("Latest", 1)])
    root = _get_list(ctx, ct, "b", "committed").xml()
    ctx.expect("committed", [block_id(2), block_id(1)], _names(root, "CommittedBlocks"))


@check(
    "get-block-list.all-xml",
    GET_LIST,
    "blocklisttype=all: <BlockList> with CommittedBlocks then UncommittedBlocks",
)
def _gl_all(ctx: CheckContext) -> None:
    ct = ctx.container()
    _stage(ctx, ct, "b", {1: b"a"})
    _commit(ctx, ct, "b", [("Latest", 1)])
    _stage(ctx, ct, "b", {2: b"b"})
    root = _get_list(ctx, ct, "b").xml()
    ctx.expect("root", "BlockList", root.tag)
    ctx.expect("children", ["CommittedBlocks", "UncommittedBlocks"], children(root))
    ctx.expect(
        "sections",
        ([block_id(1)], [block_id(2)]),
        (_names(root, "CommittedBlocks"), _names(root, "UncommittedBlocks")),
    )
    ctx.expect("Block children", ["Name", "Size"], children(root.find("CommittedBlocks/Block")))


@check(
    "get-block-list.headers",
    GET_LIST,
    "committed list carries ETag, Last-Modified and x-ms-blob-content-length",
)
def _gl_headers(ctx: CheckContext) -> None:
    ct = ctx.container()
    _stage(ctx, ct, "b", {1: b"abc"})
    put = _commit(ctx, ct, "b", [("Latest", 1)])
    resp = _get_list(ctx, ct, "b", "committed")
    ctx.expect_header(resp, "etag", put.header("etag"))
    ctx.expect_header(resp, "x-ms-blob-content-length", "3")
    ctx.expect_header(resp, "last-modified")


@check(
    "get-block-list.put-blob", GET_LIST, "a Put Blob blob has an empty committed list or one block"
)
def _gl_put_blob(ctx: CheckContext) -> None:
    ct = ctx.container()
    ctx.put_blob(ct, "b", b"abc")
    resp = _get_list(ctx, ct, "b", "committed")
    ctx.expect_status(resp, 200)
    sizes = [int(b.findtext("Size") or 0) for b in resp.xml().iter("Block")]
    ctx.expect_true("committed sizes", sizes in ([], [3]), "[] or [3]", sizes)


@check("get-block-list.missing", GET_LIST, "missing blob -> 404 BlobNotFound")
def _gl_missing(ctx: CheckContext) -> None:
    ct = ctx.container()
    ctx.expect_error(_get_list(ctx, ct, "nope"), 404, "BlobNotFound")

"""Raw HTTP: every blob and block operation, ranges, conditionals, errors, names."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from facade_raw import Raw


def b64md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def bid(n: int, width: int = 8) -> str:
    return base64.b64encode(f"{n:0{width}d}".encode()).decode()


def block_list(*entries: tuple[str, str]) -> bytes:
    inner = "".join(f"<{kind}>{block}</{kind}>" for kind, block in entries)
    return f'<?xml version="1.0" encoding="utf-8"?><BlockList>{inner}</BlockList>'.encode()


def test_standard_headers_on_success_and_error(raw: Raw, container: str) -> None:
    ok = raw.request(
        "GET",
        container,
        query={"restype": "container"},
        headers={"x-ms-version": "2021-08-06", "x-ms-client-request-id": "abc"},
    )
    assert ok.status == 200
    assert ok.headers["x-ms-version"] == "2021-08-06"
    assert ok.headers["x-ms-client-request-id"] == "abc"
    assert len(ok.headers["x-ms-request-id"]) == 36 and "date" in ok.headers
    missing = raw.request("GET", container, "nope")
    assert missing.status == 404 and missing.error_code == "BlobNotFound"
    root = missing.xml()
    assert [c.tag for c in root] == ["Code", "Message"]
    assert root.findtext("Code") == "BlobNotFound"
    assert missing.headers["content-type"].startswith("application/xml")
    assert len(missing.headers["x-ms-request-id"]) == 36
    head = raw.request("HEAD", container, "nope")
    assert head.status == 404 and head.error_code == "BlobNotFound" and head.body == b""


def test_put_get_head_delete(raw: Raw, container: str) -> None:
    data = os.urandom(100_000)
    put = raw.put_blob(
        container,
        "dir/a b+c%.bin",
        data,
        **{
            "Content-MD5": b64md5(data),
            "x-ms-blob-content-type": "text/plain",
            "x-ms-blob-cache-control": "no-cache",
            "x-ms-meta-CamelKey": "v1",
        },
    )
    assert put.status == 201, put.body
    etag = put.headers["etag"]
    assert etag.startswith('"0x') and put.headers["content-md5"] == b64md5(data)
    get = raw.request("GET", container, "dir/a b+c%.bin")
    assert get.status == 200 and get.body == data
    assert get.headers["etag"] == etag and get.headers["content-md5"] == b64md5(data)
    assert get.headers["content-type"] == "text/plain"
    assert get.headers["cache-control"] == "no-cache"
    assert get.headers["x-ms-meta-camelkey"] == "v1"
    assert get.headers["last-modified"].endswith(" GMT")
    head = raw.request("HEAD", container, "dir/a b+c%.bin")
    assert head.status == 200 and head.headers["content-length"] == str(len(data))
    assert head.headers["x-ms-blob-type"] == "BlockBlob"
    # '/' may arrive as %2F
    enc = raw.request("GET", raw_path=raw.path(container) + "/dir%2Fa%20b%2Bc%25.bin")
    assert enc.status == 200 and enc.body == data
    delete = raw.request("DELETE", container, "dir/a b+c%.bin")
    assert delete.status == 202
    again = raw.request("DELETE", container, "dir/a b+c%.bin")
    assert again.status == 404 and again.error_code == "BlobNotFound" and b"<Code>" in again.body


def test_properties_and_metadata(raw: Raw, container: str) -> None:
    raw.put_blob(container, "p", b"abc", **{"x-ms-meta-a": "1"})
    r = raw.request(
        "PUT",
        container,
        "p",
        query={"comp": "metadata"},
        headers={"x-ms-meta-Name": "x", "x-ms-meta-other": "y"},
    )
    assert r.status == 200
    md = raw.request("GET", container, "p", query={"comp": "metadata"})
    assert md.headers["x-ms-meta-name"] == "x" and "x-ms-meta-a" not in md.headers
    r = raw.request(
        "PUT",
        container,
        "p",
        query={"comp": "properties"},
        headers={
            "x-ms-blob-content-type": "image/png",
            "x-ms-blob-content-disposition": "attachment",
        },
    )
    assert r.status == 200
    head = raw.request("HEAD", container, "p")
    assert head.headers["content-type"] == "image/png"
    assert head.headers["content-disposition"] == "attachment"
    assert head.headers["x-ms-meta-other"] == "y"
    bad = raw.request(
        "PUT", container, "p", query={"comp": "metadata"}, headers={"x-ms-meta-1bad": "x"}
    )
    assert bad.status == 400 and bad.error_code == "InvalidMetadata"


@pytest.mark.parametrize(
    ("header", "value", "status", "expected"),
    [
        ("x-ms-range", "bytes=0-9", 206, slice(0, 10)),
        ("Range", "bytes=5-", 206, slice(5, None)),
        ("Range", "bytes=-3", 200, slice(None)),  # suffix ranges are not a Blob form: whole blob
        ("x-ms-range", "bytes=90-1000", 206, slice(90, None)),
        ("Range", "bytes=100-", 416, None),
        ("Range", "items=1-2", 200, slice(None)),
    ],
)
def test_ranges(raw: Raw, container: str, header: str, value: str, status: int, expected) -> None:
    data = bytes(range(100))
    raw.put_blob(container, "r", data)
    r = raw.request("GET", container, "r", headers={header: value})
    assert r.status == status
    if status == 416:
        assert r.error_code == "InvalidRange" and r.headers["content-range"] == "bytes */100"
        return
    assert r.body == data[expected]
    if status == 206:
        start = expected.start % 100 if expected.start is not None else 0
        assert r.headers["content-range"] == f"bytes {start}-{start + len(r.body) - 1}/100"


def test_x_ms_range_beats_range_and_if_range(raw: Raw, container: str) -> None:
    data = bytes(range(50))
    etag = raw.put_blob(container, "ir", data).headers["etag"]
    r = raw.request(
        "GET", container, "ir", headers={"Range": "bytes=0-1", "x-ms-range": "bytes=2-3"}
    )
    assert r.status == 206 and r.body == data[2:4]
    r = raw.request("GET", container, "ir", headers={"Range": "bytes=0-1", "If-Range": etag})
    assert r.status == 206 and r.body == data[:2]
    r = raw.request("GET", container, "ir", headers={"Range": "bytes=0-1", "If-Range": '"0xOLD"'})
    assert r.status == 200 and r.body == data
    empty = raw.put_blob(container, "empty", b"")
    assert empty.status == 201
    assert raw.request("GET", container, "empty", headers={"x-ms-range": "bytes=0-"}).status == 416
    assert raw.request("GET", container, "empty").body == b""


def test_conditionals(raw: Raw, container: str) -> None:
    put = raw.put_blob(container, "c", b"v1")
    etag, lm = put.headers["etag"], put.headers["last-modified"]
    past = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert raw.request("GET", container, "c", headers={"If-Match": etag}).status == 200
    r = raw.request("GET", container, "c", headers={"If-Match": '"0x1"'})
    assert r.status == 412 and r.error_code == "ConditionNotMet"
    r = raw.request("GET", container, "c", headers={"If-None-Match": etag})
    assert r.status == 304 and r.body == b""
    r = raw.request("GET", container, "c", headers={"If-None-Match": "*"})  # never satisfiable
    assert (r.status, r.error_code) == (400, "UnsatisfiableCondition")
    assert raw.request("GET", container, "c", headers={"If-Modified-Since": lm}).status == 304
    assert raw.request("GET", container, "c", headers={"If-Modified-Since": past}).status == 200
    assert raw.request("HEAD", container, "c", headers={"If-Unmodified-Since": past}).status == 412
    # writes
    r = raw.put_blob(container, "c", b"v2", **{"If-None-Match": "*"})
    assert r.status == 409 and r.error_code == "BlobAlreadyExists"
    r = raw.put_blob(container, "c", b"v2", **{"If-Match": '"0x1"'})
    assert r.status == 412 and r.error_code == "ConditionNotMet"
    r = raw.put_blob(container, "c", b"v2", **{"If-Unmodified-Since": past})
    assert r.status == 412
    r = raw.put_blob(container, "c", b"v2", **{"If-Match": etag})
    assert r.status == 201 and r.headers["etag"] != etag
    assert raw.put_blob(container, "fresh", b"x", **{"If-None-Match": "*"}).status == 201
    r = raw.request("DELETE", container, "c", headers={"If-Match": etag})
    assert r.status == 412
    assert raw.request("GET", container, "c").body == b"v2"


def test_md5_mismatch(raw: Raw, container: str) -> None:
    r = raw.put_blob(container, "m", b"data", **{"Content-MD5": b64md5(b"other")})
    assert r.status == 400 and r.error_code == "Md5Mismatch"
    assert raw.request("HEAD", container, "m").status == 404
    r = raw.request(
        "PUT",
        container,
        "m",
        query={"comp": "block", "blockid": bid(1)},
        body=b"data",
        headers={"Content-MD5": b64md5(b"other")},
    )
    assert r.status == 400 and r.error_code == "Md5Mismatch"
    r = raw.put_blob(container, "m", b"data", **{"Content-MD5": "notbase64!"})
    assert r.status == 400 and r.error_code == "InvalidMd5"


def test_block_lists(raw: Raw, container: str) -> None:
    blocks = {i: os.urandom(1000 + i) for i in range(4)}
    for i in (3, 1, 0, 2):  # out-of-order arrival
        r = raw.request(
            "PUT",
            container,
            "bl",
            query={"comp": "block", "blockid": bid(i)},
            body=blocks[i],
            headers={"Content-MD5": b64md5(blocks[i])},
        )
        assert r.status == 201, r.body
    r = raw.request("GET", container, "bl", query={"comp": "blocklist", "blocklisttype": "all"})
    assert r.status == 200
    root = r.xml()
    assert [b.findtext("Name") for b in root.find("CommittedBlocks")] == []
    assert sorted(b.findtext("Name") for b in root.find("UncommittedBlocks")) == sorted(
        bid(i) for i in range(4)
    )
    whole = blocks[0] + blocks[1] + blocks[2]
    r = raw.request(
        "PUT",
        container,
        "bl",
        query={"comp": "blocklist"},
        body=block_list(("Latest", bid(0)), ("Uncommitted", bid(1)), ("Latest", bid(2))),
        headers={"x-ms-blob-content-md5": b64md5(whole), "x-ms-meta-kind": "blocks"},
    )
    assert r.status == 201, r.body
    get = raw.request("GET", container, "bl")
    assert get.body == whole and get.headers["content-md5"] == b64md5(whole)
    r = raw.request("GET", container, "bl", query={"comp": "blocklist"})
    committed = [
        (b.findtext("Name"), int(b.findtext("Size"))) for b in r.xml().find("CommittedBlocks")
    ]
    assert committed == [(bid(i), len(blocks[i])) for i in range(3)]
    # the uncommitted block 3 was discarded by the commit
    r = raw.request(
        "PUT", container, "bl", query={"comp": "blocklist"}, body=block_list(("Latest", bid(3)))
    )
    assert r.status == 400 and r.error_code == "InvalidBlockList"
    # Committed re-use plus a new block
    new = os.urandom(10)
    raw.request("PUT", container, "bl", query={"comp": "block", "blockid": bid(9)}, body=new)
    r = raw.request(
        "PUT",
        container,
        "bl",
        query={"comp": "blocklist"},
        body=block_list(("Committed", bid(2)), ("Latest", bid(9)), ("Committed", bid(0))),
    )
    assert r.status == 201, r.body
    assert raw.request("GET", container, "bl").body == blocks[2] + new + blocks[0]
    # mixed block ID lengths are refused
    raw.request("PUT", container, "mixed", query={"comp": "block", "blockid": bid(1)}, body=b"a")
    r = raw.request(
        "PUT", container, "mixed", query={"comp": "block", "blockid": bid(1, 12)}, body=b"b"
    )
    assert r.status == 400 and r.error_code == "InvalidBlobOrBlock"
    r = raw.request("PUT", container, "mixed", query={"comp": "block", "blockid": "@@"}, body=b"")
    assert r.status == 400 and r.error_code == "InvalidBlockId"
    r = raw.request("PUT", container, "mixed", query={"comp": "blocklist"}, body=b"<BlockList")
    assert r.status == 400 and r.error_code == "InvalidXmlDocument"


@pytest.mark.parametrize("name", ["a/../b", "./x", "a//b", "dir/", "bad\x00name"])
def test_unmappable_names_are_refused(raw: Raw, container: str, name: str) -> None:
    path = raw.path(container) + "/" + name.replace("\x00", "%00")
    r = raw.request("PUT", raw_path=path, body=b"x", headers={"x-ms-blob-type": "BlockBlob"})
    assert r.status == 400 and r.error_code == "InvalidResourceName"
    assert b"cannot map to a file" in r.body
    assert raw.request("HEAD", raw_path=path).status == 404


def test_file_beside_directory_conflicts(raw: Raw, container: str) -> None:
    assert raw.put_blob(container, "a/b", b"1").status == 201
    r = raw.put_blob(container, "a", b"2")
    assert r.status == 400 and r.error_code == "InvalidPath"
    assert raw.put_blob(container, "f", b"1").status == 201
    r = raw.put_blob(container, "f/g", b"2")
    assert r.status == 400 and r.error_code == "InvalidPath"
    assert raw.request("GET", container, "a/b").body == b"1"


def test_put_blob_needs_blob_type_and_container(raw: Raw, container: str) -> None:
    r = raw.request("PUT", container, "x", body=b"1")
    assert r.status == 400 and r.error_code == "MissingRequiredHeader"
    r = raw.put_blob("no-such-container", "x", b"1")
    assert r.status == 404 and r.error_code == "ContainerNotFound"


def test_unknown_operations_answer_azure_errors(raw: Raw, container: str) -> None:
    r = raw.request("PUT", container, "x", query={"comp": "no-such-operation"})
    assert r.status == 501 and r.error_code == "NotImplemented"
    assert r.xml().findtext("Code") == "NotImplemented"
    r = raw.request("PATCH", container, "x")
    assert r.status == 405 and r.error_code == "UnsupportedHttpVerb"


def test_unknown_query_parameters_and_headers_are_ignored(raw: Raw, container: str) -> None:
    r = raw.request(
        "PUT",
        container,
        "u",
        query={"timeout": "30", "zzz": "1"},
        body=b"u",
        headers={"x-ms-blob-type": "BlockBlob", "x-ms-future-header": "1"},
    )
    assert r.status == 201
    assert raw.request("GET", container, "u", query={"snapshotx": "1"}).body == b"u"


def test_virtual_host_addressing(raw: Raw, container: str) -> None:
    """``<account>.blob.<domain>`` hosts carry no account segment (sent to 127.0.0.1 directly)."""
    host = f"{raw.server.account}.blob.lab.test:{raw.server.port}"
    put = raw.request(
        "PUT",
        raw_path=f"/{container}/v%2Fh.txt",
        host=host,
        body=b"vh",
        headers={"x-ms-blob-type": "BlockBlob"},
    )
    assert put.status == 201, put.body
    assert raw.request("GET", container, "v/h.txt").body == b"vh"
    listing = raw.request(
        "GET", raw_path=f"/{container}", host=host, query={"restype": "container", "comp": "list"}
    )
    assert listing.xml().get("ServiceEndpoint") == f"http://{host}/"
    assert [b.findtext("Name") for b in listing.xml().find("Blobs")] == ["v/h.txt"]

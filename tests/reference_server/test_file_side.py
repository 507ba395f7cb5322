"""Coherence with the file side: blobs are files, files are blobs, commits are atomic."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import threading
import time
from pathlib import Path

from facade_raw import Raw

from reference_server.store.names import name_hash
from reference_server.store.records import PROPS_XATTR


def test_committed_blob_is_the_file(raw: Raw, container: str) -> None:
    data = os.urandom(5000)
    raw.put_blob(container, "ds/part-0.bin", data)
    path = raw.server.data_root / raw.server.account / container / "ds" / "part-0.bin"
    assert path.read_bytes() == data
    # nothing but blobs in the namespace: sidecars and staging live elsewhere
    files = sorted(
        p.relative_to(path.parents[1]).as_posix() for p in path.parents[1].rglob("*") if p.is_file()
    )
    assert files == ["ds/part-0.bin"]


def test_dropped_file_is_listed_and_served(raw: Raw, container: str) -> None:
    root = raw.server.data_root / raw.server.account / container
    (root / "incoming").mkdir()
    (root / "incoming" / "from-posix.txt").write_bytes(b"written by another program")
    r = raw.request("GET", container, query={"restype": "container", "comp": "list"})
    blob = r.xml().find("Blobs")[0]
    assert blob.findtext("Name") == "incoming/from-posix.txt"
    assert blob.find("Properties").findtext("Content-Length") == "26"
    get = raw.request("GET", container, "incoming/from-posix.txt")
    assert get.status == 200 and get.body == b"written by another program"
    assert get.headers["etag"].startswith('"0x') and get.headers["last-modified"]


def test_file_replaced_behind_the_sidecar(raw: Raw, container: str) -> None:
    put = raw.put_blob(container, "f.bin", b"first", **{"x-ms-meta-k": "v"})
    path = raw.server.data_root / raw.server.account / container / "f.bin"
    path.write_bytes(b"replaced by a POSIX writer")
    get = raw.request("GET", container, "f.bin")
    assert get.body == b"replaced by a POSIX writer"
    assert get.headers["etag"] != put.headers["etag"]
    assert "content-md5" not in get.headers and "x-ms-meta-k" not in get.headers


def _new_staging_file(staging: Path, before: set[str], limit_s: float = 10) -> Path:
    """Wait for an upload temp file that was not in ``before`` to have bytes in it (bounded:
    the limit only stops a hung test)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        for path in staging.glob("up-*"):
            if path.name not in before and path.stat().st_size > 0:
                return path
        time.sleep(0.01)
    raise AssertionError(f"no upload temp file appeared in {staging}")


def test_upload_appears_atomically(raw: Raw, container: str) -> None:
    # Twice the server's 2 MiB write batch: the first half reaches a temp file before the rest
    # is sent, which the test waits for instead of sleeping.
    data = os.urandom(4 * 1024 * 1024 + 4096)
    req = raw.prepare(
        "PUT",
        container,
        "slow.bin",
        headers={"x-ms-blob-type": "BlockBlob"},
        content_length=len(data),
    )
    final = raw.server.data_root / raw.server.account / container / "slow.bin"
    staging = raw.server.data_root / ".staging"
    before = {p.name for p in staging.glob("up-*")}
    with socket.create_connection(("127.0.0.1", raw.server.port)) as sock:
        sock.sendall(req.head() + data[: len(data) // 2])
        _new_staging_file(staging, before)  # the server holds half the body in its temp file
        assert not final.exists()
        assert raw.request("HEAD", container, "slow.bin").status == 404
        sock.sendall(data[len(data) // 2 :])
        reply = sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 201")
    assert final.read_bytes() == data


def test_concurrent_writers_leave_one_whole_version(raw: Raw, container: str) -> None:
    versions = [bytes([i]) * 300_000 for i in range(6)]
    errors = []

    def writer(data: bytes) -> None:
        client = Raw(raw.server)
        try:
            for _ in range(3):
                r = client.put_blob(container, "contended.bin", data)
                if r.status != 201:
                    errors.append(r.status)
        finally:
            client.close()

    threads = [threading.Thread(target=writer, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    body = raw.request("GET", container, "contended.bin")
    assert body.body in versions
    final = raw.server.data_root / raw.server.account / container / "contended.bin"
    assert final.read_bytes() == body.body
    staging = raw.server.data_root / ".staging"
    assert [p for p in staging.iterdir() if p.name.startswith("up-")] == []


def test_properties_travel_with_the_file_and_spill_to_a_sidecar(raw: Raw, container: str) -> None:
    """Small property records live in an xattr of the blob file (so `cp -a` keeps them); one too
    large for it goes to a sidecar, and whichever holds the current record is the only one."""
    data = b"record me"
    assert raw.put_blob(container, "rec.bin", data, **{"x-ms-meta-small": "v"}).status == 201
    path = raw.server.data_root / raw.server.account / container / "rec.bin"
    h = name_hash("rec.bin")
    sidecar = raw.server.data_root / ".blobmeta" / raw.server.account / container / "blobs"
    sidecar = sidecar / h[:2] / f"{h}.json"
    record = json.loads(os.getxattr(path, PROPS_XATTR))
    assert record["metadata"] == {"small": "v"} and record["ino"] == path.stat().st_ino
    assert not sidecar.exists()

    big = {f"x-ms-meta-k{i}": "v" * 200 for i in range(20)}  # ~4 KiB: more than an xattr holds
    assert (
        raw.request("PUT", container, "rec.bin", query={"comp": "metadata"}, headers=big).status
        == 200
    )
    assert json.loads(sidecar.read_text())["metadata"]["k19"] == "v" * 200
    assert PROPS_XATTR not in os.listxattr(path)
    head = raw.request("HEAD", container, "rec.bin")
    assert head.headers["x-ms-meta-k19"] == "v" * 200
    assert head.headers["content-md5"] == base64.b64encode(hashlib.md5(data).digest()).decode()

    small = {"x-ms-meta-back": "1"}
    assert (
        raw.request("PUT", container, "rec.bin", query={"comp": "metadata"}, headers=small).status
        == 200
    )
    assert json.loads(os.getxattr(path, PROPS_XATTR))["metadata"] == {"back": "1"}
    assert not sidecar.exists()
    head = raw.request("HEAD", container, "rec.bin")
    assert head.headers["x-ms-meta-back"] == "1" and "x-ms-meta-k19" not in head.headers
    assert raw.request("GET", container, "rec.bin").body == data

"""A full data root, for real: the façade on a small tmpfs that the test fills to the last byte.

Every write that needs space answers 507 InsufficientStorage with Azure's error shape, leaves
nothing half-made (no container without its record) and no temp file in .staging, and the same
requests succeed once space is freed."""

from __future__ import annotations

import errno
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from facade_raw import Raw

from harness.http import Response, block_id, block_list_xml
from tests.conftest import RunningServer, start_server, stop_server

TMPFS_SIZE = "4m"


def _mount_tmpfs(where: Path) -> str | None:
    """Mount a small tmpfs at ``where``; the reason it cannot be done, or None."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root (CI runs as root)"
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return None if done.returncode == 0 else f"mount failed: {done.stderr.strip()}"


@pytest.fixture
def small_root(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "tmpfs"
    reason = _mount_tmpfs(mnt)
    if reason:
        pytest.skip(reason)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False, timeout=30)


@pytest.fixture
def full(small_root: Path, tmp_path: Path) -> Iterator[tuple[RunningServer, Raw, Path]]:
    """A façade on the tmpfs, one container and one blob made while there was room; then a
    filler file takes every free byte. Yields (server, client, filler)."""
    srv = start_server(small_root / "data", tmp_path / "server.log")
    raw = Raw(srv)
    try:
        raw.create_container("ct-full")
        assert raw.put_blob("ct-full", "kept", b"kept bytes", **{"x-ms-meta-a": "1"}).status == 201
        filler = small_root / "filler"
        fill(filler)
        yield srv, raw, filler
    finally:
        raw.close()
        stop_server(srv)


def fill(path: Path) -> None:
    """Write ``path`` until the filesystem has no byte left (bounded by the tmpfs size)."""
    chunk = b"\0" * 65536
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for _ in range(1024):  # 64 MiB at most: far beyond the tmpfs
            try:
                os.write(fd, chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
        for _ in range(4096):  # the last partial page
            try:
                os.write(fd, b"\0" * 16)
            except OSError:
                break
    finally:
        os.close(fd)


def staging(srv: RunningServer) -> list[str]:
    return os.listdir(srv.data_root / ".staging")


def assert_disk_full(r: Response) -> None:
    assert r.status == 507, (r.status, r.body)
    assert r.error_code == "InsufficientStorage"
    if r.body:
        assert r.body_error_code() == "InsufficientStorage"


def test_every_write_on_a_full_disk_is_507_and_leaves_nothing_behind(full) -> None:
    srv, raw, filler = full
    body = os.urandom(200 * 1024)

    # Put Blob: nothing committed, the temp file gone
    assert_disk_full(raw.put_blob("ct-full", "new", body))
    assert raw.request("HEAD", "ct-full", "new").status == 404
    assert staging(srv) == []

    # Create Container: answered 507 and not left half-made (a directory without its record)
    r = raw.request("PUT", "ct-half", query={"restype": "container"})
    assert_disk_full(r)
    assert not (srv.data_root / raw.account / "ct-half").exists()
    r = raw.request("GET", "ct-half", query={"restype": "container"})
    assert r.status == 404 and r.error_code == "ContainerNotFound"
    listing = raw.request("GET", query={"comp": "list"})
    assert [c.findtext("Name") for c in listing.xml().iter("Container")] == ["ct-full"]
    assert staging(srv) == []

    # Set Container Metadata and Set Service Properties: refused, temp files removed at once
    r = raw.request(
        "PUT",
        "ct-full",
        query={"restype": "container", "comp": "metadata"},
        headers={"x-ms-meta-big": "v" * 4000},
    )
    assert_disk_full(r)
    assert staging(srv) == []
    r = raw.request("GET", "ct-full", query={"restype": "container"})
    assert r.status == 200 and r.header("x-ms-meta-big") is None
    props = raw.request("GET", query={"restype": "service", "comp": "properties"}).body
    r = raw.request(
        "PUT",
        query={"restype": "service", "comp": "properties"},
        body=props,
    )
    assert_disk_full(r)
    assert staging(srv) == []

    # Set Blob Metadata too large for the xattr (a sidecar file): refused, the old one kept
    r = raw.request(
        "PUT", "ct-full", "kept", query={"comp": "metadata"}, headers={"x-ms-meta-big": "v" * 4000}
    )
    assert_disk_full(r)
    assert staging(srv) == []
    head = raw.request("HEAD", "ct-full", "kept")
    assert head.header("x-ms-meta-a") == "1" and head.header("x-ms-meta-big") is None

    # Put Block and Put Block List: nothing staged, nothing committed
    bid = block_id(0)
    assert_disk_full(
        raw.request("PUT", "ct-full", "blk", query={"comp": "block", "blockid": bid}, body=body)
    )
    assert staging(srv) == []
    r = raw.request("GET", "ct-full", "blk", query={"comp": "blocklist", "blocklisttype": "all"})
    assert r.status == 404

    # what was committed before is intact
    kept = raw.request("GET", "ct-full", "kept")
    assert kept.status == 200 and kept.body == b"kept bytes" and kept.header("x-ms-meta-a") == "1"

    # space freed: the same requests succeed
    filler.unlink()
    assert raw.put_blob("ct-full", "new", body).status == 201
    assert raw.request("GET", "ct-full", "new").body == body
    assert raw.request("PUT", "ct-half", query={"restype": "container"}).status == 201
    assert (
        raw.request(
            "PUT", "ct-full", "blk", query={"comp": "block", "blockid": bid}, body=body
        ).status
        == 201
    )
    r = raw.request(
        "PUT", "ct-full", "blk", query={"comp": "blocklist"}, body=block_list_xml([bid])
    )
    assert r.status == 201
    assert raw.request("GET", "ct-full", "blk").body == body
    assert staging(srv) == []


def test_commit_of_a_block_list_on_a_full_disk_is_507(small_root: Path, tmp_path: Path) -> None:
    """Blocks staged while there was room; the commit then needs room for the assembled blob."""
    srv = start_server(small_root / "data", tmp_path / "server.log")
    raw = Raw(srv)
    try:
        ct = raw.create_container(f"ct-{uuid.uuid4().hex[:8]}")
        ids = [block_id(i) for i in range(4)]
        for bid in ids:
            r = raw.request(
                "PUT", ct, "b", query={"comp": "block", "blockid": bid}, body=os.urandom(256 * 1024)
            )
            assert r.status == 201
        fill(small_root / "filler")
        assert_disk_full(
            raw.request("PUT", ct, "b", query={"comp": "blocklist"}, body=block_list_xml(ids))
        )
        assert raw.request("HEAD", ct, "b").status == 404
        assert staging(srv) == []
        # the staged blocks survive the failed commit, so it can be retried once there is room
        (small_root / "filler").unlink()
        r = raw.request("PUT", ct, "b", query={"comp": "blocklist"}, body=block_list_xml(ids))
        assert r.status == 201 and r.header("etag")
        assert int(raw.request("HEAD", ct, "b").header("content-length")) == 4 * 256 * 1024
    finally:
        raw.close()
        stop_server(srv)

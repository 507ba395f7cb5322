"""Large objects, proven as far as one machine allows (issue 18).

- Metadata scale: a blob of 50,000 blocks (Azure's maximum) committed by one Put Block List,
  Get Block List of it, 50,001 refused; the 100,000 uncommitted-block limit exact across
  worker processes.
- Kernel copies: the store's copy falls back to read/write only where copy_file_range refuses.
- A 4.5 TiB blob without 4.5 TiB of writes (marker ``large``): an XFS filesystem with reflinks
  on a sparse loop file, blocks of 4,000 MiB staged by Put Block From URL from a sparse source
  on the same façade and committed; sizes, ranged reads past 4 TiB, the listing, disk usage.
- The read side at full size, and the block plans of AzCopy and the SDK against the limits.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from facade_raw import Raw

from harness.bench.large import LARGE_SIZE, long_id, reflink_xfs, reflink_xfs_problem, used_bytes
from harness.http import Response, block_list_xml
from reference_server.errors import StorageError
from reference_server.handlers.common import MAX_XML_BODY
from reference_server.store import upload as upload_module
from reference_server.store.blocks import COUNTER as BLOCK_COUNTER
from reference_server.store.blocks import MAX_BLOCK_SIZE, MAX_UNCOMMITTED_BLOCKS
from reference_server.store.commit import MAX_COMMITTED_BLOCKS
from reference_server.store.names import name_hash
from tests.conftest import RunningServer, start_server, stop_server, wait_until

MIB = 1024 * 1024
TIB = 1024 * 1024 * MIB
THREADS = 8  # client threads: bounded, each with its own keep-alive connection


def put_block(raw: Raw, ct: str, blob: str, bid: str, data: bytes) -> Response:
    return raw.request("PUT", ct, blob, query={"comp": "block", "blockid": bid}, body=data)


def block_list(raw: Raw, ct: str, blob: str, which: str) -> tuple[list[str], list[str]]:
    r = raw.request("GET", ct, blob, query={"comp": "blocklist", "blocklisttype": which})
    assert r.status == 200, r.body
    root = r.xml()
    return (
        [b.findtext("Name") or "" for b in root.iterfind("CommittedBlocks/Block")],
        [b.findtext("Name") or "" for b in root.iterfind("UncommittedBlocks/Block")],
    )


def stage_all(raw: Raw, ct: str, blob: str, ids: list[str], data: bytes) -> list[int]:
    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(lambda b: put_block(raw, ct, blob, b, data).status, ids))


# ------------------------------------------------------------------------- metadata scale


HTTP_SAMPLE = 100  # every 100th block of the 50,000 (and the last) is staged over HTTP


@pytest.mark.large
def test_block_list_of_50000_blocks_and_50001_refused(server: RunningServer) -> None:
    """The Put Block List of 50,000 IDs, Get Block List of them and the 50,001st refused, all
    over HTTP. Staging 50,000 Put Blocks over HTTP takes a minute or more on this machine, so
    501 of them go over HTTP, interleaved with the rest, which are placed as Put Block leaves
    them (one file per hex ID in the blob's staging dir); the staging dir's counter is then
    dropped, so the next Put Block counts the dir once, exactly (store/blocks.py). The commit
    naming all 50,000 proves each was staged (a missing one is 400 InvalidBlockList)."""
    raw = Raw(server)
    ct = raw.create_container()
    ids = [long_id(i) for i in range(MAX_COMMITTED_BLOCKS)]
    # one distinct byte per block, so the order of the assembled bytes is checked too
    content = bytes(i % 251 for i in range(MAX_COMMITTED_BLOCKS))
    over_http = {*range(0, MAX_COMMITTED_BLOCKS, HTTP_SAMPLE), MAX_COMMITTED_BLOCKS - 1}
    # the first over HTTP makes the staging dir, with the blob name noted on it
    assert put_block(raw, ct, "big", ids[0], content[:1]).status == 201
    d = Path(server.data_root, ".blocks", server.account, ct, name_hash("big"))
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i in set(range(MAX_COMMITTED_BLOCKS)) - over_http:
            name = base64.b64decode(ids[i]).hex()
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=dfd)
            os.write(fd, content[i : i + 1])
            os.close(fd)
    finally:
        os.close(dfd)
    (d / BLOCK_COUNTER).unlink()
    with ThreadPoolExecutor(THREADS) as pool:
        statuses = list(
            pool.map(
                lambda i: put_block(raw, ct, "big", ids[i], content[i : i + 1]).status,
                sorted(over_http - {0}),
            )
        )
    assert set(statuses) == {201}
    counter = (d / BLOCK_COUNTER).read_bytes()
    assert int.from_bytes(counter, "little") == MAX_COMMITTED_BLOCKS  # counted exactly
    body = block_list_xml(ids)
    assert len(body) < MAX_XML_BODY  # 50,000 of the longest IDs fit the request limit
    commit = raw.request("PUT", ct, "big", query={"comp": "blocklist"}, body=body)
    assert commit.status == 201, commit.body
    # the 50,000 staged files are deleted after the answer, by the worker, all of them
    staging = server.data_root / ".staging"
    wait_until(lambda: not list(staging.glob("trash-*")), "the discarded blocks deleted", 120)
    head = raw.request("HEAD", ct, "big")
    assert head.headers["content-length"] == str(MAX_COMMITTED_BLOCKS)
    assert raw.request("GET", ct, "big").body == content
    committed, uncommitted = block_list(raw, ct, "big", "all")
    assert committed == ids and uncommitted == []
    assert block_list(raw, ct, "big", "committed") == (ids, [])
    assert block_list(raw, ct, "big", "uncommitted") == ([], [])

    # 50,001: the 50,000 committed blocks and one more staged one
    extra = long_id(MAX_COMMITTED_BLOCKS)
    assert put_block(raw, ct, "big", extra, b"!").status == 201
    over = raw.request(
        "PUT",
        ct,
        "big",
        query={"comp": "blocklist"},
        body=block_list_xml([*(("Committed", b) for b in ids), ("Uncommitted", extra)]),
    )
    assert over.status == 400 and over.error_code == "BlockListTooLong"
    after = raw.request("HEAD", ct, "big")
    assert after.headers["etag"] == head.headers["etag"]
    assert after.headers["content-length"] == str(MAX_COMMITTED_BLOCKS)
    assert block_list(raw, ct, "big", "all") == (ids, [extra])  # nothing changed
    raw.close()


@pytest.mark.large
def test_uncommitted_limit_is_exact_across_two_workers(tmp_path: Path) -> None:
    """Two worker processes race 16 threads of new blocks at a blob 10 short of the limit:
    exactly 10 are taken. 99,970 blocks are placed as Put Block leaves them (one file per hex
    ID in the blob's staging dir), as staging that many over HTTP would take minutes here."""
    srv = start_server(tmp_path / "data", tmp_path / "server.log", "--workers", "2")
    raw = Raw(srv)
    try:
        ct = raw.create_container()
        blob = "near-limit"
        seeded = MAX_UNCOMMITTED_BLOCKS - 10
        placed = seeded - 20
        d = Path(srv.data_root, ".blocks", srv.account, ct, name_hash(blob))
        d.mkdir(parents=True)
        for i in range(placed):
            (d / base64.b64decode(long_id(i)).hex()).write_bytes(b"s")
        # 20 more through the façade on 16 connections, so both workers have counted this blob
        warm = [long_id(i) for i in range(placed, seeded)]
        with ThreadPoolExecutor(16) as pool:
            assert set(pool.map(lambda b: put_block(raw, ct, blob, b, b"s").status, warm)) == {201}
        racers = [long_id(seeded + i) for i in range(40)]
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda b: put_block(raw, ct, blob, b, b"r"), racers))
        taken = [b for b, r in zip(racers, answers, strict=True) if r.status == 201]
        refused = [r for r in answers if r.status != 201]
        assert len(taken) == 10
        assert {(r.status, r.error_code) for r in refused} == {(409, "BlockCountExceedsLimit")}
        _, uncommitted = block_list(raw, ct, blob, "uncommitted")
        assert len(uncommitted) == MAX_UNCOMMITTED_BLOCKS
        assert set(taken) <= set(uncommitted)
        # at the limit a staged ID may still be replaced; a new one may not
        assert put_block(raw, ct, blob, taken[0], b"again").status == 201
        assert put_block(raw, ct, blob, long_id(seeded + 99), b"x").status == 409
        # a commit of some of them discards the rest and starts the count again
        commit = raw.request(
            "PUT", ct, blob, query={"comp": "blocklist"}, body=block_list_xml(taken)
        )
        assert commit.status == 201, commit.body
        assert raw.request("GET", ct, blob).body == b"again" + b"r" * 9
        assert put_block(raw, ct, blob, long_id(0), b"n").status == 201
        assert len(block_list(raw, ct, blob, "uncommitted")[1]) == 1
    finally:
        raw.close()
        stop_server(srv)


def test_kernel_copy_falls_back_only_where_the_kernel_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    data = os.urandom(3 * MIB + 5)
    src.write_bytes(data)

    def refuse(code: int):
        def copy_file_range(*_args: object) -> int:
            raise OSError(code, os.strerror(code))

        return copy_file_range

    for code in (errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP):
        monkeypatch.setattr(os, "copy_file_range", refuse(code))
        dst = tmp_path / f"dst-{code}"
        with open(src, "rb") as s, open(dst, "wb") as d:
            d.write(b"head")
            d.flush()
            upload_module.copy_range(s.fileno(), d.fileno(), 7, len(data) - 7)
        assert dst.read_bytes() == b"head" + data[7:]
    monkeypatch.setattr(os, "copy_file_range", refuse(errno.ENOSPC))
    with open(src, "rb") as s, open(tmp_path / "full", "wb") as d:
        with pytest.raises(OSError) as exc:
            upload_module.copy_range(s.fileno(), d.fileno(), 0, len(data))
    assert exc.value.errno == errno.ENOSPC  # a full disk is an error, not a reason to retry


# ------------------------------------------------------------- a 4.5 TiB blob on reflinks

SIZE = LARGE_SIZE  # 4.5 TiB: 4,947,802,324,992 bytes
BLOCKS = -(-SIZE // MAX_BLOCK_SIZE)  # 1,180 blocks of 4,000 MiB, the last one shorter
# Known bytes written into the sparse source: at its start, across the first block boundary,
# past 4 TiB and at its very end; everything else is a hole.
MARKS = {
    0: b"first bytes",
    MAX_BLOCK_SIZE - 3: b"across a block boundary",
    4 * TIB + 12_345: b"past 4 TiB",
    SIZE - 9: b"last nine",
}


@dataclass
class Reflinked:
    server: RunningServer
    raw: Raw
    mount: Path
    container: str
    source: str  # the sparse 4.5 TiB file placed by the file side, as a blob name
    source_path: Path


@pytest.fixture(scope="module")
def reflinked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reflinked]:
    base = tmp_path_factory.mktemp("reflink")
    problem = reflink_xfs_problem()
    if problem:
        pytest.skip(f"no XFS with reflinks here: {problem}")
    with contextlib.ExitStack() as stack:
        try:
            mnt = stack.enter_context(reflink_xfs(base / "xfs.img", base / "xfs"))
        except RuntimeError as exc:
            pytest.skip(f"no XFS with reflinks here: {exc}")
        srv = start_server(mnt / "data", base / "server.log")
        stack.callback(stop_server, srv)
        raw = Raw(srv)
        stack.callback(raw.close)
        ct = raw.create_container("large")
        source = "lake/checkpoint-4.5TiB.bin"
        path = Path(srv.data_root, srv.account, ct, *source.split("/"))
        path.parent.mkdir(parents=True)
        with open(path, "wb") as f:
            f.truncate(SIZE)  # a sparse file written by another program
            for offset, data in MARKS.items():
                os.pwrite(f.fileno(), data, offset)
        yield Reflinked(srv, raw, mnt, ct, source, path)


def read_sas(reflinked: Reflinked) -> str:
    from harness.signing import generate_service_sas

    srv = reflinked.server
    return generate_service_sas(
        srv.account,
        srv.key,
        container=reflinked.container,
        blob=reflinked.source,
        permissions="r",
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )


def run_azcopy(
    reflinked: Reflinked, tmp_path: Path, argv: list[str], timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real AzCopy against the reflinked façade (``{sas}`` in ``argv`` becomes an account
    SAS); skips, saying so, where AzCopy is not installed."""
    from harness.signing import generate_account_sas
    from harness.tools import azcopy_path

    try:
        azcopy = azcopy_path()
    except Exception as exc:
        pytest.skip(f"AzCopy is not installed: {exc}")
    srv = reflinked.server
    sas = generate_account_sas(
        srv.account, srv.key, permissions="racwdl", expiry=datetime.now(UTC) + timedelta(hours=1)
    )
    env = {
        **os.environ,
        "AZCOPY_LOG_LOCATION": str(tmp_path / "logs"),
        "AZCOPY_JOB_PLAN_LOCATION": str(tmp_path / "plans"),
        "AZCOPY_CONCURRENCY_VALUE": "32",
    }
    return subprocess.run(
        [str(azcopy), *(a.replace("{sas}", sas) for a in argv)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def ranged(raw: Raw, ct: str, blob: str, start: int, length: int, **headers: str) -> Response:
    return raw.request(
        "GET", ct, blob, headers={"x-ms-range": f"bytes={start}-{start + length - 1}", **headers}
    )


def check_marks(raw: Raw, ct: str, blob: str) -> None:
    for offset, data in MARKS.items():
        r = ranged(raw, ct, blob, offset, len(data))
        assert r.status == 206, r.body
        assert r.body == data
        assert r.headers["content-range"] == f"bytes {offset}-{offset + len(data) - 1}/{SIZE}"
    hole = ranged(raw, ct, blob, 4 * TIB + MIB, MIB)  # a hole past 4 TiB reads as zeros
    assert hole.status == 206 and hole.body == bytes(MIB)


@pytest.mark.large
def test_a_4_5_tib_blob_from_4000_mib_blocks_without_writing_it(reflinked: Reflinked) -> None:
    raw, ct = reflinked.raw, reflinked.container
    used_before = used_bytes(reflinked.mount)
    # Put Block From URL reads even a same-account source only with its own credentials
    url = f"{reflinked.server.account_url}/{ct}/{reflinked.source}?{read_sas(reflinked)}"
    ids = [long_id(i) for i in range(BLOCKS)]

    def stage(i: int) -> Response:
        start = i * MAX_BLOCK_SIZE
        end = min(start + MAX_BLOCK_SIZE, SIZE) - 1
        return raw.request(
            "PUT",
            ct,
            "edge/checkpoint.bin",
            query={"comp": "block", "blockid": ids[i]},
            headers={"x-ms-copy-source": url, "x-ms-source-range": f"bytes={start}-{end}"},
        )

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(stage, range(BLOCKS)))
    assert {r.status for r in answers} == {201}, answers[0].body
    assert all("content-md5" not in r.headers for r in answers)  # nothing was read to hash
    _, uncommitted = block_list(raw, ct, "edge/checkpoint.bin", "uncommitted")
    assert len(uncommitted) == BLOCKS
    commit = raw.request(
        "PUT", ct, "edge/checkpoint.bin", query={"comp": "blocklist"}, body=block_list_xml(ids)
    )
    assert commit.status == 201, commit.body
    assert "content-md5" not in commit.headers  # Azure computes no MD5 for a block list

    head = raw.request("HEAD", ct, "edge/checkpoint.bin")
    assert head.status == 200
    assert head.headers["content-length"] == str(SIZE)
    assert "content-md5" not in head.headers
    check_marks(raw, ct, "edge/checkpoint.bin")
    committed, _ = block_list(raw, ct, "edge/checkpoint.bin", "committed")
    assert committed == ids
    listing = raw.request("GET", ct, query={"restype": "container", "comp": "list"}).xml()
    sizes = {
        b.findtext("Name"): b.findtext("Properties/Content-Length")
        for b in listing.iterfind("Blobs/Blob")
    }
    assert sizes["edge/checkpoint.bin"] == sizes[reflinked.source] == str(SIZE)
    # the file side: the blob is the regular file, and the disk holds what was written, not
    # 4.5 TiB (reflinked extents and holes; XFS metadata for 1,180 blocks in a few MiB)
    committed_path = reflinked.source_path.parents[1] / "edge" / "checkpoint.bin"
    assert committed_path.stat().st_size == SIZE
    assert used_bytes(reflinked.mount) - used_before < 64 * MIB


@pytest.mark.large
def test_the_read_side_of_a_placed_4_5_tib_file(reflinked: Reflinked, tmp_path: Path) -> None:
    """A sparse 4.5 TiB file written by another program: listed, served at its end, If-Range;
    the SDK's ranged download reaches its last bytes and AzCopy lists its exact size (the bytes
    moved stay bounded: neither client has to fetch the 4.5 TiB)."""
    raw, ct, name = reflinked.raw, reflinked.container, reflinked.source
    head = raw.request("HEAD", ct, name)
    assert head.status == 200 and head.headers["content-length"] == str(SIZE)
    etag = head.headers["etag"]
    check_marks(raw, ct, name)
    tail = raw.request("GET", ct, name, headers={"Range": f"bytes={SIZE - 9}-"})
    assert tail.status == 206 and tail.body == MARKS[SIZE - 9]
    assert tail.headers["content-range"] == f"bytes {SIZE - 9}-{SIZE - 1}/{SIZE}"
    beyond = raw.request("GET", ct, name, headers={"x-ms-range": f"bytes={SIZE}-"})
    assert beyond.status == 416 and beyond.error_code == "InvalidRange"
    kept = ranged(raw, ct, name, SIZE - 9, 9, **{"If-Range": etag})
    assert kept.status == 206 and kept.body == MARKS[SIZE - 9]
    # If-Range that no longer holds means the whole blob (200): read its head only
    stale = raw.prepare(
        "GET", ct, name, headers={"Range": f"bytes={SIZE - 9}-", "If-Range": '"0x0"'}
    )
    conn = raw.connection()
    conn.request("GET", stale.target, headers=stale.headers)
    whole = conn.getresponse()
    assert whole.status == 200 and whole.getheader("Content-Length") == str(SIZE)
    raw.close()  # drop the connection instead of reading 4.5 TiB

    from azure.storage.blob import BlobServiceClient

    sdk = BlobServiceClient.from_connection_string(reflinked.server.connection_string)
    blob = sdk.get_blob_client(ct, name)
    assert blob.get_blob_properties().size == SIZE
    got = blob.download_blob(offset=4 * TIB + 12_345, length=len(MARKS[4 * TIB + 12_345]))
    assert got.size == len(MARKS[4 * TIB + 12_345]) and got.readall() == MARKS[4 * TIB + 12_345]
    assert blob.download_blob(offset=SIZE - 9, length=9).readall() == MARKS[SIZE - 9]
    sdk.close()

    listed = run_azcopy(
        reflinked,
        tmp_path,
        [
            "list",
            f"{reflinked.server.account_url}/{ct}?{{sas}}",
            "--location",
            "Blob",
            "--machine-readable",
        ],
    )
    assert listed.returncode == 0, listed.stdout[-2000:] + listed.stderr[-2000:]
    assert f"{name}; Content Length: {SIZE}" in listed.stdout.splitlines(), listed.stdout


# ------------------------------------------------------------------ client block plans

PLAN_SIZES = {"1 TiB": TIB, "4.5 TiB": SIZE, "190 TiB": 190 * TIB}
AZCOPY_DEFAULT_BLOCK = 8 * MIB  # AzCopy's documented default --block-size-mb


def azcopy_block_size(size: int) -> int:
    """AzCopy's rule without --block-size-mb (ste/mgr-JobPartTransferMgr.go, Info()): start at
    8 MiB and double while size // block > 50,000, then cap at 4,000 MiB. So doubling starts at
    50,001 x 8 MiB (~390.6 GiB), and 16 MiB covers up to ~781 GiB."""
    block = AZCOPY_DEFAULT_BLOCK
    while size // block > MAX_COMMITTED_BLOCKS:
        block *= 2
    return min(block, MAX_BLOCK_SIZE)


def blocks_for(size: int, block: int) -> int:
    return -(-size // block)


def fits(size: int, block: int) -> bool:
    return block <= MAX_BLOCK_SIZE and blocks_for(size, block) <= MAX_COMMITTED_BLOCKS


def test_sdk_block_plan_is_observed_on_the_facade(server: RunningServer) -> None:
    """The SDK's plan, seen on the wire: blocks of exactly max_block_size (the last one
    shorter), above max_single_put_size; a release that adapts its blocks fails here."""
    from azure.storage.blob import BlobClient

    raw = Raw(server)
    ct = raw.create_container()
    size, block = MIB + 3, 256 * 1024
    client = BlobClient.from_connection_string(
        server.connection_string, ct, "plan.bin", max_block_size=block, max_single_put_size=block
    )
    client.upload_blob(os.urandom(size), max_concurrency=2)
    sizes = [b.size for b in client.get_block_list("committed")[0]]
    assert sizes == [block] * (size // block) + [size % block]
    client.close()
    raw.close()


def test_client_block_plans_against_the_facade_limits() -> None:
    from azure.storage.blob import BlobServiceClient

    # the installed SDK's own defaults, read from a client it configures
    config = BlobServiceClient("http://127.0.0.1:1/devstoreaccount1")._config
    sdk_block, sdk_single_put = config.max_block_size, config.max_single_put_size
    assert sdk_single_put <= MAX_BLOCK_SIZE  # its single Put Blob fits the façade
    azcopy = {name: azcopy_block_size(size) for name, size in PLAN_SIZES.items()}
    assert azcopy == {"1 TiB": 32 * MIB, "4.5 TiB": 128 * MIB, "190 TiB": MAX_BLOCK_SIZE}
    assert {n: blocks_for(PLAN_SIZES[n], b) for n, b in azcopy.items()} == {
        "1 TiB": 32_768,
        "4.5 TiB": 36_864,
        "190 TiB": 49_808,
    }
    assert all(fits(PLAN_SIZES[n], b) for n, b in azcopy.items())
    # the doubling threshold: 50,000 x 8 MiB stays at 8 MiB, one block more doubles
    assert azcopy_block_size(MAX_COMMITTED_BLOCKS * 8 * MIB) == 8 * MIB
    assert azcopy_block_size((MAX_COMMITTED_BLOCKS + 1) * 8 * MIB) == 16 * MIB

    # The SDK never adapts max_block_size (4 MiB by default): objects over 50,000 blocks of
    # it (195.3 GiB) are refused by the façade as by Azure (BlockCountExceedsLimit at the
    # 100,001st staged block, else BlockListTooLong at the commit) unless the caller raises it.
    for size in PLAN_SIZES.values():
        assert not fits(size, sdk_block), f"the SDK default now fits {size} bytes"
        needed = blocks_for(blocks_for(size, MAX_COMMITTED_BLOCKS), MIB) * MIB
        assert fits(size, needed), needed  # max_block_size=needed works, 190 TiB too
    assert blocks_for(190 * TIB, MAX_COMMITTED_BLOCKS) <= MAX_BLOCK_SIZE


@pytest.mark.large
@pytest.mark.slow
@pytest.mark.azcopy
def test_azcopy_copies_4_5_tib_service_to_service_with_its_planned_blocks(
    reflinked: Reflinked, tmp_path: Path
) -> None:
    """The real AzCopy copies the sparse 4.5 TiB source to a new blob on the same façade (Put
    Block From URL ranges, kernel copies on reflinks): its blocks are the plan computed above
    (36,864 of 128 MiB), the copy reads back at its marks, and the disk stays nearly empty.
    About 80 s here: 36,864 requests."""
    raw, ct = reflinked.raw, reflinked.container
    used_before = used_bytes(reflinked.mount)
    base = f"{reflinked.server.account_url}/{ct}"
    done = run_azcopy(
        reflinked,
        tmp_path,
        [
            "copy",
            f"{base}/{reflinked.source}?{{sas}}",
            f"{base}/edge/azcopy.bin?{{sas}}",
            "--from-to",
            "BlobBlob",
        ],
        timeout_s=480,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    r = raw.request("GET", ct, "edge/azcopy.bin", query={"comp": "blocklist"})
    sizes = [int(b.findtext("Size") or 0) for b in r.xml().iterfind("CommittedBlocks/Block")]
    block = azcopy_block_size(SIZE)
    assert sizes == [block] * blocks_for(SIZE, block)  # 4.5 TiB is a multiple of 128 MiB
    assert raw.request("HEAD", ct, "edge/azcopy.bin").headers["content-length"] == str(SIZE)
    check_marks(raw, ct, "edge/azcopy.bin")
    assert used_bytes(reflinked.mount) - used_before < 256 * MIB


def test_upload_copy_from_hashes_only_when_asked(tmp_path: Path) -> None:
    """A kernel copy into an upload: the bytes land, and the range is read only for a checksum
    (the MD5 of the upload, an observer such as the CRC64 of Put Block From URL)."""
    src = tmp_path / "src"
    data = os.urandom(5 * MIB + 11)
    src.write_bytes(data)
    made = iter(range(10))

    def open_temp() -> tuple[int, str]:
        path = str(tmp_path / f"up-{next(made)}")
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL), path

    seen: list[bytes] = []
    hashed = upload_module.Upload(open_temp, want_md5=True, limit=len(data))
    plain = upload_module.Upload(open_temp, want_md5=False, limit=len(data))
    with open(src, "rb") as f:
        hashed.copy_from(f.fileno(), 3, len(data) - 3, seen.append)
        plain.copy_from(f.fileno(), 0, len(data))
        over = upload_module.Upload(open_temp, want_md5=False, limit=10)
        with pytest.raises(StorageError) as exc:
            over.copy_from(f.fileno(), 0, 11)
    assert exc.value.code == "RequestBodyTooLarge"
    hashed.finish(durable=False)
    plain.finish(durable=False)
    assert Path(hashed.path).read_bytes() == data[3:] == b"".join(seen)
    assert hashed.md5_b64 == base64.b64encode(hashlib.md5(data[3:]).digest()).decode()
    assert Path(plain.path).read_bytes() == data and plain.md5_b64 is None

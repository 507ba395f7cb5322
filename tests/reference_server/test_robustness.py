"""The façade's robustness promises, proven against real server processes: crash safety, flat
memory at any object size, throttling that clients ride through, and SAS signatures kept out of
the logs."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import http.client
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import psutil
import pytest
from azure.storage.blob import BlobServiceClient, LinearRetry
from facade_raw import Raw

from harness.http import block_id, block_list_xml
from harness.signing import generate_account_sas, generate_service_sas
from reference_server.store.names import name_hash
from reference_server.store.records import PROPS_XATTR
from tests.conftest import RunningServer, start_server, stop_server, wait_until

MIB = 1024 * 1024
GIB = 1024 * MIB


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Starts façades on one data root (restarts reuse it); every one is stopped at the end."""
    started: list[RunningServer] = []

    def launch(*args: str) -> RunningServer:
        srv = start_server(tmp_path / "data", tmp_path / f"server-{len(started)}.log", *args)
        started.append(srv)
        return srv

    yield launch
    for srv in started:
        if srv.process.poll() is None:
            stop_server(srv)


def b64md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def open_request(
    raw: Raw,
    method: str,
    container: str,
    blob: str,
    length: int,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> socket.socket:
    """A signed request whose head is sent and whose body the caller sends (or never finishes)."""
    req = raw.prepare(method, container, blob, query=query, headers=headers, content_length=length)
    sock = socket.create_connection(("127.0.0.1", raw.server.port))
    sock.sendall(req.head())
    return sock


def staging_files(srv: RunningServer, prefix: str) -> list[Path]:
    staging = srv.data_root / ".staging"
    return [p for p in staging.iterdir() if p.name.startswith(prefix)] if staging.is_dir() else []


@contextlib.contextmanager
def commit_locks(srv: RunningServer, container: str, blobs: list[str]) -> Iterator[None]:
    """Hold the store's commit flocks of these names, so server commits stop right before their
    rename: the exact moment a crash must not expose."""
    lock_dir = srv.data_root / ".blobmeta" / srv.account / container / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    fds = []
    try:
        # one flock per lock file: two descriptors of one file would block each other
        for stem in sorted({name_hash(b)[:2] for b in blobs}):
            fds.append(os.open(lock_dir / f"{stem}.lock", os.O_RDWR | os.O_CREAT, 0o644))
            fcntl.flock(fds[-1], fcntl.LOCK_EX)
        yield
    finally:
        for fd in fds:
            os.close(fd)


def kill(srv: RunningServer) -> None:
    srv.process.send_signal(signal.SIGKILL)
    srv.process.wait()


def assert_restart_state(
    srv: RunningServer, container: str, blob: str, previous: tuple[bytes, dict[str, str]] | None
) -> None:
    """After a crash mid-write: the blob is absent, or exactly its previous whole version with
    that version's properties; nothing half-written is visible or left behind."""
    raw = Raw(srv)
    try:
        final = srv.data_root / srv.account / container / blob
        get = raw.request("GET", container, blob)
        listing = raw.request("GET", container, query={"restype": "container", "comp": "list"})
        names = [e.text for e in listing.xml().iter("Name")]
        if previous is None:
            assert get.status == 404 and get.error_code == "BlobNotFound"
            assert not final.exists()
            assert blob not in names
        else:
            data, headers = previous
            assert get.status == 200 and get.body == data
            assert final.read_bytes() == data
            for name in ("etag", "content-md5", "content-type", "x-ms-meta-version"):
                assert get.headers[name] == headers[name]
            assert names.count(blob) == 1
        # the interrupted write left nothing in staging once the server restarted
        assert staging_files(srv, "up-") == [] and staging_files(srv, "commit-") == []
    finally:
        raw.close()


def put_previous(raw: Raw, container: str, blob: str) -> tuple[bytes, dict[str, str]]:
    data = os.urandom(3 * MIB)
    put = raw.put_blob(
        container,
        blob,
        data,
        **{"x-ms-blob-content-type": "application/x-v1", "x-ms-meta-version": "1"},
    )
    assert put.status == 201
    head = raw.request("HEAD", container, blob)
    assert head.status == 200
    return data, head.headers


# ------------------------------------------------------------------------------------ crashes
@pytest.mark.slow
def test_crash_never_exposes_a_half_written_blob(launcher) -> None:
    """SIGKILL mid-body and mid-commit, then restart on the same data root. Each write goes to a
    new name and over an existing blob at once, so three server starts cover every case."""
    srv = launcher()
    raw = Raw(srv)
    ct = raw.create_container()
    names = {"new": None, "old": put_previous(raw, ct, "old")}
    body = os.urandom(8 * MIB)
    put_blob = {"x-ms-blob-type": "BlockBlob"}

    def expect_previous(server: RunningServer) -> None:
        for name, previous in names.items():
            assert_restart_state(server, ct, name, previous)

    # 1. killed while bodies stream in: half of each is sent, and the server writes bodies in
    # batches of up to 2 MiB, so at least a quarter of each is in staging, nothing at the names
    socks = [open_request(raw, "PUT", ct, name, len(body), headers=put_blob) for name in names]
    for sock in socks:
        sock.sendall(body[: len(body) // 2])
    wait_until(
        lambda: sum(p.stat().st_size >= len(body) // 4 for p in staging_files(srv, "up-")) == 2,
        "both partial bodies in staging",
    )
    kill(srv)
    raw.close()
    srv = launcher()
    expect_previous(srv)

    # 2. killed with whole bodies received and whole block lists assembled, each commit
    # waiting on its lock right before the rename
    raw = Raw(srv)
    blocks = [os.urandom(2 * MIB) for _ in range(4)]
    xml = block_list_xml([block_id(i) for i in range(len(blocks))])
    names |= {"new-blocks": None, "old-blocks": put_previous(raw, ct, "old-blocks")}
    for name in ("new-blocks", "old-blocks"):
        for i, data in enumerate(blocks):
            query = {"comp": "block", "blockid": block_id(i)}
            assert raw.request("PUT", ct, name, query=query, body=data).status == 201
    with commit_locks(srv, ct, list(names)):
        for name in ("new", "old"):
            socks.append(open_request(raw, "PUT", ct, name, len(body), headers=put_blob))
            socks[-1].sendall(body)
        for name in ("new-blocks", "old-blocks"):
            socks.append(open_request(raw, "PUT", ct, name, len(xml), query={"comp": "blocklist"}))
            socks[-1].sendall(xml)

        def complete(prefix: str, size: int) -> int:
            return sum(p.stat().st_size == size for p in staging_files(srv, prefix))

        wait_until(
            lambda: (
                complete("up-", len(body)) == 2 and complete("commit-", len(b"".join(blocks))) == 2
            ),
            "two whole bodies and two assembled block lists in staging",
        )
        kill(srv)
    raw.close()
    for sock in socks:
        sock.close()
    srv = launcher()
    expect_previous(srv)

    # the uncommitted blocks survived the crash, so a client's retry of the commit succeeds
    raw = Raw(srv)
    try:
        for name in ("new-blocks", "old-blocks"):
            commit = raw.request("PUT", ct, name, query={"comp": "blocklist"}, body=xml)
            assert commit.status == 201, commit.body
            assert raw.request("GET", ct, name).body == b"".join(blocks)
    finally:
        raw.close()


# ------------------------------------------------------------------------------------- memory
CHUNK = MIB


def pattern(size: int, seed: bytes) -> Iterator[bytes]:
    """``size`` bytes generated on the fly, 1 MiB at a time: no chunk repeats (a counter leads
    each), and the test never holds more than one chunk."""
    base = hashlib.sha512(seed).digest() * (CHUNK // 64)
    for i in range(size // CHUNK):
        yield i.to_bytes(8, "big") + base[8:]


class Hashed:
    """Passes chunks through while hashing them: MD5 of the whole and of bytes [start, end)."""

    def __init__(self, chunks: Iterator[bytes], start: int, end: int) -> None:
        self.chunks, self.start, self.end = chunks, start, end
        self.whole, self.part = hashlib.md5(), hashlib.md5()

    def __iter__(self) -> Iterator[bytes]:
        pos = 0
        for chunk in self.chunks:
            self.whole.update(chunk)
            lo, hi = max(self.start, pos), min(self.end, pos + len(chunk))
            if lo < hi:
                self.part.update(chunk[lo - pos : hi - pos])
            pos += len(chunk)
            yield chunk


def b64(md5: hashlib._Hash) -> str:
    return base64.b64encode(md5.digest()).decode()


def put_streamed(
    raw: Raw,
    container: str,
    blob: str,
    chunks: Iterator[bytes],
    size: int,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> tuple[int, str | None]:
    """A signed PUT whose body is sent from an iterator (Content-Length known up front);
    returns the status and the Content-MD5 the server computed."""
    req = raw.prepare("PUT", container, blob, query=query, headers=headers, content_length=size)
    conn = raw.connection()
    conn.request("PUT", req.target, body=chunks, headers=req.headers)
    resp = conn.getresponse()
    resp.read()
    return resp.status, resp.getheader("Content-MD5")


def get_md5(
    raw: Raw, container: str, blob: str, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    """GET a blob (or a range) reading 1 MiB at a time; returns the status and the body's MD5."""
    req = raw.prepare("GET", container, blob, headers=headers)
    conn = raw.connection()
    conn.request("GET", req.target, headers=req.headers)
    resp = conn.getresponse()
    md5 = hashlib.md5()
    while chunk := resp.read(CHUNK):
        md5.update(chunk)
    return resp.status, b64(md5)


def peak_rss(pid: int) -> int:
    """The process's resident high-water mark (VmHWM): catches a transient buffer that a
    sample of the current RSS taken afterwards would miss."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def transfer_both_ways(raw: Raw, container: str, size: int, seed: bytes) -> None:
    """Put Blob streamed and the same bytes by blocks; Get the block blob whole and a range of
    the other. Each byte is generated or hashed once per pass; nothing is kept."""
    start, end = size // 4, size // 4 + size // 2
    sent = Hashed(pattern(size, seed), start, end)
    put = put_streamed(raw, container, "one", iter(sent), size, {"x-ms-blob-type": "BlockBlob"})
    assert put == (201, b64(sent.whole))  # the server's MD5 of what it stored

    chunks, n_blocks = pattern(size, seed), 8
    for i in range(n_blocks):
        body = (next(chunks) for _ in range(size // n_blocks // CHUNK))
        query = {"comp": "block", "blockid": block_id(i)}
        assert put_streamed(raw, container, "blocks", body, size // n_blocks, query=query)[0] == 201
    ids = [block_id(i) for i in range(n_blocks)]
    commit = raw.request(
        "PUT", container, "blocks", query={"comp": "blocklist"}, body=block_list_xml(ids)
    )
    assert commit.status == 201, commit.body

    assert get_md5(raw, container, "blocks") == (200, b64(sent.whole))
    ranged = get_md5(raw, container, "one", {"x-ms-range": f"bytes={start}-{end - 1}"})
    assert ranged == (206, b64(sent.part))
    for name in ("one", "blocks"):
        assert raw.request("DELETE", container, name).status == 202


@pytest.mark.slow
def test_memory_does_not_grow_with_object_size(launcher) -> None:
    srv = launcher()
    server = psutil.Process(srv.process.pid)
    raw = Raw(srv)
    try:
        ct = raw.create_container()
        transfer_both_ways(raw, ct, MIB * 8, b"small")  # 8 blocks need 8 MiB at least
        baseline = server.memory_info().rss
        transfer_both_ways(raw, ct, GIB, b"large")
        peak = peak_rss(srv.process.pid)
        assert peak - baseline < 64 * MIB, (baseline, peak)
    finally:
        raw.close()


# --------------------------------------------------------------------------------- throttling
def test_over_max_inflight_is_server_busy_and_the_sdk_rides_through(launcher) -> None:
    srv = launcher("--max-inflight", "2")
    raw = Raw(srv)
    ct = raw.create_container()
    put_blob = {"x-ms-blob-type": "BlockBlob"}
    held = [open_request(raw, "PUT", ct, f"hold{i}", 10, headers=put_blob) for i in range(2)]
    for sock in held:  # two uploads whose bodies are not finished hold both slots
        sock.sendall(b"12345")
    probe = Raw(srv)
    wait_until(
        lambda: probe.request("GET", ct, query={"restype": "container"}).status == 503,
        "the server to be busy",
    )
    busy = probe.request("GET", ct, "x", headers={"x-ms-client-request-id": "busy-probe"})
    assert (busy.status, busy.error_code, busy.headers["retry-after"]) == (503, "ServerBusy", "1")
    assert busy.xml().findtext("Code") == "ServerBusy"
    assert busy.headers["x-ms-request-id"] and busy.headers["x-ms-version"]
    probe.close()

    statuses: list[int] = []
    data = os.urandom(3 * MIB)
    svc = BlobServiceClient.from_connection_string(
        srv.connection_string,
        retry_policy=LinearRetry(backoff=0.2, random_jitter_range=0.1, retry_total=100),
        max_single_put_size=MIB,
        max_block_size=MIB,
    )
    blob = svc.get_blob_client(ct, "retried.bin")
    done = threading.Event()
    failure: list[BaseException] = []

    def upload() -> None:
        try:
            blob.upload_blob(
                data,
                raw_response_hook=lambda r: statuses.append(r.http_response.status_code),
            )
        except BaseException as exc:
            failure.append(exc)
        finally:
            done.set()

    worker = threading.Thread(target=upload)
    worker.start()
    try:
        wait_until(lambda: 503 in statuses or done.is_set(), "the SDK to meet a 503")
    finally:
        for sock in held:  # free the slots: the SDK's next retry gets through
            sock.sendall(b"67890")
            assert sock.recv(4096).startswith(b"HTTP/1.1 201")
            sock.close()
        worker.join(60)
    assert not failure, failure
    assert 503 in statuses and statuses[-1] == 201
    assert blob.download_blob().readall() == data
    raw.close()


# ------------------------------------------------------------------------------------ logging
def test_sas_signatures_never_reach_the_log(launcher) -> None:
    """Failing SAS requests of every kind with debug logging: the log says what failed, never
    with the signature."""
    srv = launcher("--log-level", "debug")
    raw = Raw(srv)
    ct = raw.create_container()
    assert raw.put_blob(ct, "broken.bin", b"x" * 100).status == 201
    assert raw.put_blob(ct, "fine.bin", b"y" * 100).status == 201
    # a property record that is valid JSON but lacks its fields: reading the blob is an
    # internal error
    os.setxattr(srv.data_root / srv.account / ct / "broken.bin", PROPS_XATTR, b'{"name": "x"}')

    expiry = datetime.now(UTC) + timedelta(hours=1)
    wrong_key = base64.b64encode(b"not the account key, 32 bytes!!!").decode()

    def blob_sas(blob: str, permissions: str = "rw", key: str = srv.key, **kw: datetime) -> str:
        return generate_service_sas(
            srv.account,
            key,
            container=ct,
            blob=blob,
            permissions=permissions,
            expiry=kw.get("expiry", expiry),
        )

    account_sas = generate_account_sas(srv.account, srv.key, permissions="rwdlc", expiry=expiry)
    dead_port = socket.socket()
    dead_port.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    cases: list[tuple[str, str, str, dict[str, str], int]] = [
        ("GET", "broken.bin", blob_sas("broken.bin"), {}, 500),
        ("GET", "fine.bin", blob_sas("fine.bin", key=wrong_key), {}, 403),
        ("GET", "fine.bin", blob_sas("fine.bin", expiry=expiry - timedelta(days=1)), {}, 403),
        ("DELETE", "fine.bin", blob_sas("fine.bin", permissions="r"), {}, 403),
        ("GET", "missing.bin", blob_sas("missing.bin"), {}, 404),
        ("GET", "broken.bin", account_sas, {}, 500),
    ]
    source = f"http://127.0.0.1:{srv.port}/{srv.account}/{ct}/fine.bin"
    copies = [  # the copy's own source SAS is a secret too: wrong key, then no server at all
        f"{source}?{blob_sas('fine.bin', key=wrong_key)}",
        f"http://127.0.0.1:{dead_port.getsockname()[1]}/acct/ct/b?{blob_sas('fine.bin')}",
    ]
    for url in copies:
        copy = {"x-ms-copy-source": url, "x-ms-requires-sync": "true"}
        cases.append(("PUT", "copy.bin", account_sas, copy, 0))
        cases.append(("PUT", "copy.bin", account_sas, {"x-ms-copy-source": url}, 0))
    secrets = set()
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        for method, blob, sas, headers, status in cases:
            secrets.add(dict(parse_qsl(sas))["sig"])
            secrets |= {dict(parse_qsl(urlsplit(u).query)).get("sig", "") for u in headers.values()}
            target = f"{raw.path(ct, blob)}?{sas}"
            conn.request(method, target, headers={"x-ms-version": "2025-07-05", **headers})
            resp = conn.getresponse()
            resp.read()
            if status:
                assert resp.status == status, (method, blob, resp.status)
            else:  # the copy's source refuses or cannot be reached: some Azure error
                assert resp.status >= 400 and resp.getheader("x-ms-error-code"), resp.status
    finally:
        conn.close()
        dead_port.close()
    # requests the HTTP parser itself refuses (400): its error report quotes the request line
    for line in (f"GET {raw.path(ct, 'fine.bin')}?{sas} HTTQ/1.1", f"GET /x?{sas}\x7f HTTP/1.1"):
        with socket.create_connection(("127.0.0.1", srv.port)) as sock:
            sock.sendall(line.encode("latin-1") + b"\r\nHost: x\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.0 400")
    raw.close()
    stop_server(srv)
    log = srv.log()
    # the failures were logged
    assert "internal error on GET" in log and "SAS mismatch" in log and "HTTQ" in log
    secrets.discard("")
    assert len(secrets) >= 6
    for secret in secrets:
        for form in (secret, quote(secret, safe=""), quote(secret)):
            assert form not in log

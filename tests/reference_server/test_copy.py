"""Server-side copy over raw HTTP: Put Blob From URL, Put Block From URL, Copy Blob, Abort Copy."""

from __future__ import annotations

import base64
import hashlib
import os
import select
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from azure.storage.extensions import checksums
from facade_raw import Raw

from harness.http import Response
from harness.signing import generate_account_sas, generate_service_sas

MIB = 1024 * 1024


class Facades:
    """Starts extra façade processes with tests/conftest.py's helpers; stops them all at the end
    (that conftest's module name clashes with this directory's, so it is found as a plugin)."""

    def __init__(self, config: pytest.Config) -> None:
        path = str(Path(__file__).resolve().parents[1] / "conftest.py")
        self._root = next(
            p for p in config.pluginmanager.get_plugins() if getattr(p, "__file__", None) == path
        )
        self.running: list[Any] = []

    def start(self, data_root: Path, log: Path, *args: str, port: int | None = None) -> Any:
        server = self._root.start_server(data_root, log, *args, port=port)
        self.running.append(server)
        return server

    def stop(self, server: Any) -> None:
        self.running.remove(server)
        self._root.stop_server(server)


@pytest.fixture
def facades(request: pytest.FixtureRequest) -> Iterator[Facades]:
    f = Facades(request.config)
    yield f
    for server in list(f.running):
        f.stop(server)


def b64md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def bid(n: int) -> str:
    return base64.b64encode(f"{n:08d}".encode()).decode()


def blob_url(raw: Raw, container: str, blob: str, sas: str | None = None) -> str:
    url = f"http://127.0.0.1:{raw.server.port}{raw.path(container, blob)}"
    return f"{url}?{sas}" if sas else url


def read_sas(raw: Raw, container: str, blob: str) -> str:
    expiry = datetime.now(UTC) + timedelta(hours=1)
    return generate_service_sas(
        raw.server.account,
        raw.server.key,
        container=container,
        blob=blob,
        permissions="r",
        expiry=expiry,
    )


def get(raw: Raw, container: str, blob: str) -> Response:
    reply = raw.request("GET", container, blob)
    assert reply.status == 200, reply.body
    return reply


def wait_for_status(raw: Raw, container: str, blob: str, status: str) -> Response:
    deadline = time.monotonic() + 30
    while True:
        head = raw.request("HEAD", container, blob)
        if head.headers.get("x-ms-copy-status") == status or time.monotonic() > deadline:
            return head
        time.sleep(0.1)


@pytest.fixture
def source(raw: Raw, container: str) -> tuple[str, bytes]:
    """A 3 MiB source blob with content headers and metadata."""
    data = os.urandom(3 * MIB + 123)
    put = raw.put_blob(
        container,
        "src/data.bin",
        data,
        **{"x-ms-blob-content-type": "application/x-test", "x-ms-meta-origin": "lake"},
    )
    assert put.status == 201
    return "src/data.bin", data


# ------------------------------------------------------------------------ Put Blob From URL


def test_put_blob_from_url_same_facade(raw: Raw, container: str, source: tuple[str, bytes]) -> None:
    name, data = source
    url = blob_url(raw, container, name, read_sas(raw, container, name))
    put = raw.request(
        "PUT",
        container,
        "dst/copy.bin",
        headers={"x-ms-copy-source": url, "x-ms-blob-type": "BlockBlob", "x-ms-meta-k": "v"},
    )
    assert put.status == 201, put.body
    assert put.headers["content-md5"] == b64md5(data)
    got = get(raw, container, "dst/copy.bin")
    assert got.body == data
    assert got.headers["content-type"] == "application/x-test"  # copied from the source
    assert got.headers["content-md5"] == b64md5(data)
    assert got.headers["x-ms-meta-k"] == "v" and "x-ms-meta-origin" not in got.headers

    # x-ms-copy-source-blob-properties: false -> the properties come from the request alone
    put = raw.request(
        "PUT",
        container,
        "dst/plain.bin",
        headers={
            "x-ms-copy-source": url,
            "x-ms-blob-type": "BlockBlob",
            "x-ms-copy-source-blob-properties": "false",
            "x-ms-blob-content-type": "text/x-own",
        },
    )
    assert put.status == 201, put.body
    assert get(raw, container, "dst/plain.bin").headers["content-type"] == "text/x-own"


def test_same_facade_source_is_read_from_disk(tmp_path: Path, facades: Facades) -> None:
    """With room for one request in flight, a fetch over the network would get 503 from this
    very server: the copy only succeeds because the source is read from the data root."""
    srv = facades.start(tmp_path / "data", tmp_path / "log", "--max-inflight", "1")
    raw = Raw(srv)
    try:
        ct = raw.create_container()
        data = os.urandom(MIB)
        assert raw.put_blob(ct, "a", data).status == 201
        url = blob_url(raw, ct, "a", read_sas(raw, ct, "a"))
        put = raw.request(
            "PUT", ct, "b", headers={"x-ms-copy-source": url, "x-ms-blob-type": "BlockBlob"}
        )
        assert put.status == 201, put.body
        assert get(raw, ct, "b").body == data
    finally:
        raw.close()
        facades.stop(srv)


def test_sync_copy_max_is_a_setting(tmp_path: Path, facades: Facades) -> None:
    """A same-account Copy Blob up to ``sync_copy_max`` (YAML key; 1 MiB here) answers success
    at once; one byte more answers pending, and the job completes with the same bytes."""
    config = tmp_path / "server.yaml"
    config.write_text(f"sync_copy_max: {MIB}\n")
    srv = facades.start(tmp_path / "data", tmp_path / "log", "--config", str(config))
    raw = Raw(srv)
    try:
        ct = raw.create_container()
        for name, size, status in (("at.bin", MIB, "success"), ("over.bin", MIB + 1, "pending")):
            data = os.urandom(size)
            assert raw.put_blob(ct, f"src-{name}", data).status == 201
            started = raw.request(
                "PUT", ct, name, headers={"x-ms-copy-source": blob_url(raw, ct, f"src-{name}")}
            )
            assert started.status == 202, started.body
            assert started.headers["x-ms-copy-status"] == status
            head = wait_for_status(raw, ct, name, "success")
            assert head.headers["x-ms-copy-status"] == "success", head.headers
            assert head.headers["x-ms-copy-progress"] == f"{size}/{size}"
            assert get(raw, ct, name).body == data
    finally:
        raw.close()
        facades.stop(srv)


def test_sync_copy_max_flag_overrides_yaml(tmp_path: Path) -> None:
    from reference_server.cli import build_config, parse_args
    from reference_server.config import ServerConfig

    config = tmp_path / "server.yaml"
    config.write_text("sync_copy_max: 5\n")
    root = ["--data-root", str(tmp_path)]
    assert build_config(parse_args(root)).sync_copy_max == ServerConfig().sync_copy_max
    assert build_config(parse_args([*root, "--config", str(config)])).sync_copy_max == 5
    flagged = parse_args([*root, "--config", str(config), "--sync-copy-max", "7"])
    assert build_config(flagged).sync_copy_max == 7


def test_source_failures_come_back_as_azure_does(
    raw: Raw, container: str, source: tuple[str, bytes]
) -> None:
    name, _ = source
    missing = raw.request(
        "PUT",
        container,
        "dst/x",
        headers={
            "x-ms-copy-source": blob_url(raw, container, "nope", read_sas(raw, container, "nope")),
            "x-ms-blob-type": "BlockBlob",
        },
    )
    assert missing.status == 404 and missing.error_code == "CannotVerifyCopySource"
    assert missing.headers["x-ms-copy-source-status-code"] == "404"
    assert missing.headers["x-ms-copy-source-error-code"] == "BlobNotFound"
    assert missing.xml().findtext("Code") == "CannotVerifyCopySource"

    forged = read_sas(raw, container, name).replace("sig=", "sig=AAAA")
    denied = raw.request(
        "PUT",
        container,
        "dst/x",
        headers={
            "x-ms-copy-source": blob_url(raw, container, name, forged),
            "x-ms-blob-type": "BlockBlob",
        },
    )
    assert denied.status == 403 and denied.error_code == "CannotVerifyCopySource"
    assert denied.headers["x-ms-copy-source-status-code"] == "403"
    assert denied.headers["x-ms-copy-source-error-code"] == "AuthenticationFailed"
    assert raw.request("HEAD", container, "dst/x").status == 404


# ------------------------------------------------------------------ two façades: remote source


@pytest.fixture
def lake(tmp_path: Path, facades: Facades) -> Iterator[Raw]:
    """A second façade with its own account, the remote source of the copies."""
    key = base64.b64encode(b"lake-account-key-0123456789abcdef").decode()
    srv = facades.start(tmp_path / "lake", tmp_path / "lake.log", "--account", f"lake:{key}")
    srv.account, srv.key = "lake", key
    raw = Raw(srv)
    yield raw
    raw.close()
    facades.stop(srv)


def lake_sas(lake: Raw) -> str:
    return generate_account_sas(
        "lake", lake.server.key, permissions="rl", expiry=datetime.now(UTC) + timedelta(hours=1)
    )


def test_put_block_from_url_ranges_between_two_facades(raw: Raw, container: str, lake: Raw) -> None:
    ct = lake.create_container()
    data = os.urandom(10 * MIB + 7)
    assert lake.put_blob(ct, "big/x.bin", data, **{"x-ms-meta-m": "1"}).status == 201
    url = blob_url(lake, ct, "big/x.bin", lake_sas(lake))
    block = 4 * MIB
    ids = []
    for i, start in enumerate(range(0, len(data), block)):
        end = min(start + block, len(data)) - 1
        piece = data[start : end + 1]
        crc = base64.b64encode(checksums.crc64.compute(piece, 0).to_bytes(8, "little")).decode()
        # one source checksum or the other: both at once is 400 BothCrc64AndMd5HeaderPresent
        checksum = (
            {"x-ms-source-content-crc64": crc}
            if i % 2
            else {"x-ms-source-content-md5": b64md5(piece)}
        )
        put = raw.request(
            "PUT",
            container,
            "edge/x.bin",
            query={"comp": "block", "blockid": bid(i)},
            headers={
                "x-ms-copy-source": url,
                "x-ms-source-range": f"bytes={start}-{end}",
                **checksum,
            },
        )
        assert put.status == 201, put.body
        # the checksum asked for is the one answered (a kernel copy reads the bytes for no other)
        assert put.headers.get("content-md5") == (None if i % 2 else b64md5(piece))
        assert put.headers.get("x-ms-content-crc64") == (crc if i % 2 else None)
        ids.append(bid(i))
    body = "".join(f"<Latest>{b}</Latest>" for b in ids)
    commit = raw.request(
        "PUT",
        container,
        "edge/x.bin",
        query={"comp": "blocklist"},
        body=f"<?xml version='1.0' encoding='utf-8'?><BlockList>{body}</BlockList>".encode(),
    )
    assert commit.status == 201, commit.body
    assert get(raw, container, "edge/x.bin").body == data

    wrong = raw.request(
        "PUT",
        container,
        "edge/y.bin",
        query={"comp": "block", "blockid": bid(0)},
        headers={
            "x-ms-copy-source": url,
            "x-ms-source-range": "bytes=0-1023",
            "x-ms-source-content-md5": b64md5(b"other"),
        },
    )
    assert wrong.status == 400 and wrong.error_code == "Md5Mismatch"


def test_put_blob_and_copy_blob_from_remote(raw: Raw, container: str, lake: Raw) -> None:
    ct = lake.create_container()
    data = os.urandom(2 * MIB + 1)
    assert (
        lake.put_blob(
            ct, "d/a b.bin", data, **{"x-ms-meta-origin": "lake", "x-ms-blob-content-type": "x/y"}
        ).status
        == 201
    )
    url = blob_url(lake, ct, "d/a b.bin", lake_sas(lake))
    put = raw.request(
        "PUT", container, "p.bin", headers={"x-ms-copy-source": url, "x-ms-blob-type": "BlockBlob"}
    )
    assert put.status == 201, put.body
    assert get(raw, container, "p.bin").body == data

    sync = raw.request(
        "PUT", container, "s.bin", headers={"x-ms-copy-source": url, "x-ms-requires-sync": "true"}
    )
    assert sync.status == 202, sync.body
    assert sync.headers["x-ms-copy-status"] == "success"
    got = get(raw, container, "s.bin")
    assert got.body == data
    assert got.headers["x-ms-copy-id"] == sync.headers["x-ms-copy-id"]
    assert got.headers["x-ms-copy-progress"] == f"{len(data)}/{len(data)}"
    assert "REDACTED" in got.headers["x-ms-copy-source"]  # the SAS signature is never echoed
    assert got.headers["x-ms-meta-origin"] == "lake"  # Copy Blob copies metadata by default
    assert got.headers["content-type"] == "x/y"

    started = raw.request("PUT", container, "a.bin", headers={"x-ms-copy-source": url})
    assert started.status == 202, started.body
    assert started.headers["x-ms-copy-status"] in ("pending", "success")
    head = wait_for_status(raw, container, "a.bin", "success")
    assert head.headers["x-ms-copy-status"] == "success"
    assert head.headers["x-ms-copy-id"] == started.headers["x-ms-copy-id"]
    assert get(raw, container, "a.bin").body == data

    missing = raw.request(
        "PUT",
        container,
        "m.bin",
        headers={"x-ms-copy-source": blob_url(lake, ct, "nope", lake_sas(lake))},
    )
    assert missing.status == 404 and missing.error_code == "CannotVerifyCopySource"
    assert missing.headers["x-ms-copy-source-error-code"] == "BlobNotFound"


# -------------------------------------------------------------- async copy: abort and restart


class PlainSource:
    """A plain HTTP server as the copy source. It records the request headers; ``hold`` sends
    the headers and the first KiB, then the rest only once ``release`` is set. ``dropped`` is set
    when the client closes a held connection before the release (a cancelled fetch)."""

    def __init__(
        self, data: bytes, *, hold: bool = False, status: int = 200, error_code: str = ""
    ) -> None:
        self.data = data
        self.release = threading.Event()
        self.dropped = threading.Event()
        if not hold:
            self.release.set()
        self.requests: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append({k.lower(): v for k, v in self.headers.items()})
                if status != 200:
                    self.send_response(status)
                    self.send_header("x-ms-error-code", error_code)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(outer.data)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                self.wfile.write(outer.data[:1024])
                self.wfile.flush()
                if outer._held_until_release(self.connection):
                    self.wfile.write(outer.data[1024:])

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def _held_until_release(self, conn: socket.socket) -> bool:
        """Wait (20 s at most) for ``release``: True to send the rest; False when the client
        closed the connection first (``dropped`` set) or the wait ran out."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.release.wait(0.02):
                return True
            if select.select([conn], [], [], 0)[0]:
                try:
                    closed = conn.recv(1, socket.MSG_PEEK) == b""
                except OSError:
                    closed = True
                if closed:
                    self.dropped.set()
                    return False
        return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/plain/{quote('file.bin')}"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def plain_sources() -> Iterator[list[PlainSource]]:
    sources: list[PlainSource] = []
    yield sources
    for src in sources:
        src.close()


def test_bearer_passes_through_and_source_errors_keep_their_status(
    raw: Raw, container: str, plain_sources: list[PlainSource]
) -> None:
    data = os.urandom(300_000)
    ok = PlainSource(data)
    busy = PlainSource(b"", status=503, error_code="ServerBusy")
    plain_sources += [ok, busy]
    put = raw.request(
        "PUT",
        container,
        "bearer.bin",
        headers={
            "x-ms-copy-source": ok.url,
            "x-ms-blob-type": "BlockBlob",
            "x-ms-copy-source-authorization": "Bearer token-for-the-source",
        },
    )
    assert put.status == 201, put.body
    assert ok.requests[0]["authorization"] == "Bearer token-for-the-source"
    assert get(raw, container, "bearer.bin").body == data

    failed = raw.request(
        "PUT",
        container,
        "busy.bin",
        headers={"x-ms-copy-source": busy.url, "x-ms-blob-type": "BlockBlob"},
    )
    # the source's 5xx comes back as a 5xx with an error code, so AzCopy retries it
    assert failed.status == 503 and failed.error_code == "CannotVerifyCopySource"
    assert failed.headers["x-ms-copy-source-status-code"] == "503"
    assert failed.headers["x-ms-copy-source-error-code"] == "ServerBusy"


@pytest.fixture
def slow_source() -> Iterator[PlainSource]:
    src = PlainSource(os.urandom(MIB), hold=True)
    yield src
    src.close()


def test_abort_copy(raw: Raw, container: str, slow_source: PlainSource) -> None:
    started = raw.request(
        "PUT",
        container,
        "job.bin",
        headers={"x-ms-copy-source": slow_source.url, "x-ms-meta-a": "b"},
    )
    assert started.status == 202, started.body
    copy_id = started.headers["x-ms-copy-id"]
    head = raw.request("HEAD", container, "job.bin")
    assert head.headers["x-ms-copy-status"] == "pending"
    assert head.headers["x-ms-copy-progress"] == f"0/{len(slow_source.data)}"

    def abort(cid: str) -> Response:
        return raw.request(
            "PUT",
            container,
            "job.bin",
            query={"comp": "copy", "copyid": cid},
            headers={"x-ms-copy-action": "abort"},
        )

    mismatch = abort("00000000-0000-0000-0000-000000000000")
    assert mismatch.status == 409 and mismatch.error_code == "CopyIdMismatch"
    assert abort(copy_id).status == 204
    head = raw.request("HEAD", container, "job.bin")
    assert head.headers["x-ms-copy-status"] == "aborted"
    assert head.headers["content-length"] == "0"
    assert head.headers["x-ms-meta-a"] == "b"
    again = abort(copy_id)
    assert again.status == 409 and again.error_code == "NoPendingCopyOperation"
    # The cancelled job drops its source connection; releasing the rest after that must not
    # land any bytes.
    assert slow_source.dropped.wait(10), "the aborted copy kept its source connection open"
    slow_source.release.set()
    assert raw.request("HEAD", container, "job.bin").headers["x-ms-copy-status"] == "aborted"


def test_pending_copy_survives_a_restart(
    tmp_path: Path, slow_source: PlainSource, facades: Facades
) -> None:
    srv = facades.start(tmp_path / "data", tmp_path / "log1")
    raw = Raw(srv)
    ct = raw.create_container()
    started = raw.request("PUT", ct, "r.bin", headers={"x-ms-copy-source": slow_source.url})
    assert started.status == 202, started.body
    raw.close()
    facades.stop(srv)

    srv = facades.start(tmp_path / "data", tmp_path / "log2", port=srv.port)
    raw = Raw(srv)
    try:
        head = raw.request("HEAD", ct, "r.bin")
        assert head.headers["x-ms-copy-id"] == started.headers["x-ms-copy-id"]
        assert head.headers["x-ms-copy-status"] == "pending"
        slow_source.release.set()  # the resumed job fetches the source again and completes
        head = wait_for_status(raw, ct, "r.bin", "success")
        assert head.headers["x-ms-copy-status"] == "success", head.headers
        assert get(raw, ct, "r.bin").body == slow_source.data
        assert len(slow_source.requests) == 2
    finally:
        raw.close()
        facades.stop(srv)


def test_source_conditions(raw: Raw, container: str, source: tuple[str, bytes]) -> None:
    name, _ = source
    url = blob_url(raw, container, name, read_sas(raw, container, name))
    unmet = raw.request(
        "PUT",
        container,
        "cond.bin",
        headers={
            "x-ms-copy-source": url,
            "x-ms-blob-type": "BlockBlob",
            "x-ms-source-if-match": '"0x0000"',
        },
    )
    assert unmet.status == 412 and unmet.error_code == "SourceConditionNotMet"
    etag = raw.request("HEAD", container, name).headers["etag"]
    met = raw.request(
        "PUT",
        container,
        "cond.bin",
        headers={
            "x-ms-copy-source": url,
            "x-ms-blob-type": "BlockBlob",
            "x-ms-source-if-match": etag,
        },
    )
    assert met.status == 201, met.body


@pytest.mark.sdk
def test_sdk_copy_calls(
    shared_server: Any, raw: Raw, container: str, source: tuple[str, bytes]
) -> None:
    """azure-storage-blob's copy calls parse the façade's answers."""
    from azure.storage.blob import BlobServiceClient

    name, data = source
    url = blob_url(raw, container, name, read_sas(raw, container, name))
    with BlobServiceClient(shared_server.account_url, credential=shared_server.key) as svc:
        ct = svc.get_container_client(container)
        ct.get_blob_client("sdk/put.bin").upload_blob_from_url(url)
        assert ct.download_blob("sdk/put.bin").readall() == data

        staged = ct.get_blob_client("sdk/blocks.bin")
        staged.stage_block_from_url(bid(0), url, source_offset=0, source_length=MIB)
        staged.stage_block_from_url(bid(1), url, source_offset=MIB, source_length=len(data) - MIB)
        staged.commit_block_list([bid(0), bid(1)])
        assert ct.download_blob("sdk/blocks.bin").readall() == data

        copied = ct.get_blob_client("sdk/copy.bin")
        started = copied.start_copy_from_url(url)
        assert started["copy_status"] in ("pending", "success")
        deadline = time.monotonic() + 30
        props = copied.get_blob_properties()
        while props.copy.status == "pending" and time.monotonic() < deadline:
            time.sleep(0.1)
            props = copied.get_blob_properties()
        assert props.copy.status == "success" and props.copy.id == started["copy_id"]
        assert props.copy.completion_time is not None
        assert props.metadata == {"origin": "lake"}
        assert ct.download_blob("sdk/copy.bin").readall() == data

        synced = ct.get_blob_client("sdk/sync.bin").start_copy_from_url(url, requires_sync=True)
        assert synced["copy_status"] == "success"

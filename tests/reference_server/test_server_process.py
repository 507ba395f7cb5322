"""The server process: flags, config file, workers, throttling, block collection, shutdown."""

from __future__ import annotations

import base64
import socket
import time
import uuid

import psutil
from azure.storage.blob import BlobServiceClient
from facade_raw import Raw, launch

KEY = base64.b64encode(b"lab-account-key-0123456789abcdef").decode()


def test_max_inflight_answers_503_server_busy(tmp_path) -> None:
    srv = launch(tmp_path / "data", "--max-inflight", "2")
    try:
        raw = Raw(srv)
        ct = raw.create_container()
        held = []
        for i in range(2):  # two uploads whose bodies never finish hold both slots
            req = raw.prepare(
                "PUT", ct, f"hold{i}", headers={"x-ms-blob-type": "BlockBlob"}, content_length=10
            )
            sock = socket.create_connection(("127.0.0.1", srv.port))
            sock.sendall(req.head() + b"12345")
            held.append(sock)
        busy = None
        for _ in range(50):  # the server reads the held requests asynchronously
            busy = Raw(srv).request("GET", ct, query={"restype": "container"})
            if busy.status == 503:
                break
            time.sleep(0.1)
        assert busy is not None and busy.status == 503
        assert busy.error_code == "ServerBusy" and busy.headers["retry-after"] == "1"
        assert busy.xml().findtext("Code") == "ServerBusy"
        for sock in held:
            sock.sendall(b"67890")
            assert sock.recv(4096).startswith(b"HTTP/1.1 201")
            sock.close()
        assert Raw(srv).request("GET", ct, query={"restype": "container"}).status == 200
    finally:
        assert srv.stop() == 0


def test_config_file_accounts_and_flags(tmp_path) -> None:
    config = tmp_path / "server.yaml"
    config.write_text(
        "accounts:\n  - name: labacct\n    keys: ['" + KEY + "']\nuncommitted_block_max_age_s: 1\n"
    )
    other_key = base64.b64encode(b"x" * 32).decode()
    srv = launch(tmp_path / "data", "--config", str(config), "--account", f"second:{other_key}")
    try:
        srv.account, srv.key = "labacct", KEY
        svc = BlobServiceClient.from_connection_string(srv.connection_string)
        ct = svc.create_container("cfg")
        ct.upload_blob("a", b"1")
        assert (tmp_path / "data" / "labacct" / "cfg" / "a").read_bytes() == b"1"
        srv.account, srv.key = "second", other_key
        assert (
            BlobServiceClient.from_connection_string(srv.connection_string)
            .create_container("two")
            .container_name
            == "two"
        )
        # uncommitted blocks older than the configured age are collected
        blob = ct.get_blob_client("staged")
        blob.stage_block(base64.b64encode(b"blk1").decode(), b"data")
        blocks_dir = tmp_path / "data" / ".blocks" / "labacct" / "cfg"
        assert any(blocks_dir.iterdir())
        for _ in range(100):
            if not any(blocks_dir.iterdir()):
                break
            time.sleep(0.1)
        assert not any(blocks_dir.iterdir())
    finally:
        assert srv.stop() == 0


def test_workers_share_port_and_data_root(tmp_path) -> None:
    srv = launch(tmp_path / "data", "--workers", "2")
    try:
        parent = psutil.Process(srv.process.pid)
        workers = [c for c in parent.children() if "spawn_main" in " ".join(c.cmdline())]
        assert len(workers) == 2
        svc = BlobServiceClient.from_connection_string(srv.connection_string)
        ct = svc.create_container(f"w-{uuid.uuid4().hex[:8]}")
        for i in range(20):  # new connections spread across the workers
            ct.upload_blob(f"f{i:02d}", str(i).encode())
        fresh = BlobServiceClient.from_connection_string(srv.connection_string)
        names = [b.name for b in fresh.get_container_client(ct.container_name).list_blobs()]
        assert names == [f"f{i:02d}" for i in range(20)]
        assert ct.download_blob("f07").readall() == b"7"
    finally:
        assert srv.stop() == 0
    for w in workers:
        assert not w.is_running() or w.status() == psutil.STATUS_ZOMBIE

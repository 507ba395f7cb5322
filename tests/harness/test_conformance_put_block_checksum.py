"""`put-block.response-checksum` asks what Azure promises for a Put Block sent without a
checksum: a Content-MD5 or an x-ms-content-crc64 of the block, either one, never a wrong one.

A stub target on loopback answers the check's three requests (create container, Put Block,
delete container) with the headers each case names."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.conformance.framework import FAIL, PASS, crc64_b64, md5_b64
from harness.conformance.suite import run_checks
from harness.targets.base import Endpoint
from reference_server.config import DEV_ACCOUNT, DEV_KEY

CHECK = "put-block.response-checksum"


@pytest.fixture
def stub() -> Iterator[tuple[ThreadingHTTPServer, dict[str, str]]]:
    answer: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, headers: dict[str, str]) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_PUT(self) -> None:
            is_block = "comp=block" in self.path
            self._reply(201, answer if is_block else {})

        def do_DELETE(self) -> None:
            self._reply(202, {})

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, answer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize(
    ("headers", "verdict"),
    [
        ({"x-ms-content-crc64": crc64_b64(b"data")}, PASS),  # what Azure answers (2019-02-02+)
        ({"Content-MD5": md5_b64(b"data")}, PASS),  # what the reference façade answers
        ({}, FAIL),
        ({"x-ms-content-crc64": crc64_b64(b"else")}, FAIL),
        ({"Content-MD5": md5_b64(b"data"), "x-ms-content-crc64": crc64_b64(b"else")}, FAIL),
    ],
)
def test_either_checksum_of_the_block_passes(
    stub: tuple[ThreadingHTTPServer, dict[str, str]], headers: dict[str, str], verdict: str
) -> None:
    server, answer = stub
    answer.update(headers)
    url = f"http://127.0.0.1:{server.server_address[1]}/{DEV_ACCOUNT}"
    run = run_checks(Endpoint("url", DEV_ACCOUNT, url, key=DEV_KEY), only=(CHECK,))
    assert [(r.id, r.status) for r in run.results] == [(CHECK, verdict)], run.results[0].observed

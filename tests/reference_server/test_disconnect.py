"""A client that hangs up mid-download costs the façade nothing but a closed connection."""

from __future__ import annotations

import os
import socket

from tests.conftest import RunningServer
from tests.reference_server.facade_raw import Raw


def test_client_hanging_up_mid_download_is_not_an_error(server: RunningServer) -> None:
    raw = Raw(server)
    container = raw.create_container()
    data = os.urandom(32 * 1024 * 1024)
    assert raw.put_blob(container, "big.bin", data).status == 201

    for headers in ({}, {"x-ms-range": "bytes=1024-"}):
        prepared = raw.prepare("GET", container, "big.bin", headers=headers)
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(prepared.head())
            first = sock.recv(4096)
            assert first.startswith(b"HTTP/1.1 20")
            # hang up with most of the body unread: the server sees a reset mid-sendfile
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )

    # the façade keeps serving, and the aborted responses left no error in its log
    assert raw.request("GET", container, "big.bin").body == data
    log = server.log()
    assert "Traceback" not in log and "Error handling request" not in log, log

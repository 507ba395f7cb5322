"""Raw-socket helpers for the availability tests: connections the test keeps half-finished,
and responses read off them."""

from __future__ import annotations

import http.client
import socket
import time
import xml.etree.ElementTree as ET


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed the connection (EOF or reset); never blocks."""
    timeout = sock.gettimeout()
    sock.setblocking(False)  # (select(2) cannot take descriptors past 1,024)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True
    finally:
        sock.settimeout(timeout)


def wait_closed(socks: list[socket.socket], what: str, limit_s: float = 30) -> None:
    """Poll until the server closed every socket; the limit only bounds a hung test."""
    deadline = time.monotonic() + limit_s
    while not all(closed_by_server(s) for s in socks):
        if time.monotonic() > deadline:
            still = sum(not closed_by_server(s) for s in socks)
            raise AssertionError(f"{still} of {len(socks)} {what} still open")
        time.sleep(0.05)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    resp = http.client.HTTPResponse(sock)
    resp.begin()
    body = resp.read()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body


def assert_azure_error(status: int, headers: dict[str, str], body: bytes, code: str) -> None:
    """Azure's error shape: the code in x-ms-error-code and in an <Error> XML body, plus the
    standard response headers."""
    assert headers.get("x-ms-error-code") == code, (status, headers, body)
    assert headers["content-type"].startswith("application/xml")
    assert headers["x-ms-request-id"] and headers["x-ms-version"] and headers["date"]
    root = ET.fromstring(body)
    assert root.tag == "Error" and root.findtext("Code") == code and root.findtext("Message")

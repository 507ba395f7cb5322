"""The lab proxy: lab names routed to loopback targets, everything else refused."""

from __future__ import annotations

import http.server
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from harness.lab_proxy import LabProxy, routes_for, virtual_host_url, with_proxy
from harness.targets.base import Endpoint


class _Echo(http.server.BaseHTTPRequestHandler):
    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        reply = f"{self.path}|{self.headers['Host']}|".encode() + body
        self.send_response(201)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def origin() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_routes_lab_names_and_refuses_the_rest(origin: int) -> None:
    endpoint = Endpoint("reference", "acct1", f"http://127.0.0.1:{origin}/acct1", key="k")
    assert virtual_host_url(endpoint) == "http://acct1.blob.lab.test"
    with LabProxy(routes_for(endpoint)) as proxy:
        assert with_proxy(endpoint, proxy.url).virtual_host_url == "http://acct1.blob.lab.test"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy.url}))
        req = urllib.request.Request(
            "http://acct1.blob.lab.test/ct/a%2Fb?comp=x", data=b"payload", method="PUT"
        )
        with opener.open(req) as resp:
            assert resp.status == 201
            # origin-form path, virtual-host name kept for the target's addressing, body intact
            assert resp.read() == b"/ct/a%2Fb?comp=x|acct1.blob.lab.test|payload"
        for outside in ("http://example.com/", "http://other.blob.lab.test/"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                opener.open(outside)
            assert refused.value.code == 403
        assert proxy.refused == ["http://example.com/", "http://other.blob.lab.test/"]


def test_connect_tunnels_only_routed_names(origin: int) -> None:
    with LabProxy({"acct1.blob.lab.test": ("127.0.0.1", origin)}) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
            sock.sendall(b"CONNECT acct1.blob.lab.test:443 HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(1024).startswith(b"HTTP/1.1 200")
            sock.sendall(
                b"PUT /t HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
            )
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
            assert reply.startswith(b"HTTP/1.0 201") and reply.endswith(b"/t|h|hi")
        with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
            sock.sendall(b"CONNECT example.com:443 HTTP/1.1\r\n\r\n")
            assert sock.recv(1024).startswith(b"HTTP/1.1 403")

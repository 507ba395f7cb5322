"""Raw signed HTTP for the façade tests: the harness's one Blob HTTP client, bound to a server."""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from harness.http import BlobHttp, Prepared, Response


class Raw(BlobHttp):
    """Signed raw requests to a test server: exactly the method, path, query and headers given."""

    def __init__(self, server: Any) -> None:
        super().__init__(server.account_url, server.account, server.key)
        self.server = server

    def put_blob(self, container: str, blob: str, data: bytes, **headers: str) -> Response:
        return self.request(
            "PUT", container, blob, body=data, headers={"x-ms-blob-type": "BlockBlob", **headers}
        )

    def create_container(self, name: str | None = None) -> str:
        name = name or f"ct-{uuid.uuid4().hex[:12]}"
        r = self.request("PUT", name, query={"restype": "container"})
        assert r.status == 201, r.body
        return name


def raw_head(prepared: Prepared) -> bytes:
    """The request head with every header value turned back into the bytes it stands for
    (``"\\udcff"`` is the byte 0xFF, as the server decodes it), signature included: for bytes
    that http.client and ``Prepared.head`` refuse to send."""
    lines = [f"{prepared.method} {prepared.target} HTTP/1.1"]
    if not any(k.lower() == "host" for k in prepared.headers):
        lines.append(f"Host: {urlsplit(prepared.url).netloc}")
    lines += [f"{k}: {v}" for k, v in prepared.headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


def exchange(
    port: int,
    data: bytes,
    *,
    method: str = "GET",
    half_close: bool = False,
    timeout_s: float = 10.0,
) -> Response | None:
    """Send ``data`` (a request head and body, or any bytes) on a new loopback connection and
    read one response; None when the server closes (or waits ``timeout_s``) without answering.
    ``half_close`` ends the sending side after ``data`` (aiohttp then drops the request
    unanswered: for bodies shorter than their Content-Length and truncated heads)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # answered (and closed) before taking it all: the answer is still readable
        resp = http.client.HTTPResponse(sock, method=method)
        try:
            resp.begin()
            body = resp.read()
        except (
            http.client.RemoteDisconnected,
            ConnectionResetError,
            http.client.IncompleteRead,
            TimeoutError,
        ):
            return None
    return Response(resp.status, resp.reason, {k.lower(): v for k, v in resp.getheaders()}, body)


@dataclass
class Launched:
    """A façade started with custom flags; unlike the shared fixtures it waits for the
    ``listening on`` line, so the announcement itself is under test."""

    process: Any
    port: int
    data_root: Any
    account: str = "devstoreaccount1"
    key: str = ""

    @property
    def account_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.account}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account};AccountKey={self.key};"
            f"BlobEndpoint={self.account_url};"
        )

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def launch(data_root: Any, *args: str, port: int | None = None) -> Launched:
    from reference_server.config import DEV_KEY

    if port is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reference_server",
            "--data-root",
            str(data_root),
            "--port",
            str(port),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if line.strip() != f"listening on http://127.0.0.1:{port}":
        proc.kill()
        raise RuntimeError(
            f"unexpected first line {line!r}: {proc.stdout.read() if proc.stdout else ''}"
        )
    return Launched(proc, port, data_root, key=DEV_KEY)

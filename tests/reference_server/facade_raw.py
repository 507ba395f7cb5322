"""Raw signed HTTP for the façade tests: http.client plus the project's Shared Key signing."""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from reference_server.auth.shared_key import sign_request


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def xml(self) -> ET.Element:
        return ET.fromstring(self.body)

    @property
    def code(self) -> str | None:
        return self.headers.get("x-ms-error-code")


class Raw:
    """Signed raw requests: exactly the method, path, query and headers given."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)

    def path(self, container: str | None = None, blob: str | None = None) -> str:
        path = f"/{self.server.account}"
        if container:
            path += f"/{container}"
            if blob is not None:
                path += "/" + quote(blob, safe="/")
        return path

    def signed_headers(
        self,
        method: str,
        raw_path: str,
        query: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        length: int,
        host: str | None = None,
    ) -> tuple[str, dict[str, str]]:
        target = raw_path + ("?" + urlencode(query) if query else "")
        hdrs = {"x-ms-version": "2025-07-05", **(headers or {})}
        if length or method in ("PUT", "POST"):
            hdrs["Content-Length"] = str(length)
        host = host or f"127.0.0.1:{self.server.port}"
        hdrs["Host"] = host
        sign_request(method, f"http://{host}{target}", hdrs, self.server.account, self.server.key)
        return target, hdrs

    def request(
        self,
        method: str,
        container: str | None = None,
        blob: str | None = None,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        raw_path: str | None = None,
        host: str | None = None,
    ) -> Reply:
        path = raw_path if raw_path is not None else self.path(container, blob)
        target, hdrs = self.signed_headers(method, path, query, headers, len(body), host)
        self.conn.request(method, target, body=body or None, headers=hdrs)
        resp = self.conn.getresponse()
        data = resp.read()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)

    def put_blob(self, container: str, blob: str, data: bytes, **headers: str) -> Reply:
        return self.request(
            "PUT", container, blob, body=data, headers={"x-ms-blob-type": "BlockBlob", **headers}
        )

    def create_container(self, name: str | None = None) -> str:
        name = name or f"ct-{uuid.uuid4().hex[:12]}"
        r = self.request("PUT", name, query={"restype": "container"})
        assert r.status == 201, r.body
        return name

    def close(self) -> None:
        self.conn.close()


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
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account};AccountKey={self.key};"
            f"BlobEndpoint=http://127.0.0.1:{self.port}/{self.account};"
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

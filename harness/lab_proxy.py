"""A loopback forwarding proxy that gives a local endpoint a virtual-host name.

AzCopy infers the service from the host name (``<account>.blob.<domain>``) and takes every
host name as virtual-host style, but our targets listen on ``127.0.0.1:PORT``. Clients that honour
``HTTP_PROXY`` / ``HTTPS_PROXY`` reach ``<account>.blob.lab.test`` through this proxy, which routes
the name to the target's host:port. The lab names are never looked up in DNS, and any destination
that is not routed is refused with 403, so nothing leaves the machine.

Plain-HTTP requests in absolute form (``GET http://host/path HTTP/1.1``) are rewritten to origin
form and sent upstream with ``Connection: close`` (one request per upstream connection keeps the
proxy a byte pipe instead of a full HTTP parser). ``CONNECT host:port`` is tunnelled as raw bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import urllib.parse
from dataclasses import replace

from harness.targets.base import LAB_DOMAIN, Endpoint

_HOP_HEADERS = {b"proxy-connection", b"connection", b"keep-alive", b"proxy-authorization"}
_MAX_HEAD = 64 * 1024


def virtual_host(account: str, domain: str = LAB_DOMAIN) -> str:
    return f"{account}.blob.{domain}"


def upstream_of(endpoint: Endpoint) -> tuple[str, int]:
    """The host:port a proxied lab name must reach for this endpoint."""
    url = urllib.parse.urlsplit(endpoint.blob_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    return url.hostname or "127.0.0.1", port


def virtual_host_url(endpoint: Endpoint, domain: str = LAB_DOMAIN) -> str:
    """``http://<account>.blob.<domain>`` with the endpoint's scheme (no port: the proxy routes)."""
    scheme = urllib.parse.urlsplit(endpoint.blob_url).scheme or "http"
    return f"{scheme}://{virtual_host(endpoint.account, domain)}"


def routes_for(*endpoints: Endpoint, domain: str = LAB_DOMAIN) -> dict[str, tuple[str, int]]:
    return {virtual_host(e.account, domain): upstream_of(e) for e in endpoints}


def with_proxy(endpoint: Endpoint, proxy_url: str, domain: str = LAB_DOMAIN) -> Endpoint:
    """A copy of ``endpoint`` that also carries its proxied virtual-host address."""
    return replace(
        endpoint, proxy_url=proxy_url, virtual_host_url=virtual_host_url(endpoint, domain)
    )


class LabProxy:
    """``LabProxy({"acct.blob.lab.test": ("127.0.0.1", 10000)}).start() -> "http://127.0.0.1:P"``.

    Runs its own event loop in a daemon thread, so synchronous callers (drivers that spawn AzCopy)
    can use it; ``stop()`` closes every connection.
    """

    def __init__(self, routes: dict[str, tuple[str, int]], host: str = "127.0.0.1") -> None:
        self.routes = {name.lower(): target for name, target in routes.items()}
        self.host = host
        self.port = 0
        self.refused: list[str] = []  # destinations answered with 403
        self.forwarded = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._handle, self.host, 0)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="lab-proxy", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self.url

    def stop(self) -> None:
        loop = self._loop
        if loop is None or self._thread is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        self._thread.join(10)
        self._loop = None

    def __enter__(self) -> LabProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- connection handling ----------------------------------------------------------------

    def _route(self, authority: str) -> tuple[str, int] | None:
        host = authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority
        return self.routes.get(host.strip("[]").lower())

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass  # stop() cancels open connections
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > _MAX_HEAD:
            return
        request_line, *header_lines = head[:-4].split(b"\r\n")
        method, target, version = request_line.decode("latin-1").split(" ", 2)
        if method == "CONNECT":
            route = self._route(target)
            if route is None:
                return await self._refuse(writer, target)
            up_reader, up_writer = await asyncio.open_connection(*route)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            self.forwarded += 1
            return await self._pipe_both(reader, writer, up_reader, up_writer)

        url = urllib.parse.urlsplit(target)
        route = self._route(url.netloc) if url.scheme == "http" else None
        if route is None:
            return await self._refuse(writer, target)
        path = url.path or "/"
        if url.query:
            path += "?" + url.query
        headers = [
            h for h in header_lines if h.split(b":", 1)[0].strip().lower() not in _HOP_HEADERS
        ]
        if not any(h.lower().startswith(b"host:") for h in headers):
            headers.append(b"Host: " + url.netloc.encode("latin-1"))
        headers.append(b"Connection: close")
        up_reader, up_writer = await asyncio.open_connection(*route)
        up_writer.write(f"{method} {path} {version}\r\n".encode("latin-1"))
        up_writer.write(b"\r\n".join(headers) + b"\r\n\r\n")
        self.forwarded += 1
        await self._pipe_both(reader, writer, up_reader, up_writer)

    async def _refuse(self, writer: asyncio.StreamWriter, target: str) -> None:
        self.refused.append(target)
        body = f"lab proxy: {target} is not a lab endpoint\n".encode()
        writer.write(
            b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()

    @staticmethod
    async def _pipe_both(
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(256 * 1024):
                    dst.write(data)
                    await dst.drain()
            finally:
                with contextlib.suppress(Exception):
                    dst.write_eof()

        upload = asyncio.ensure_future(pipe(reader, up_writer))
        try:
            # the response ends the exchange: the upstream closes after it (Connection: close)
            await pipe(up_reader, writer)
        finally:
            upload.cancel()
            await asyncio.gather(upload, return_exceptions=True)
            up_writer.close()

"""A recording reverse proxy on loopback: forwards every request to a target unchanged and keeps
the shape of each one (method, path, query names, header names, status) as a Call.

Clients are pointed at ``proxy.account_url`` instead of the target's; the raw path, query and
headers (Host included, so virtual-host requests stay virtual-host) reach the target as sent.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import aiohttp
from aiohttp import web
from yarl import URL

from harness.http import client_ssl_context
from harness.labca import server_ssl_context
from harness.targets.base import Endpoint

_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "upgrade",
    "proxy-authorization",
    "trailer",
}


@dataclass
class Call:
    """One request as the proxy saw it (values dropped later by the contract model)."""

    method: str
    raw_path: str  # percent-encoded path without the query
    host: str
    query: list[tuple[str, str]]
    headers: dict[str, str]  # lower-cased names
    status: int
    phase: str = ""  # scenario step / usage label when the call was made
    tool: str = ""  # the client that made it
    error_code: str | None = None
    step: str = ""  # the scenario step's name
    started: float = 0.0  # unix seconds when the request reached the proxy
    elapsed_ms: float = 0.0  # request arrival to the upstream's last response byte
    service: str = "blob"  # "identity": a call to the token service (token acquisition)


@dataclass
class CallTiming:
    """What the proxy's clock says about a set of calls: their span and per-request times."""

    first_start: float
    last_end: float
    latencies_ms: list[float]

    @property
    def span_s(self) -> float:
        return self.last_end - self.first_start


def timing_of(calls: list[Call]) -> CallTiming | None:
    """First request to last response over ``calls`` (None when there were none)."""
    timed = [c for c in calls if c.started]
    if not timed:
        return None
    return CallTiming(
        min(c.started for c in timed),
        max(c.started + c.elapsed_ms / 1000 for c in timed),
        [c.elapsed_ms for c in timed],
    )


class RecordingProxy:
    """``with RecordingProxy(upstream) as proxy:`` → clients use ``proxy.url``; calls in
    ``proxy.calls``. Set ``proxy.phase`` between steps to label when a call is used."""

    def __init__(
        self,
        upstream: str,
        host: str = "127.0.0.1",
        *,
        ca_bundle: Path | None = None,
        tls: tuple[Path, Path] | None = None,
        service: str = "blob",
    ) -> None:
        parts = urlsplit(upstream)
        self.service = service  # what the upstream is: the Blob service or a token service
        self.upstream = f"{parts.scheme}://{parts.netloc}"
        self.host = host
        self.ca_bundle = ca_bundle  # an https upstream is verified against it
        self.tls = tls  # (cert, key): clients reach the proxy over https too
        self.port = 0
        self.phase = ""
        self.tool = ""
        self.step = ""
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def endpoint_for(self, endpoint: Endpoint) -> Endpoint:
        """The same account reached through this proxy (path style on loopback)."""
        path = urlsplit(endpoint.blob_url).path
        return replace(endpoint, blob_url=self.url + path, proxy_url=None, virtual_host_url=None)

    # ---- lifecycle ----------------------------------------------------------------------
    def start(self) -> str:
        self._thread = threading.Thread(target=self._serve, name="contract-proxy", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error:
            raise RuntimeError(f"recording proxy failed to start: {self._error}")
        return self.url

    def stop(self) -> None:
        if self._loop and self._thread:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._thread = None

    def __enter__(self) -> RecordingProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._startup())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.close()

    async def _startup(self) -> None:
        self._session = aiohttp.ClientSession(
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=600),
            connector=aiohttp.TCPConnector(limit=256, ssl=client_ssl_context(self.ca_bundle)),
        )
        app = web.Application(client_max_size=1 << 34)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, auto_decompress=False)
        await self._runner.setup()
        tls = server_ssl_context(*self.tls) if self.tls else None
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=tls)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _shutdown(self) -> None:
        if self._runner:
            await self._runner.cleanup()
        if self._session:
            await self._session.close()

    # ---- forwarding -------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        started, t0 = time.time(), time.perf_counter()
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        target = URL(self.upstream + request.raw_path, encoded=True)
        async with self._session.request(
            request.method,
            target,
            headers=headers,
            data=body or None,
            allow_redirects=False,
            skip_auto_headers=("Content-Type", "User-Agent", "Accept-Encoding", "Accept"),
        ) as upstream:
            payload = await upstream.read()
            out_headers = [
                (k, v)
                for k, v in upstream.headers.items()
                if k.lower() not in _HOP and k.lower() != "content-length"
            ]
            status = upstream.status
            error_code = upstream.headers.get("x-ms-error-code")
            length = upstream.headers.get("Content-Length")
        elapsed_ms = (time.perf_counter() - t0) * 1000
        path, _, qs = request.raw_path.partition("?")
        call = Call(
            method=request.method,
            raw_path=path,
            host=request.host,
            query=parse_qsl(qs, keep_blank_values=True),
            headers={k.lower(): v for k, v in request.headers.items()},
            status=status,
            phase=self.phase,
            tool=self.tool,
            step=self.step,
            error_code=error_code,
            started=started,
            elapsed_ms=elapsed_ms,
            service=self.service,
        )
        with self._lock:
            self.calls.append(call)
        resp = web.Response(status=status, body=payload if request.method != "HEAD" else None)
        for name, value in out_headers:
            resp.headers.add(name, value)
        if request.method == "HEAD" and length is not None:
            resp.headers["Content-Length"] = length  # HEAD keeps the entity's length
        return resp

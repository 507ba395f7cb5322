"""Connection hygiene of one worker: nothing waits forever, and no client takes the service down.

aiohttp runs one ``RequestHandler`` per TCP connection; ``FacadeProtocol`` adds what it lacks:

- keep-alive idle: aiohttp's own ``keepalive_timeout`` closes a connection that has no request
  in progress that long after it opened or after its last response;
- request head: from the first byte of a request, its head (request line and headers) must be
  complete within ``head_timeout_s`` (slowloris);
- body progress: a request body that receives no byte for ``body_timeout_s`` while the server
  waits for it closes the connection (the upload is aborted, as on a client hang-up). A body
  that receives less than 16 KiB in a ``body_stall_s`` window (nothing at all, or a trickle)
  leaves the ``--max-inflight`` budget (``InFlight``) until it does again, so stalled uploads
  cannot make everyone else get 503.
- errors the HTTP layer itself answers (malformed framing) get Azure's error shape.

``Connections`` (one per worker) knows every connection, sweeps them for the timeouts, and keeps
the count under ``max_connections``: a new connection over the limit sheds the connection idle
the longest, else the body stalled the longest, else it is closed itself.

aiohttp offers no public switch for its protocol class: ``FacadeRunner`` overrides the runner's
``_make_server`` hook (the one ``BaseRunner`` subclasses implement) to serve ``FacadeServer``,
a ``web.Server`` whose connections are ``FacadeProtocol``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMethod,
    BadStatusLine,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
)
from aiohttp.web_protocol import RequestHandler, _ErrInfo

from reference_server.config import ServerConfig
from reference_server.errors import StorageError
from reference_server.store.locks import MAX_CACHED_LOCKS

log = logging.getLogger("reference_server")

Render = Callable[[StorageError, web.BaseRequest], web.StreamResponse]
FD_RESERVE = MAX_CACHED_LOCKS + 512  # descriptors kept for lock files, temp files, threads
# A body that receives less than this in a body_stall_s window is not making progress (a trickle
# of a byte now and then must not hold a place in the budget). Parking costs a request nothing.
MIN_PROGRESS_BYTES = 16 * 1024


class InFlight:
    """Requests in progress on this worker, against the ``--max-inflight`` budget. Requests whose
    body waits on its client are parked: they are out of the budget until their client sends."""

    __slots__ = ("active", "limit", "parked")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self.parked = 0

    def enter(self) -> Ticket | None:
        """A place in the budget, or None when it is full (503 ServerBusy)."""
        if self.active >= self.limit:
            return None
        self.active += 1
        return Ticket(self)


class Ticket:
    """One admitted request's place in ``InFlight``."""

    __slots__ = ("_inflight", "done", "parked")

    def __init__(self, inflight: InFlight) -> None:
        self._inflight = inflight
        self.parked = False
        self.done = False

    def park(self) -> None:
        if not self.parked and not self.done:
            self.parked = True
            self._inflight.active -= 1
            self._inflight.parked += 1

    def unpark(self) -> None:
        # back in the budget even when it is full: the request was admitted already
        if self.parked and not self.done:
            self.parked = False
            self._inflight.parked -= 1
            self._inflight.active += 1

    def leave(self) -> None:
        if not self.done:
            self.done = True
            if self.parked:
                self._inflight.parked -= 1
            else:
                self._inflight.active -= 1


def fd_budget() -> int:
    """Connections this process can hold: the soft descriptor limit (raised to the hard one)
    less a reserve for the store's own files."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return max(64, soft - FD_RESERVE)


class Connections:
    """Every connection of this worker: the connection limit, the timeouts, their counters."""

    def __init__(self, config: ServerConfig, render: Render) -> None:
        self.head_timeout_s = config.head_timeout_s
        self.body_timeout_s = config.body_timeout_s
        self.body_stall_s = config.body_stall_s
        self.keepalive_timeout_s = config.keepalive_timeout_s
        self.limit = min(config.max_connections, fd_budget())
        if self.limit < config.max_connections:
            log.warning(
                "max_connections lowered to %d by the descriptor limit (ulimit -n)", self.limit
            )
        self.render = render
        # insertion-ordered: the first entry is the one idle (or stalled) the longest
        self._all: dict[FacadeProtocol, None] = {}
        self._idle: dict[FacadeProtocol, None] = {}
        self._stalled: dict[FacadeProtocol, None] = {}
        self.stats: Counter[str] = Counter()

    @property
    def tick_s(self) -> float:
        """How often the sweep runs: a quarter of the shortest timeout, within [0.05, 1] s."""
        shortest = min(self.head_timeout_s, self.body_timeout_s, self.body_stall_s)
        return min(1.0, max(0.05, shortest / 4))

    def opened(self, conn: FacadeProtocol) -> None:
        self._all[conn] = None
        self._idle[conn] = None
        if len(self._all) > self.limit:
            self._shed(conn)

    def closed(self, conn: FacadeProtocol) -> None:
        self._all.pop(conn, None)
        self._idle.pop(conn, None)
        self._stalled.pop(conn, None)

    def busy(self, conn: FacadeProtocol) -> None:
        self._idle.pop(conn, None)

    def idle(self, conn: FacadeProtocol) -> None:
        self._stalled.pop(conn, None)
        self._idle.pop(conn, None)
        if conn in self._all:  # (a request can end after its connection was closed)
            self._idle[conn] = None  # to the end: idle the shortest

    def stalled(self, conn: FacadeProtocol, is_stalled: bool) -> None:
        if is_stalled and conn in self._all:
            self._stalled.setdefault(conn, None)
        else:
            self._stalled.pop(conn, None)

    def _shed(self, newcomer: FacadeProtocol) -> None:
        for pool, reason in ((self._idle, "shed_idle"), (self._stalled, "shed_stalled")):
            victim = next((c for c in pool if c is not newcomer), None)
            if victim is not None:
                self._close(victim, reason)
                return
        self._close(newcomer, "refused")  # every connection has a request making progress

    def _close(self, conn: FacadeProtocol, reason: str) -> None:
        self.stats[reason] += 1
        log.debug("closing connection from %s: %s", conn.peername, reason)
        self.closed(conn)
        conn.force_close()

    def sweep(self, now: float) -> None:
        """Close the connections past a timeout; park requests whose body stalled."""
        for conn in list(self._all):
            reason = conn.overdue(now)
            if reason:
                self._close(conn, reason)

    async def watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.tick_s)
            self.sweep(loop.time())


class FacadeProtocol(RequestHandler):
    """aiohttp's per-connection handler, with head and body timeouts and Azure-shaped framing
    errors. ``begin``/``end`` are called by the app's dispatch around each request."""

    __slots__ = (
        "_guard",
        "_head_since",
        "_head_start",
        "_in_request",
        "_payload",
        "_progress_at",
        "_ticket",
        "_window_bytes",
        "_window_start",
    )

    def __init__(self, manager: web.Server, *, guard: Connections, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._payload: Any = None
        self._ticket: Ticket | None = None
        self._in_request = False
        self._head_since: float | None = None
        self._head_start = b""
        self._progress_at = 0.0
        self._window_start = 0.0  # the current body_stall_s window and its body bytes
        self._window_bytes = 0

    # ---- lifecycle --------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._guard.opened(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._guard.closed(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        now = self._loop.time()
        self._progress_at = now
        self._window_bytes += len(data)
        ticket = self._ticket
        if ticket is not None and ticket.parked and self._window_bytes >= MIN_PROGRESS_BYTES:
            ticket.unpark()
            self._guard.stalled(self, False)
        if self._head_since is None and data and not self._in_request and self._body_done():
            self._head_since = now  # the first byte of the next request head
            self._head_start = data[:512]
        super().data_received(data)
        if self._in_request and self._messages and not self._body_done():
            self._fail_body()

    def _fail_body(self) -> None:
        """A framing error inside a body (a bad chunk) makes aiohttp queue a 400 behind the
        request and drop the body's parser, so the handler would wait for the rest forever: end
        the body with the error instead (the handler answers 400), then close the connection."""
        msg = self._messages[-1][0]
        if isinstance(msg, _ErrInfo):
            self._payload.set_exception(web.RequestPayloadError(msg.message))
            self._payload.feed_eof()
            self.close()

    def resume_reading(self, resume_parser: bool = True) -> None:
        if self._reading_paused:  # (aiohttp calls this after every read, paused or not)
            # the server held the body back; waiting on the client starts again now
            self._progress_at = self._window_start = self._loop.time()
            self._window_bytes = 0
        super().resume_reading(resume_parser)

    def _body_done(self) -> bool:
        p = self._payload
        return p is None or p.is_eof() or p.exception() is not None

    def begin(self, request: web.BaseRequest, ticket: Ticket | None) -> None:
        self._in_request = True
        self._payload = request.content
        self._ticket = ticket
        self._head_since = None
        self._progress_at = self._window_start = self._loop.time()
        self._window_bytes = 0
        self._guard.busy(self)
        if self._messages and not self._body_done():  # the body broke before we got here
            self._fail_body()

    def end(self) -> None:
        self._in_request = False
        self._ticket = None
        self._guard.idle(self)

    def overdue(self, now: float) -> str | None:
        """Which timeout this connection is past, if any (parks a stalled body on the way)."""
        if self._in_request:
            if self._body_done() or self._reading_paused:
                return None  # no body owed, or the server (not the client) is behind
            if now - self._progress_at >= self._guard.body_timeout_s:
                return "body_timeout"
            if now - self._window_start >= self._guard.body_stall_s:
                slow = self._window_bytes < MIN_PROGRESS_BYTES
                self._window_start, self._window_bytes = now, 0
                if slow and self._ticket is not None and not self._ticket.parked:
                    self._ticket.park()
                    self._guard.stalled(self, True)
        elif self._head_since is not None and now - self._head_since >= self._guard.head_timeout_s:
            return "head_timeout"
        return None

    # ---- errors the HTTP layer answers ------------------------------------------------------
    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's renderer of its own errors (framing 400s, unhandled 500s), here with
        Azure's error shape; like aiohttp's, the connection closes after it."""
        if self.transport is None or isinstance(exc, ConnectionError):
            raise ConnectionResetError("the client connection is gone")
        if request.writer.output_size > 0:
            raise ConnectionError("a response was sent already: cannot send the error")
        if isinstance(exc, HttpProcessingError):
            # client input, not a server fault: no traceback
            log.debug("bad request framing from %s: %s", request.remote, exc)
            err = framing_error(exc, self._head_start)
        else:
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
            err = StorageError("OperationTimedOut" if status == 504 else "InternalError")
        resp = self._guard.render(err, request)
        resp.force_close()
        return resp


def framing_error(exc: HttpProcessingError, head_start: bytes = b"") -> StorageError:
    """The Azure error for a request aiohttp's parser refused. Statuses as Azure's front end
    answers (414 for an over-long request line, 431 for over-long or too many headers), codes
    from Azure's table of common REST errors."""
    text = exc.message if isinstance(exc.message, str) else str(exc)
    if isinstance(exc, BadHttpMethod):
        return StorageError("InvalidHttpVerb")
    if isinstance(exc, LineTooLong):
        if _in_request_line(exc, head_start):
            return StorageError(
                "RequestUrlFailedToParse", "The request line is too long.", http_status=414
            )
        return StorageError("InvalidHeaderValue", "A request header is too long.", http_status=431)
    if isinstance(exc, BadStatusLine | InvalidURLError):
        return StorageError("RequestUrlFailedToParse")
    if "Too many headers" in text:
        return StorageError("InvalidHeaderValue", "Too many request headers.", http_status=431)
    for header in ("Host", "Content-Length", "Transfer-Encoding"):
        if header in text:
            if header == "Host" and "Missing" in text:
                return StorageError("MissingRequiredHeader", details={"HeaderName": "Host"})
            return StorageError("InvalidHeaderValue", details={"HeaderName": header})
    if isinstance(exc, InvalidHeader) or "header" in text.lower():
        return StorageError("InvalidHeaderValue")
    return StorageError("InvalidInput")


def _in_request_line(exc: LineTooLong, head_start: bytes) -> bool:
    """LineTooLong quotes the start of the line it gave up on; the request line's target is
    the second word of the head."""
    quoted = exc.args[0] if exc.args else b""
    if isinstance(quoted, str):
        quoted = quoted.encode("latin-1", "replace")
    quoted = quoted.removesuffix(b"...")[:64]
    first_line = head_start.split(b"\r\n", 1)[0].split(b"\n", 1)[0]
    parts = first_line.split(b" ", 2)
    return len(parts) > 1 and bool(quoted) and parts[1].startswith(quoted)


@contextlib.contextmanager
def watched(request: web.BaseRequest, ticket: Ticket | None) -> Iterator[None]:
    """Marks the request in progress on its connection (a no-op under another runner)."""
    conn = request.protocol
    if not isinstance(conn, FacadeProtocol):
        yield
        return
    conn.begin(request, ticket)
    try:
        yield
    finally:
        conn.end()


class FacadeServer(web.Server):
    """aiohttp's low-level server, making ``FacadeProtocol`` connections."""

    def __init__(self, handler: Any, *, guard: Connections, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.guard = guard

    def __call__(self) -> FacadeProtocol:
        return FacadeProtocol(self, loop=self._loop, guard=self.guard, **self._kwargs)


CONNECTIONS = web.AppKey("connections", Connections)


class FacadeRunner(web.AppRunner):
    """An AppRunner serving ``FacadeServer``: the app's handler and settings, our protocol."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("keepalive_timeout", app[CONNECTIONS].keepalive_timeout_s)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        base = await super()._make_server()  # runs the app's startup and freezes it
        return FacadeServer(
            base.request_handler,
            request_factory=base.request_factory,
            handler_cancellation=base.handler_cancellation,
            loop=base._loop,
            guard=self.app[CONNECTIONS],
            **base._kwargs,
        )

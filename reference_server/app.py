"""The aiohttp application: one catch-all route that resolves, routes, authorizes, dispatches.

Every response gets ``x-ms-request-id``, ``x-ms-version`` and ``Date`` (on_response_prepare), and
every error is rendered here, once: Azure's XML body plus ``x-ms-error-code``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from reference_server import routing, unsupported
from reference_server.addressing import resolve
from reference_server.auth import Access, RequestView, authorize
from reference_server.auth import prepare as prepare_auth
from reference_server.auth.sas import redact
from reference_server.config import ServerConfig
from reference_server.connections import CONNECTIONS, Connections, InFlight, watched
from reference_server.copy import COPY_SERVICE, CopyService
from reference_server.errors import StorageError
from reference_server.handlers.common import MAX_XML_BODY, Ctx, blocking
from reference_server.store import Store
from reference_server.xmlbody import error_body, http_date

log = logging.getLogger("reference_server")

CONFIG = web.AppKey("config", ServerConfig)
STORE = web.AppKey("store", Store)
INFLIGHT = web.AppKey("inflight", InFlight)
DAY = 24 * 3600  # staging files idle this long belong to no live request


def error_response(err: StorageError, request: web.BaseRequest) -> web.Response:
    """The one renderer of Azure errors. 304 and HEAD answers carry no body."""
    headers = {"x-ms-error-code": err.code, **err.headers}
    if err.status == 304 or request.method == "HEAD":
        return web.Response(status=err.status, headers=headers)
    body = error_body(err.code, err.text, err.details)
    return web.Response(
        status=err.status, body=body, headers=headers, content_type="application/xml"
    )


async def _standard_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
    request["started"] = True
    _stamp(request, response, request.app[CONFIG].api_version)


def _stamp(request: web.BaseRequest, response: web.StreamResponse, api_version: str) -> None:
    h = response.headers
    h["x-ms-request-id"] = request.get("request_id") or str(uuid.uuid4())
    h["x-ms-version"] = request.headers.get("x-ms-version") or api_version
    h.setdefault("Date", http_date(time.time()))
    h["Server"] = "blob-facade-reference"
    client_id = request.headers.get("x-ms-client-request-id")
    if client_id:
        h["x-ms-client-request-id"] = client_id


def protocol_error_response(
    err: StorageError, request: web.BaseRequest, api_version: str
) -> web.Response:
    """Errors the HTTP layer answers before any route runs (malformed framing): no app hook
    stamps those, so the standard headers are set here."""
    response = error_response(err, request)
    _stamp(request, response, api_version)
    return response


async def dispatch(request: web.Request) -> web.StreamResponse:
    request["request_id"] = str(uuid.uuid4())
    config = request.app[CONFIG]
    ticket = request.app[INFLIGHT].enter()
    with watched(request, ticket):
        if ticket is None:
            busy = StorageError("ServerBusy", headers={"Retry-After": str(config.retry_after_s)})
            return error_response(busy, request)
        try:
            return await _dispatch(request, config)
        finally:
            ticket.leave()


async def _dispatch(request: web.Request, config: ServerConfig) -> web.StreamResponse:
    try:
        return await _handle(request, config)
    except StorageError as err:
        if request.get("started"):
            raise
        return error_response(err, request)
    except (ConnectionError, asyncio.CancelledError):
        raise
    except web.RequestPayloadError as exc:  # the body's framing broke (a bad chunk)
        if request.get("started"):
            raise
        log.debug("bad request body from %s: %s", request.remote, exc)
        return error_response(StorageError("InvalidInput", str(exc)), request)
    except Exception:
        if request.get("started"):
            raise
        log.exception("internal error on %s %s", request.method, redact(request.raw_path))
        return error_response(StorageError("InternalError"), request)


async def _handle(request: web.Request, config: ServerConfig) -> web.StreamResponse:
    target = resolve(request.host, request.raw_path, request.query.get("restype"))
    unsupported.refuse(target.level, request.query, request.headers)  # before anything acts
    route = routing.match(
        target.level,
        request.method,
        (request.query.get("restype") or "").lower() or None,
        (request.query.get("comp") or "").lower() or None,
        request.headers,
    )
    account = config.account(target.account)
    if account is None:
        raise StorageError("AccountNotFound")
    view = RequestView(
        method=request.method,
        raw_path=target.raw_path,
        query=list(request.query.items()),
        headers=request.headers,
        account=target.account,
        path_style=target.path_style,
        secure=request.secure,
        client_ip=request.remote,
    )
    access = Access(
        route.permission,
        route.resource_type,
        target.container,
        target.blob,
        is_read=request.method in ("GET", "HEAD"),
        service_sas=route.service_sas,
    )
    await prepare_auth(view, account, config)  # a bearer token's keys, fetched asynchronously
    request["principal"] = authorize(view, account, access)  # handlers needing the caller read it
    ctx = Ctx(request, target, request.app[STORE], config, request.app[COPY_SERVICE])
    return await route.handler(ctx)


async def _collect_blocks(app: web.Application) -> AsyncIterator[None]:
    """Periodically drop uncommitted blocks older than the configured age, and staging files
    idle for a day or more."""
    config, store = app[CONFIG], app[STORE]
    interval = max(1.0, min(3600.0, config.uncommitted_block_max_age_s / 4))

    async def loop() -> None:
        while True:
            try:
                await blocking(store.collect_uncommitted, config.uncommitted_block_max_age_s)
                # leftovers of a worker that crashed while others kept serving (no start sweep)
                await blocking(store.sweep_staging, max(config.uncommitted_block_max_age_s, DAY))
            except OSError:
                log.exception("collecting uncommitted blocks failed")
            await asyncio.sleep(interval)

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _watch_connections(app: web.Application) -> AsyncIterator[None]:
    connections = app[CONNECTIONS]
    task = asyncio.create_task(connections.watch())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    if connections.stats:  # timeouts and shedding, for the operator
        log.info("connections closed by the façade: %s", dict(connections.stats))


@web.middleware
async def _azure_shape(request: web.Request, handler: Any) -> web.StreamResponse:
    """aiohttp's own answers (a target no route matches, such as ``*``) in Azure's shape."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status == 404:
            return error_response(StorageError("InvalidUri"), request)
        return error_response(StorageError("InternalError", http_status=exc.status), request)


async def _expect(request: web.Request) -> web.StreamResponse | None:
    """``Expect: 100-continue`` as aiohttp answers it; any other expectation in Azure's error
    shape (aiohttp's own answer is a plain-text 417)."""
    expect = request.headers.get("Expect", "")
    if expect.lower() != "100-continue":
        err = StorageError("UnsupportedHeader", details={"HeaderName": "Expect"})
        return error_response(err, request)
    if request.version >= (1, 1):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0
    return None


def create_app(config: ServerConfig) -> web.Application:
    app = web.Application(client_max_size=MAX_XML_BODY, middlewares=[_azure_shape])
    app[CONFIG] = config
    app[STORE] = Store(config.data_root, [a.name for a in config.accounts])
    app[COPY_SERVICE] = copy = CopyService(app[STORE], config)
    app[INFLIGHT] = InFlight(config.max_inflight)
    app[CONNECTIONS] = Connections(
        config, lambda err, req: protocol_error_response(err, req, config.api_version)
    )
    app.on_response_prepare.append(_standard_headers)
    app.cleanup_ctx.append(_collect_blocks)
    app.cleanup_ctx.append(copy.lifecycle)
    app.cleanup_ctx.append(_watch_connections)
    # [\s\S]: a decoded path may hold a newline (%0A), which "." would not match
    app.router.add_route("*", r"/{tail:[\s\S]*}", dispatch, expect_handler=_expect)
    return app

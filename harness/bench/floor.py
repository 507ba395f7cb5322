"""The Python ceiling for a request shape: a minimal aiohttp server that does no storage work.

``python -m harness.bench.floor --port P [--workers N]`` answers every PUT with 201 once its body
is read, and every GET or HEAD with a fixed 1 KiB body, on as many forked worker processes (one
shared listening socket) and the same event loop (uvloop) as the reference façade. No
parsing of Blob names, no auth, no files: what is left is aiohttp's HTTP handling, so a façade's
small-request rate divided by this one says how much of the Python ceiling it reaches.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys

from aiohttp import web

BODY = b"\0" * 1024  # what every GET answers: the bench's small-object size
HEADERS = {"x-ms-version": "2025-07-05", "x-ms-request-id": "floor"}


async def _put(request: web.Request) -> web.Response:
    async for _ in request.content.iter_any():  # read the body, keep nothing
        pass
    return web.Response(status=201, headers=HEADERS)


async def _get(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="application/octet-stream", headers=HEADERS)


def app() -> web.Application:
    application = web.Application(client_max_size=0)
    application.router.add_route("PUT", "/{tail:.*}", _put)
    application.router.add_route("GET", "/{tail:.*}", _get)  # aiohttp answers HEAD from GET
    return application


def _serve(sock: socket.socket) -> None:
    try:
        import uvloop

        uvloop.install()  # the façade's default loop
    except ImportError:
        pass
    web.run_app(app(), sock=sock, print=None, access_log=None, handle_signals=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench.floor")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(4096)
    children = []
    for _ in range(max(1, args.workers) - 1):
        pid = os.fork()
        if pid == 0:
            _serve(sock)
            os._exit(0)
        children.append(pid)

    def stop_children(*_: object) -> None:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    try:
        _serve(sock)  # this process is a worker too
    finally:
        stop_children()
        for pid in children:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Sending a byte range of an open file as a response body, without the bytes entering Python
when the transport allows it (sendfile(2)). HTTP only: the handlers open the file (store) and
hand it here."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import BinaryIO

from aiohttp import web

FALLBACK_CHUNK = 4 * 1024 * 1024
SENDFILE_CHUNK = 64 * 1024 * 1024  # per sendfile call (the socket takes what fits)
SEND_STALL_S = 300.0  # a reader that takes nothing for this long is dropped

log = logging.getLogger("reference_server")


class FileSliceResponse(web.StreamResponse):
    """Sends ``count`` bytes of an open file from ``offset`` with sendfile(2): the loop's own
    (asyncio), or, where the loop has none (uvloop), non-blocking sendfile on a duplicate of the
    socket's fd driven by the loop's writability callbacks. Bytes never enter Python; large
    chunks read in a thread are the last resort (a transport without a socket, TLS)."""

    def __init__(
        self, file: BinaryIO | None, offset: int, count: int, status: int, headers: dict
    ) -> None:
        super().__init__(status=status, headers=headers)
        self.content_length = count
        self._file, self._offset, self._count = file, offset, count

    async def prepare(self, request: web.BaseRequest):  # type: ignore[override]
        if self.prepared:  # aiohttp prepares again after the handler returns
            return await super().prepare(request)
        try:
            return await self._send(request)
        except ConnectionError as exc:
            # The client went away (or the file shrank) mid-response. The connection cannot carry
            # another byte: close it and let aiohttp finish quietly instead of logging a traceback.
            log.debug("response to %s aborted: %s", request.remote, exc)
            if request.transport is not None:
                request.transport.close()
            return None

    async def _send(self, request: web.BaseRequest):  # type: ignore[no-untyped-def]
        writer = await super().prepare(request)
        if self._file is None or self._count == 0 or request.method == "HEAD":
            await self.write_eof()
            return writer
        loop = asyncio.get_running_loop()
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("Connection lost")
        try:
            await loop.sendfile(transport, self._file, self._offset, self._count)
        except NotImplementedError:
            sock = transport.get_extra_info("socket")
            await writer.drain()
            if (
                sock is not None
                and transport.get_extra_info("sslcontext") is None
                and transport.get_write_buffer_size() == 0
            ):
                await _sendfile_on_loop(
                    loop, sock.fileno(), self._file.fileno(), self._offset, self._count
                )
            else:
                await self._send_chunks(loop)
        await self.write_eof()
        return writer

    async def _send_chunks(self, loop: asyncio.AbstractEventLoop) -> None:
        offset, left = self._offset, self._count
        fd = self._file.fileno()  # type: ignore[union-attr]
        while left > 0:
            chunk = await loop.run_in_executor(None, _pread, fd, min(FALLBACK_CHUNK, left), offset)
            if not chunk:
                raise ConnectionResetError("blob shrank while being read") from None
            await self.write(chunk)
            offset += len(chunk)
            left -= len(chunk)


async def _sendfile_on_loop(
    loop: asyncio.AbstractEventLoop, sock_fd: int, file_fd: int, offset: int, left: int
) -> None:
    """sendfile(2) into a non-blocking socket, waiting for writability on the loop. A dup of the
    socket fd: the loop refuses watchers on a transport's own fd, and should the connection be
    closed meanwhile, the dup still names this socket, never a new connection's."""
    fd = os.dup(sock_fd)
    try:
        while left > 0:
            try:
                n = os.sendfile(fd, file_fd, offset, min(left, SENDFILE_CHUNK))
            except BlockingIOError:
                n = -1
            if n == 0:
                raise ConnectionResetError("blob shrank while being read")
            if n > 0:
                offset += n
                left -= n
                continue
            ready = loop.create_future()
            loop.add_writer(fd, _wake, ready)
            try:
                await asyncio.wait_for(ready, SEND_STALL_S)
            finally:
                loop.remove_writer(fd)
    finally:
        os.close(fd)


def _wake(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


def _pread(fd: int, n: int, offset: int) -> bytes:
    return os.pread(fd, n, offset)

"""One worker's copy machinery: the source fetcher, the job table, where a source is read.
``create_app`` builds it and hands it to every handler in the request context."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from reference_server.config import ServerConfig
from reference_server.copy.fetch import SourceBody, SourceFetcher, authorize_local, open_local
from reference_server.copy.jobs import CopyJobs
from reference_server.copy.source import CopySource
from reference_server.errors import StorageError
from reference_server.store import Store
from reference_server.threads import blocking


class CopyService:
    def __init__(self, store: Store, config: ServerConfig) -> None:
        self.store = store
        self.config = config
        self.fetcher = SourceFetcher()
        self.jobs = CopyJobs(self)

    def is_local(self, source: CopySource, request: web.BaseRequest) -> bool:
        """The source names an account of this façade, at the address the request came in on."""
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        return (
            source.account is not None
            and self.config.account(source.account) is not None
            and source.is_on(request.host, request.scheme, sockname)
        )

    async def finishes_at_once(
        self, source: CopySource, request: web.BaseRequest, dest_account: str
    ) -> bool:
        """True when an asynchronous Copy Blob can be finished before the answer: a source blob
        of the destination's own account on this façade, of at most ``config.sync_copy_max``
        bytes; larger ones, other accounts and remote sources run as jobs (status pending). The
        JavaScript SDK's poller, for one, expects such a copy to answer ``success`` at once."""
        if source.account != dest_account or not self.is_local(source, request):
            return False
        assert source.container and source.blob
        try:
            props = await blocking(
                self.store.get_blob, source.account, source.container, source.blob
            )
        except StorageError:
            return False  # the job path reports a missing source as Azure does
        return props.size <= self.config.sync_copy_max

    async def open(
        self,
        source: CopySource,
        request: web.BaseRequest,
        dest_account: str,
        start: int = 0,
        end: int | None = None,
        async_copy: bool = False,
    ) -> SourceBody:
        """Open the source (or a byte range of it): from disk when it is on this façade.
        ``async_copy``: the request is an asynchronous Copy Blob, whose same-account source may
        go without credentials under the destination's Shared Key (``authorize_local``)."""
        if self.is_local(source, request):
            authorize_local(
                source,
                self.config,
                dest_account,
                request.headers.get("Authorization", ""),
                request.remote,
                async_copy,
            )
            return await open_local(self.store, source, start, end)
        version = request.headers.get("x-ms-version") or self.config.api_version
        return await self.fetcher.open(source, start, end, version)

    async def open_resumed(self, source: CopySource, local: bool, api_version: str) -> SourceBody:
        """Re-open the source of a journalled job (authorized when the job was accepted)."""
        if local:
            return await open_local(self.store, source, 0, None)
        return await self.fetcher.open(source, 0, None, api_version)

    async def close(self) -> None:
        await self.jobs.close()
        await self.fetcher.close()

    async def lifecycle(self, _app: web.Application) -> AsyncIterator[None]:
        """aiohttp cleanup context: orphaned jobs resume when the worker starts serving; the
        jobs and source connections close when it stops."""
        self.jobs.resume_orphans()
        yield
        await self.close()


COPY_SERVICE = web.AppKey("copy_service", CopyService)

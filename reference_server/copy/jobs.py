"""The asynchronous Copy Blob job table.

The state a client sees lives in the destination blob's properties (x-ms-copy-id, -status,
-progress, ...), so HEAD shows it from any worker and it survives restarts. The work itself is
journalled in ``<data-root>/.copyjobs/<copy id>.json``; the worker running a job holds an flock on
its journal, so after a restart (or a worker crash) another worker finds the lock free and starts
the copy again from the source.

Life of a job: Copy Blob commits an empty placeholder blob with status ``pending`` and returns;
the job streams the source into a staging file, updating x-ms-copy-progress (without changing
the ETag), then commits the bytes conditioned on the placeholder's ETag. Abort Copy, an
overwrite or a delete change that ETag, so a copy that lost the race never lands.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from typing import Protocol

from reference_server.conditions import Conditions
from reference_server.copy.fetch import SourceBody
from reference_server.copy.source import CopySource
from reference_server.copy.state import finished_state, progress_state, update_copy_state
from reference_server.errors import StorageError
from reference_server.store import ContentSettings, Store
from reference_server.threads import blocking

log = logging.getLogger("reference_server.copy")
PROGRESS_INTERVAL_S = 1.0
# The job's own writes may not land any more: the blob was aborted, overwritten or deleted.
_SUPERSEDED = (
    "ConditionNotMet",
    "CopyIdMismatch",
    "NoPendingCopyOperation",
    "BlobNotFound",
    "ContainerNotFound",
)


@dataclass
class JobRecord:
    copy_id: str
    account: str
    container: str
    blob: str
    source_url: str
    source_authorization: str | None
    local: bool  # the source is on this façade (authorized when the job started)
    etag: str  # the placeholder's ETag: the final commit is conditioned on it
    content: dict
    metadata: dict[str, str]
    api_version: str


class JobHost(Protocol):
    """What a job needs from its worker (the CopyService): the store, and a way to re-open the
    source of a job resumed after a restart."""

    store: Store

    async def open_resumed(
        self, source: CopySource, local: bool, api_version: str
    ) -> SourceBody: ...


class CopyJobs:
    def __init__(self, service: JobHost) -> None:
        self.service = service
        self.dir = os.path.join(service.store.root, ".copyjobs")
        os.makedirs(self.dir, exist_ok=True)
        self.tasks: dict[str, asyncio.Task] = {}
        self.closing = False  # shutting down: journals stay, so the jobs resume on restart

    def _journal(self, copy_id: str) -> str:
        return os.path.join(self.dir, copy_id + ".json")

    def _claim(self, path: str) -> int | None:
        """Open and flock a journal file without waiting; None when another worker holds it."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # the source SAS is in it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def _write_journal(self, record: JobRecord) -> int:
        fd = self._claim(self._journal(record.copy_id))
        assert fd is not None, "a fresh copy id is claimed by no one"
        data = json.dumps(asdict(record)).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)
        return fd

    def _release(self, copy_id: str, fd: int) -> None:
        if not self.closing:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._journal(copy_id))
        os.close(fd)  # drops the flock

    async def start(self, record: JobRecord, body: SourceBody) -> None:
        """Run a job whose placeholder is committed and whose source is already open."""
        fd = await blocking(self._write_journal, record)
        self._spawn(record, body, fd)

    def _spawn(self, record: JobRecord, body: SourceBody | None, fd: int) -> None:
        task = asyncio.create_task(self._run(record, body, fd))
        self.tasks[record.copy_id] = task
        task.add_done_callback(lambda _t: self.tasks.pop(record.copy_id, None))

    async def _run(self, record: JobRecord, body: SourceBody | None, fd: int) -> None:
        store = self.service.store
        done = total = 0
        upload = None
        try:
            if body is None:  # resumed after a restart: open the source again, if still wanted
                props = await blocking(
                    store.get_blob, record.account, record.container, record.blob
                )
                if props.copy.get("x-ms-copy-id") != record.copy_id or props.etag != record.etag:
                    return  # finished, aborted or overwritten before the restart
                source = CopySource.from_headers(
                    {
                        "x-ms-copy-source": record.source_url,
                        "x-ms-copy-source-authorization": record.source_authorization,
                    }
                )
                body = await self.service.open_resumed(source, record.local, record.api_version)
            total = body.props.size
            upload = await blocking(
                store.new_upload, record.account, record.container, want_md5=True, limit=1 << 62
            )
            last = time.monotonic()
            async for chunk in body.chunks():
                upload.write(chunk)
                done += len(chunk)
                if time.monotonic() - last >= PROGRESS_INTERVAL_S:
                    last = time.monotonic()
                    await self._update(record, progress_state(done, total))
            content = ContentSettings.from_dict(record.content)
            content.content_md5 = content.content_md5 or upload.md5_b64
            await blocking(
                store.put_blob,
                record.account,
                record.container,
                record.blob,
                upload,
                content,
                record.metadata,
                Conditions(if_match=(record.etag,)),
                {
                    "x-ms-copy-id": record.copy_id,
                    "x-ms-copy-source": CopySource.from_headers(
                        {"x-ms-copy-source": record.source_url}
                    ).redacted,
                    **finished_state("success", done, total),
                },
            )
            upload = None
        except asyncio.CancelledError:
            raise
        except StorageError as err:
            if err.code not in _SUPERSEDED:
                with contextlib.suppress(StorageError):
                    state = finished_state(
                        "failed", done, total, f"{err.status} {err.code} {err.text}"
                    )
                    await self._update(record, state)
        except Exception:
            log.exception("copy %s failed", record.copy_id)
            with contextlib.suppress(StorageError):
                await self._update(
                    record, finished_state("failed", done, total, "500 InternalError")
                )
        finally:
            if upload is not None:
                upload.abort()
            if body is not None:
                await body.close()
            self._release(record.copy_id, fd)

    async def _update(self, record: JobRecord, state: dict[str, str]) -> None:
        await blocking(
            update_copy_state,
            self.service.store,
            record.account,
            record.container,
            record.blob,
            record.copy_id,
            state,
            False,
        )

    async def abort(self, account: str, container: str, blob: str, copy_id: str) -> None:
        """Abort Copy: status aborted, new ETag (so the job's commit cannot land), task cancelled
        when it runs in this worker (another worker's job stops at its next progress update)."""
        props = await blocking(self.service.store.get_blob, account, container, blob)
        total = props.copy.get("x-ms-copy-progress", "0/0").rsplit("/", 1)[-1]
        done = props.copy.get("x-ms-copy-progress", "0/0").split("/", 1)[0]
        await blocking(
            update_copy_state,
            self.service.store,
            account,
            container,
            blob,
            copy_id,
            finished_state("aborted", int(done or 0), int(total or 0), "Aborted by Abort Copy."),
            True,
        )
        task = self.tasks.get(copy_id)
        if task is not None:
            task.cancel()

    def resume_orphans(self) -> int:
        """Start the journalled jobs no live worker holds (after a restart or a crash)."""
        resumed = 0
        for name in sorted(os.listdir(self.dir)):
            if not name.endswith(".json"):
                continue
            path = os.path.join(self.dir, name)
            fd = self._claim(path)
            if fd is None:
                continue
            try:
                record = JobRecord(**json.loads(os.pread(fd, 1 << 20, 0) or b"{}"))
            except (TypeError, ValueError):
                os.unlink(path)
                os.close(fd)
                continue
            self._spawn(record, None, fd)
            resumed += 1
        return resumed

    async def close(self) -> None:
        self.closing = True
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

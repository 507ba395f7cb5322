"""The Store: the one object handlers get (``Ctx.store``), every method a short composition of
the modules below it. Blocking methods; the HTTP layer runs them in threads (threads.blocking).

    layout     where everything lives under the data root, the name → path mapping
    atomic     temp files, whole-file replacement, trash
    locks      the per-blob commit flocks shared by worker processes
    upload     request bodies streamed into temp files (MD5 on the way)
    records    property records: blob (xattr or sidecar), container, service
    blocks     uncommitted blocks and their limits
    commit     Put Blob, Put Block List (assembly), Delete Blob
    containers create, delete, list containers
    listing    the List Blobs walk in lexicographic order
    sweeps     clean-up of abandoned blocks and staging leftovers
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from reference_server.conditions import Conditions
from reference_server.errors import StorageError
from reference_server.store.atomic import TempFiles
from reference_server.store.blocks import BlockStaging
from reference_server.store.commit import Commits
from reference_server.store.containers import Containers
from reference_server.store.layout import Layout
from reference_server.store.listing import Listing
from reference_server.store.locks import CommitLocks
from reference_server.store.model import (
    BlobProps,
    BlockInfo,
    ContainerProps,
    ContentSettings,
    ListPage,
    OpenBlob,
)
from reference_server.store.names import check_container_name
from reference_server.store.records import Records
from reference_server.store.sweeps import collect_uncommitted, sweep_staging
from reference_server.store.upload import Upload


class Store:
    """All file I/O of the façade, on one data root."""

    def __init__(self, root: Path, accounts: list[str]) -> None:
        self._layout = layout = Layout(root, accounts)
        self.root = layout.root
        self.staging = layout.staging
        self._temp = TempFiles(layout.staging)
        self._locks = CommitLocks()
        self._records = Records(layout, self._temp, self._locks)
        self._blocks = BlockStaging(layout, self._temp)
        self._commits = Commits(layout, self._temp, self._locks, self._records, self._blocks)
        self._containers = Containers(layout, self._temp, self._locks, self._records)
        self._listing = Listing()

    # ---- service -----------------------------------------------------------------------
    def get_service_properties(self, acct: str) -> bytes | None:
        return self._records.service_properties(acct)

    def set_service_properties(self, acct: str, body: bytes) -> None:
        self._records.set_service_properties(acct, body)

    # ---- containers --------------------------------------------------------------------
    def create_container(self, acct: str, ct: str, metadata: dict[str, str]) -> ContainerProps:
        return self._containers.create(acct, ct, metadata)

    def get_container(self, acct: str, ct: str) -> ContainerProps:
        return self._containers.get(acct, ct)

    def set_container_metadata(
        self, acct: str, ct: str, metadata: dict[str, str]
    ) -> ContainerProps:
        return self._containers.set_metadata(acct, ct, metadata)

    def delete_container(self, acct: str, ct: str) -> None:
        self._containers.delete(acct, ct)

    def list_containers(
        self, acct: str, prefix: str, marker: str | None, maxresults: int
    ) -> tuple[list[ContainerProps], str | None]:
        return self._containers.list(acct, prefix, marker, maxresults)

    # ---- blob reads --------------------------------------------------------------------
    def get_blob(self, acct: str, ct: str, name: str) -> BlobProps:
        self._layout.require_container(acct, ct)
        props = self._records.current(acct, ct, name)
        if props is None:
            raise StorageError("BlobNotFound")
        return props

    def open_blob(self, acct: str, ct: str, name: str, read_up_to: int = 0) -> OpenBlob:
        """Open for reading; the properties describe exactly the opened version (fstat). A blob
        of at most ``read_up_to`` bytes is also read whole (``content``), from the opened file."""
        self._layout.require_container(acct, ct)
        opened = self._records.open(acct, ct, name)
        size = opened.props.size
        if size <= read_up_to:
            data = os.pread(opened.file.fileno(), size, 0)
            if len(data) == size:  # a file shrunk by another program is sent by the slow path
                opened.content = data
        return opened

    def list_blobs(
        self,
        acct: str,
        ct: str,
        prefix: str,
        delimiter: str | None,
        marker: str | None,
        maxresults: int,
        include_uncommitted: bool = False,
    ) -> ListPage:
        """One page of List Blobs. ``include_uncommitted``: blobs with only staged blocks too
        (include=uncommittedblobs), with Content-Length 0."""
        ct_dir = self._layout.require_container(acct, ct)
        records = self._records
        staged = records.uncommitted_names(acct, ct) if include_uncommitted else []

        def describe_staged(name: str) -> BlobProps | None:
            return records.uncommitted(acct, ct, name)

        def page(sidecars: bool) -> ListPage:
            def describe(name: str, st: os.stat_result, path: str) -> BlobProps:
                return records.props_for(acct, ct, name, st, path, sidecars)

            return self._listing.page(
                ct_dir, prefix, delimiter, marker, maxresults, describe, staged, describe_staged
            )

        if records.has_sidecars(acct, ct):
            return page(True)
        result = page(False)
        # A first sidecar written meanwhile may describe a blob on this page: list it again.
        return page(True) if records.has_sidecars(acct, ct) else result

    # ---- blob writes -------------------------------------------------------------------
    def new_upload(
        self,
        acct: str,
        ct: str,
        *,
        want_md5: bool,
        limit: int,
        expect_md5: tuple[bytes | None, ...] = (),
        expect_crc64: bytes | None = None,
    ) -> Upload:
        """An upload whose file is made (after a container check) by its first write, in
        whichever thread that runs. ``expect_md5``: digests ``finish`` verifies (Md5Mismatch);
        ``expect_crc64``: the CRC64 it verifies (Crc64Mismatch), computed only when given."""
        check_container_name(ct)

        def open_temp() -> tuple[int, str]:
            self._layout.require_container(acct, ct)
            return self._temp.open("up-")

        return Upload(open_temp, want_md5, limit, expect_md5, expect_crc64)

    def put_blob(
        self,
        acct: str,
        ct: str,
        name: str,
        upload: Upload,
        content: ContentSettings,
        metadata: dict[str, str],
        conditions: Conditions,
        copy: dict[str, str] | None = None,
    ) -> BlobProps:
        """Commit the uploaded body as the blob. ``copy``: the copy state to record with it
        (kept as given, for the copy package)."""
        return self._commits.put_blob(acct, ct, name, upload, content, metadata, conditions, copy)

    def set_blob_properties(
        self,
        acct: str,
        ct: str,
        name: str,
        content: ContentSettings | None,
        metadata: dict[str, str] | None,
        conditions: Conditions,
    ) -> BlobProps:
        """Replace the content headers or the metadata of a blob (new ETag, Last-Modified)."""

        def change(props: BlobProps) -> bool:
            conditions.check_write(props.etag, props.last_modified)
            if content is not None:
                props.content = content
            if metadata is not None:
                props.metadata = dict(metadata)
            return True

        return self.update_blob(acct, ct, name, change)

    def update_blob(
        self, acct: str, ct: str, name: str, change: Callable[[BlobProps], bool]
    ) -> BlobProps:
        """Change the property record of an existing blob under its commit lock: ``change``
        edits the properties in place (or raises, and nothing is written) and returns True
        when the blob gets a new ETag and Last-Modified."""
        self._layout.require_container(acct, ct)
        return self._records.update(acct, ct, name, change)

    def delete_blob(self, acct: str, ct: str, name: str, conditions: Conditions) -> None:
        self._commits.delete_blob(acct, ct, name, conditions)

    # ---- blocks ------------------------------------------------------------------------
    def stage_block(self, acct: str, ct: str, name: str, block_id: str, upload: Upload) -> None:
        self._blocks.stage(acct, ct, name, block_id, upload)

    def get_block_list(
        self, acct: str, ct: str, name: str
    ) -> tuple[BlobProps | None, list[BlockInfo], list[BlockInfo]]:
        self._layout.require_container(acct, ct)
        current = self._records.current(acct, ct, name)
        staged = self._blocks.staged(acct, ct, name)
        uncommitted = sorted(staged.items(), key=lambda kv: (kv[1][2], kv[0]))
        if current is None and not uncommitted:
            raise StorageError("BlobNotFound")
        committed = [BlockInfo(b, s) for b, s in (current.committed_blocks if current else [])]
        return current, committed, [BlockInfo(b, v[1]) for b, v in uncommitted]

    def put_block_list(
        self,
        acct: str,
        ct: str,
        name: str,
        entries: list[tuple[str, str]],
        content: ContentSettings,
        metadata: dict[str, str],
        conditions: Conditions,
    ) -> BlobProps:
        """Commit ``entries`` [(Latest|Committed|Uncommitted, base64 id)] as the new blob."""
        return self._commits.put_block_list(acct, ct, name, entries, content, metadata, conditions)

    # ---- sweeps ------------------------------------------------------------------------
    def collect_uncommitted(self, max_age_s: float) -> int:
        """Delete block staging dirs untouched for ``max_age_s``; returns how many."""
        return collect_uncommitted(self._layout, self._blocks, max_age_s)

    def sweep_staging(self, max_age_s: float = 0, pid: int | None = None) -> int:
        """Delete staging leftovers untouched for ``max_age_s`` (all of them with 0), or only
        those of the dead worker ``pid``; returns how many (see sweeps.sweep_staging)."""
        return sweep_staging(self.staging, max_age_s, pid)

"""Containers: a directory in the namespace plus its record, made and removed all or nothing."""

from __future__ import annotations

import contextlib
import os
import time
import uuid

from reference_server.errors import StorageError
from reference_server.store.atomic import TempFiles
from reference_server.store.layout import Layout, is_container_name
from reference_server.store.locks import CommitLocks
from reference_server.store.model import ContainerProps
from reference_server.store.names import check_container_name
from reference_server.store.records import Records, stat_etag


class Containers:
    def __init__(
        self, layout: Layout, temp: TempFiles, locks: CommitLocks, records: Records
    ) -> None:
        self.layout = layout
        self.temp = temp
        self.locks = locks
        self.records = records

    def create(self, acct: str, ct: str, metadata: dict[str, str]) -> ContainerProps:
        check_container_name(ct)
        path = self.layout.container_dir(acct, ct)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            os.mkdir(path)
        except FileExistsError:
            raise StorageError("ContainerAlreadyExists") from None
        try:
            st = os.stat(path)
            props = ContainerProps(ct, stat_etag(st), st.st_mtime, dict(metadata))
            self.records.write_container(acct, props)
        except BaseException:
            # all or nothing: a container without its record (a full disk) must not remain
            with contextlib.suppress(OSError):
                os.rmdir(path)
            raise
        return props

    def get(self, acct: str, ct: str) -> ContainerProps:
        path = self.layout.require_container(acct, ct)
        return self.records.container(acct, ct, path)

    def set_metadata(self, acct: str, ct: str, metadata: dict[str, str]) -> ContainerProps:
        props = self.get(acct, ct)
        props.metadata = dict(metadata)
        props.last_modified = time.time()
        props.etag = "0x" + uuid.uuid4().hex[:16].upper()
        self.records.write_container(acct, props)
        return props

    def delete(self, acct: str, ct: str) -> None:
        """The namespace first (the container is gone for every reader at once), then its
        records and uncommitted blocks, and this worker's open lock files of it."""
        path = self.layout.require_container(acct, ct)
        meta = self.layout.meta_dir(acct, ct)
        self.temp.trash(path)
        self.temp.trash(meta)
        self.temp.trash(self.layout.container_blocks(acct, ct))
        self.locks.forget(meta + os.sep)
        self.temp.forget_dirs(meta + os.sep)

    def list(
        self, acct: str, prefix: str, marker: str | None, maxresults: int
    ) -> tuple[list[ContainerProps], str | None]:
        base = self.layout.account_dir(acct)
        try:
            names = sorted(
                e.name
                for e in os.scandir(base)
                if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")
            )
        except FileNotFoundError:
            names = []
        names = [
            n
            for n in names
            if n.startswith(prefix) and (not marker or n > marker) and is_container_name(n)
        ]
        page = names[:maxresults]
        props = []
        for n in page:
            with contextlib.suppress(FileNotFoundError):
                props.append(self.records.container(acct, n, os.path.join(base, n)))
        next_marker = page[-1] if len(names) > maxresults else None
        return props, next_marker

"""Property records: a blob's (content headers, metadata, committed block list, ETag, creation
time, and whatever copy state the copy package keeps there), a container's, the service's.

A blob's record is an xattr of its file when it fits, else a sidecar. It notes the inode, size
and mtime of the file it describes; when they no longer match (another program replaced or
rewrote the file) it is stale and properties are derived from ``stat``, as for files that never
had one. Container records are ``container.json``; the service's is its properties XML as sent.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import time
from collections.abc import Callable

from reference_server.errors import StorageError
from reference_server.store.atomic import TempFiles, read_json
from reference_server.store.layout import Layout
from reference_server.store.locks import CommitLocks
from reference_server.store.model import BlobProps, ContainerProps, ContentSettings, OpenBlob
from reference_server.store.names import name_hash

# Blob properties live in this xattr of the blob file when they fit (ext4 keeps a few KiB of
# xattrs per inode); larger ones (many blocks, big metadata) in a sidecar file.
PROPS_XATTR = "user.blobfacade.props"
MAX_XATTR_RECORD = 3072


def stat_etag(st: os.stat_result, salt: int = 0) -> str:
    """A strong ETag from a file's identity (inode, size, mtime): changes whenever they change."""
    raw = f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{salt}".encode()
    return "0x" + hashlib.blake2b(raw, digest_size=8).hexdigest().upper()


class Records:
    def __init__(self, layout: Layout, temp: TempFiles, locks: CommitLocks) -> None:
        self.layout = layout
        self.temp = temp
        self.locks = locks

    # ---- service and containers --------------------------------------------------------
    def service_properties(self, acct: str) -> bytes | None:
        try:
            with open(self.layout.service_record(acct), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def set_service_properties(self, acct: str, body: bytes) -> None:
        self.temp.write_file(self.layout.service_record(acct), body, prefix="svc-")

    def container(self, acct: str, ct: str, path: str) -> ContainerProps:
        """The record of the container whose directory is ``path`` (from stat when none)."""
        meta = read_json(self.layout.container_record(acct, ct))
        if meta is None:
            st = os.stat(path)
            return ContainerProps(ct, stat_etag(st), st.st_mtime)
        return ContainerProps(ct, meta["etag"], meta["last_modified"], meta.get("metadata", {}))

    def write_container(self, acct: str, props: ContainerProps) -> None:
        data = {
            "etag": props.etag,
            "last_modified": props.last_modified,
            "metadata": props.metadata,
        }
        self.temp.write_json(self.layout.container_record(acct, props.name), data)

    # ---- blobs -------------------------------------------------------------------------
    def _read(
        self, acct: str, ct: str, name: str, file: str | int, sidecars: bool = True
    ) -> dict | None:
        """The recorded properties of a blob file (path or fd): its xattr, else its sidecar
        (not looked for when ``sidecars`` is False: the container has none)."""
        try:
            raw = os.getxattr(file, PROPS_XATTR)
        except OSError:  # none (ENODATA), or a filesystem without user xattrs
            if not sidecars:
                return None
            return read_json(self.layout.sidecar(acct, ct, name_hash(name)))
        try:
            return json.loads(raw)
        except ValueError:
            return None

    def props_for(
        self,
        acct: str,
        ct: str,
        name: str,
        st: os.stat_result,
        file: str | int,
        sidecars: bool = True,
    ) -> BlobProps:
        """The properties of the blob file ``file`` whose stat is ``st`` (``sidecars``: as
        ``has_sidecars`` answered)."""
        meta = self._read(acct, ct, name, file, sidecars)
        if meta and (meta["ino"], meta["size"], meta["mtime_ns"]) == (
            st.st_ino,
            st.st_size,
            st.st_mtime_ns,
        ):
            return BlobProps(
                name,
                st.st_size,
                meta["etag"],
                meta["last_modified"],
                meta["creation_time"],
                ContentSettings.from_dict(meta["content"]),
                meta["metadata"],
                [tuple(b) for b in meta["blocks"]],
                meta.get("copy") or {},
            )
        # No record, or a stale one: the file was written by another program.
        return BlobProps(
            name,
            st.st_size,
            stat_etag(st),
            st.st_mtime,
            st.st_mtime,
            ContentSettings(content_type="application/octet-stream"),
        )

    def current(self, acct: str, ct: str, name: str) -> BlobProps | None:
        """Properties of the blob now on disk, or None (also for names that cannot map)."""
        path = self.layout.existing_path(acct, ct, name)
        if path is None:
            return None
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return self.props_for(acct, ct, name, st, path)

    def open(self, acct: str, ct: str, name: str) -> OpenBlob:
        """Open for reading; the properties describe exactly the opened version (fstat)."""
        path = self.layout.existing_path(acct, ct, name)
        if path is None:
            raise StorageError("BlobNotFound")
        try:  # unbuffered: every reader uses the fd (sendfile, pread), and no isatty/lseek calls
            f = open(path, "rb", buffering=0)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise StorageError("BlobNotFound") from None
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            f.close()
            raise StorageError("BlobNotFound")
        return OpenBlob(f, self.props_for(acct, ct, name, st, f.fileno()))

    def write(
        self,
        acct: str,
        ct: str,
        h: str,
        props: BlobProps,
        st: os.stat_result,
        file: str,
        *,
        fresh: bool = False,
    ) -> bool:
        """Record ``props`` for the blob file ``file`` (whose stat is ``st``): in an xattr of
        the file when it fits (one syscall, and it travels with the file's inode, so a commit
        stays one rename), else in a sidecar (temp + rename). True when the xattr holds it. A
        ``fresh`` file (a commit's temp file) has no older record to clear."""
        data = json.dumps(
            {
                "name": props.name,
                "ino": st.st_ino,
                "size": st.st_size,
                "mtime_ns": st.st_mtime_ns,
                "etag": props.etag,
                "last_modified": props.last_modified,
                "creation_time": props.creation_time,
                "content": props.content.to_dict(),
                "metadata": props.metadata,
                "blocks": props.committed_blocks,
                "copy": props.copy,
            },
            separators=(",", ":"),
        ).encode()
        if len(data) <= MAX_XATTR_RECORD:
            try:
                os.setxattr(file, PROPS_XATTR, data)
            except OSError:
                pass  # no user xattrs here (or no room): the sidecar holds it
            else:
                if not fresh:
                    self.drop_sidecar(acct, ct, h)
                return True
        self.temp.write_file(self.layout.sidecar(acct, ct, h), data)
        if not fresh:
            with contextlib.suppress(OSError):
                os.removexattr(file, PROPS_XATTR)  # it would take precedence
        return False

    def has_sidecars(self, acct: str, ct: str) -> bool:
        """False when no blob of the container has a sidecar record, so a blob file without the
        xattr has no record at all (files placed by other programs: one lookup fewer each).
        Sidecar directories are only ever removed with their container."""
        return os.path.isdir(self.layout.sidecars_dir(acct, ct))

    def uncommitted_names(self, acct: str, ct: str) -> list[str]:
        """Sorted names of the blobs with staged blocks (committed or not), from the names noted
        on their staging dirs. One read per such blob: uploads in progress, not the container."""
        base = self.layout.container_blocks(acct, ct)
        try:
            hashes = os.listdir(base)
        except (FileNotFoundError, NotADirectoryError):
            return []
        names = []
        for h in hashes:
            name = self.layout.blocks_dir_name(os.path.join(base, h))
            if name is not None and name_hash(name) == h:
                names.append(name)
        names.sort()
        return names

    def uncommitted(self, acct: str, ct: str, name: str) -> BlobProps | None:
        """A blob that has only staged blocks, as a listing shows it: no committed bytes yet
        (Content-Length 0, as Azurite 3.37 lists it), times and ETag from its staging dir.
        None when it has no staged blocks (any more)."""
        try:
            st = os.stat(self.layout.blocks_dir(acct, ct, name_hash(name)))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return BlobProps(name, 0, stat_etag(st), st.st_mtime, st.st_mtime)

    def drop_sidecar(self, acct: str, ct: str, h: str) -> None:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            os.unlink(self.layout.sidecar(acct, ct, h))

    def update(
        self, acct: str, ct: str, name: str, change: Callable[[BlobProps], bool]
    ) -> BlobProps:
        """Change the record of an existing blob under its commit lock; the bytes stay.
        ``change`` edits the properties in place (or raises, leaving the record as it was) and
        returns True for a change clients see: then the blob gets a new ETag and Last-Modified.
        BlobNotFound when there is no such blob."""
        h = name_hash(name)
        with self.locks.hold(self.layout.lock_file(acct, ct, h)):
            current = self.current(acct, ct, name)
            if current is None:
                raise StorageError("BlobNotFound")
            path = self.layout.existing_path(acct, ct, name)
            assert path is not None  # current found it
            st = os.stat(path)
            if change(current):
                current.last_modified = time.time()
                current.etag = stat_etag(st, salt=time.time_ns())
            self.write(acct, ct, h, current, st, path)
            return current

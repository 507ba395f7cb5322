"""The POSIX data root: containers are directories, committed blobs are regular files.

Layout under the data root (hidden names start with a dot, which no account name can)::

    <root>/<account>/<container>/<blob path>         the namespace: blob bytes, byte for byte
                                                      (+ xattr user.blobfacade.props: properties)
    <root>/.blobmeta/<account>/service-properties.xml
    <root>/.blobmeta/<account>/<container>/container.json
    <root>/.blobmeta/<account>/<container>/blobs/<hh>/<sha256(name)>.json   large records
    <root>/.blobmeta/<account>/<container>/locks/<hh>.lock                  commit locks
    <root>/.blocks/<account>/<container>/<sha256(name)>/<hex block id>     uncommitted blocks
    <root>/.staging/                                  temp files and trash (same filesystem)

A blob's property record (content headers, metadata, committed block list, ETag, creation time)
is an xattr of its file when it fits, else a sidecar. It notes the inode, size and mtime of the
file it describes; when they no longer match (another program replaced or rewrote the file) it
is stale and properties are derived from ``stat``, as for files that never had one. A commit
writes the body to a temp file (named from the worker's pid and a counter) and fsyncs it, then
under an flock shared by all worker processes checks the conditions, records the properties on
the temp file (or in a sidecar) and renames it into place, so readers see either the old or the
new version whole, with its own properties, and the last commit wins.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import itertools
import json
import os
import shutil
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from reference_server.conditions import Conditions
from reference_server.errors import StorageError
from reference_server.store.listing import Marker, iter_listing
from reference_server.store.model import (
    BlobProps,
    BlockInfo,
    ContainerProps,
    ContentSettings,
    ListPage,
    OpenBlob,
)
from reference_server.store.names import (
    blob_segments,
    check_container_name,
    name_hash,
    name_problem,
)

MAX_BLOCK_SIZE = 4000 * 1024 * 1024
MAX_PUT_BLOB_SIZE = 5000 * 1024 * 1024
MAX_COMMITTED_BLOCKS = 50_000
MAX_UNCOMMITTED_BLOCKS = 100_000
MAX_BLOCK_ID_BYTES = 64
COPY_CHUNK = 64 * 1024 * 1024
# Blob properties live in this xattr of the blob file when they fit (ext4 keeps a few KiB of
# xattrs per inode); larger ones (many blocks, big metadata) in a sidecar file.
PROPS_XATTR = "user.blobfacade.props"
MAX_XATTR_RECORD = 3072
MAX_CACHED_LOCKS = 4096  # open lock files per worker
MAX_IOV = 512  # chunks per writev (IOV_MAX is 1024 on Linux)


def stat_etag(st: os.stat_result, salt: int = 0) -> str:
    """A strong ETag from a file's identity (inode, size, mtime): changes whenever they change."""
    raw = f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{salt}".encode()
    return "0x" + hashlib.blake2b(raw, digest_size=8).hexdigest().upper()


def _read_json(path: str) -> dict | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        raw = os.read(fd, 1 << 16)
        if len(raw) == 1 << 16:  # a large sidecar (many committed blocks): read the rest
            parts = [raw]
            while chunk := os.read(fd, 1 << 20):
                parts.append(chunk)
            raw = b"".join(parts)
    finally:
        os.close(fd)
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _copy_range(src_fd: int, dst_fd: int, offset: int, count: int) -> None:
    """Kernel-side copy (copy_file_range, sendfile fallback): block bytes never enter Python."""
    while count > 0:
        try:
            n = os.copy_file_range(src_fd, dst_fd, min(count, COPY_CHUNK), offset)
        except OSError:
            os.lseek(dst_fd, 0, os.SEEK_END)
            n = os.sendfile(dst_fd, src_fd, offset, min(count, COPY_CHUNK))
        if n == 0:
            raise StorageError("InternalError", "A staged block is shorter than recorded.")
        offset += n
        count -= n


def _is_container_name(name: str) -> bool:
    """Only directories a request can address are containers (not ``Tmp``, ``a b``, ...)."""
    try:
        check_container_name(name)
    except StorageError:
        return False
    return True


def decode_block_id(block_id: str) -> bytes:
    try:
        raw = base64.b64decode(block_id, validate=True)
    except (binascii.Error, ValueError):
        raise StorageError("InvalidBlockId") from None
    if not raw or len(raw) > MAX_BLOCK_ID_BYTES:
        raise StorageError("InvalidBlockId", "The block ID must be 1 to 64 bytes before encoding.")
    return raw


class Upload:
    """A temp file in the staging dir that a request body is streamed into.

    The file is created on the first write, so a small body costs no thread hop of its own: the
    HTTP layer hands whole batches of chunks to ``write_chunks`` in a thread (hashing there too:
    hashlib releases the GIL on large buffers) and leaves the last batch in ``tail`` for
    ``finish``, which runs in the same thread hop as the commit. Expected MD5s are checked there.
    """

    def __init__(
        self,
        open_temp: Callable[[], tuple[int, str]],
        want_md5: bool,
        limit: int,
        expect_md5: tuple[bytes | None, ...] = (),
    ) -> None:
        self._open_temp = open_temp
        self.fd = -1
        self.path = ""
        self.size = 0  # bytes received (written or in tail)
        self.limit = limit
        self.tail: list[bytes] = []
        self._expect = [m for m in expect_md5 if m is not None]
        self._md5 = hashlib.md5() if want_md5 or self._expect else None
        self._md5_b64: str | None = None
        self._io = threading.Lock()  # a write in a thread vs an abort on the loop thread
        self._aborted = False

    def count(self, n: int) -> None:
        """Account for ``n`` more body bytes; RequestBodyTooLarge past the limit."""
        self.size += n
        if self.size > self.limit:
            raise StorageError("RequestBodyTooLarge")

    def _ensure_open(self) -> None:
        if self.fd < 0:
            if self._aborted:
                raise StorageError("InternalError", "The upload was aborted.")
            self.fd, self.path = self._open_temp()

    def write_chunks(self, chunks: list[bytes]) -> None:
        """Append ``chunks`` (already counted) to the file and the hash. Blocking."""
        with self._io:
            self._ensure_open()
            if len(chunks) == 1:
                _write_all(self.fd, chunks[0])
            else:
                if len(chunks) > MAX_IOV:
                    chunks = [b"".join(chunks)]
                total = sum(len(c) for c in chunks)
                written = os.writev(self.fd, chunks)
                if written != total:  # a short write (signal, full disk): write the rest
                    _write_all(self.fd, b"".join(chunks)[written:])
            if self._md5 is not None:
                for c in chunks:
                    self._md5.update(c)

    def write(self, chunk: bytes) -> None:
        """Count and write one chunk now (blocking)."""
        self.count(len(chunk))
        self.write_chunks([chunk])

    def finish(self, durable: bool = True) -> os.stat_result:
        """Write the tail, check expected MD5s, make the bytes durable (fsync, unless not
        ``durable``) and close; the stat of the finished file. Aborts the upload on failure.
        Blocking."""
        try:
            self.write_chunks(self.tail) if self.tail else self._ensure_open()
            self.tail = []
            if self._md5 is not None:
                digest = self._md5.digest()
                self._md5_b64 = base64.b64encode(digest).decode()
                if any(m != digest for m in self._expect):
                    raise StorageError("Md5Mismatch")
            if durable:
                os.fsync(self.fd)
            st = os.fstat(self.fd)
            self.close()
            return st
        except BaseException:
            self.abort()
            raise

    @property
    def md5_b64(self) -> str | None:
        if self._md5_b64 is not None:
            return self._md5_b64
        return base64.b64encode(self._md5.digest()).decode() if self._md5 else None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def abort(self) -> None:
        with self._io:
            self._aborted = True
            self.close()
            if self.path:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)


class Store:
    """All file I/O of the façade. Blocking methods; the HTTP layer runs slow ones in threads."""

    def __init__(self, root: Path, accounts: list[str]) -> None:
        self.root = str(Path(root).resolve())
        self.staging = os.path.join(self.root, ".staging")
        os.makedirs(self.staging, exist_ok=True)
        for acct in accounts:
            os.makedirs(os.path.join(self.root, acct), exist_ok=True)
        # Per-process count of uncommitted blocks per blob dir, verified on disk near the limit.
        self._block_counts: dict[str, int] = {}
        self._id_lengths: dict[str, tuple[int, int]] = {}  # blocks dir -> (inode, ID length)
        # Temp names: pid + counter (unique among live workers; O_EXCL skips a dead one's).
        self._tmp_tag = f"{os.getpid()}-{uuid.uuid4().hex[:6]}-"
        self._tmp_seq = itertools.count()
        # Directories known to exist (sidecar fan-out, locks); a miss re-creates them.
        self._dirs: set[str] = set()
        # Commit locks: one open fd per lock file, flock'd while a thread lock of this process is
        # held (flock is per open file, so threads of one process must not share it unguarded).
        self._locks: dict[str, tuple[int, threading.Lock]] = {}
        self._locks_guard = threading.Lock()

    def _open_temp(self, prefix: str) -> tuple[int, str]:
        """A new, empty, exclusive file in the staging dir: (fd, path)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        while True:
            path = os.path.join(self.staging, f"{prefix}{self._tmp_tag}{next(self._tmp_seq)}")
            try:
                return os.open(path, flags, 0o600), path
            except FileExistsError:
                continue

    def _write_file_atomic(self, path: str, data: bytes, prefix: str = "meta-") -> None:
        """Replace ``path`` with ``data`` whole (temp file + rename; parents made as needed)."""
        fd, tmp = self._open_temp(prefix)
        try:
            try:
                _write_all(fd, data)
            finally:
                os.close(fd)
            parent = os.path.dirname(path)
            if parent not in self._dirs:
                os.makedirs(parent, exist_ok=True)
                self._dirs.add(parent)
            try:
                os.replace(tmp, path)
            except FileNotFoundError:  # the parent went away (container deleted meanwhile)
                self._dirs.discard(parent)
                os.makedirs(parent, exist_ok=True)
                os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _write_json_atomic(self, path: str, data: dict) -> None:
        self._write_file_atomic(path, json.dumps(data, separators=(",", ":")).encode())

    # ---- paths -------------------------------------------------------------------------
    def _container_dir(self, acct: str, ct: str) -> str:
        return os.path.join(self.root, acct, ct)

    def _meta_dir(self, acct: str, ct: str) -> str:
        return os.path.join(self.root, ".blobmeta", acct, ct)

    def _sidecar(self, acct: str, ct: str, h: str) -> str:
        return os.path.join(self._meta_dir(acct, ct), "blobs", h[:2], h + ".json")

    def _blocks_dir(self, acct: str, ct: str, h: str) -> str:
        return os.path.join(self.root, ".blocks", acct, ct, h)

    def _blob_path(self, acct: str, ct: str, name: str) -> str:
        return os.path.join(self._container_dir(acct, ct), *blob_segments(name))

    def _require_container(self, acct: str, ct: str) -> str:
        check_container_name(ct)
        path = self._container_dir(acct, ct)
        if not os.path.isdir(path):
            raise StorageError("ContainerNotFound")
        return path

    def _lock_entry(self, path: str) -> tuple[int, threading.Lock]:
        with self._locks_guard:
            entry = self._locks.get(path)
        if entry is not None:
            return entry
        if len(self._locks) >= MAX_CACHED_LOCKS:
            self._forget_locks("")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        with self._locks_guard:
            entry = self._locks.setdefault(path, (fd, threading.Lock()))
        if entry[0] != fd:  # another thread cached one first
            os.close(fd)
        return entry

    def _forget_locks(self, prefix: str) -> None:
        """Close cached lock fds under ``prefix`` (a deleted container's, or all of them)."""
        with self._locks_guard:
            gone = [(p, e) for p, e in self._locks.items() if p.startswith(prefix)]
            for path, _ in gone:
                del self._locks[path]
        for _, (fd, tlock) in gone:
            with tlock:  # wait for a commit still using it
                os.close(fd)

    @contextlib.contextmanager
    def _lock(self, acct: str, ct: str, h: str) -> Iterator[None]:
        """The commit lock of a blob name, shared by all threads and worker processes."""
        path = os.path.join(self._meta_dir(acct, ct), "locks", h[:2] + ".lock")
        while True:
            entry = self._lock_entry(path)
            fd, tlock = entry
            with tlock:
                if self._locks.get(path) is not entry:
                    continue  # forgotten and closed while this thread waited
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    # A container delete (any worker) unlinks the lock files: an fd of a
                    # vanished file excludes nobody, so check it is still the file at ``path``.
                    try:
                        current = os.stat(path).st_ino == os.fstat(fd).st_ino
                    except FileNotFoundError:
                        current = False
                    if current:
                        yield
                        return
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                with self._locks_guard:
                    mine = self._locks.get(path) is entry
                    if mine:
                        del self._locks[path]
                if mine:  # else _forget_locks closes it
                    os.close(fd)

    def _trash(self, path: str) -> None:
        """Make a tree vanish atomically (rename), then delete it."""
        dest = os.path.join(self.staging, "trash-" + uuid.uuid4().hex)
        try:
            os.rename(path, dest)
        except FileNotFoundError:
            return
        shutil.rmtree(dest, ignore_errors=True)

    # ---- service -----------------------------------------------------------------------
    def get_service_properties(self, acct: str) -> bytes | None:
        try:
            with open(
                os.path.join(self.root, ".blobmeta", acct, "service-properties.xml"), "rb"
            ) as f:
                return f.read()
        except FileNotFoundError:
            return None

    def set_service_properties(self, acct: str, body: bytes) -> None:
        path = os.path.join(self.root, ".blobmeta", acct, "service-properties.xml")
        self._write_file_atomic(path, body, prefix="svc-")

    # ---- containers --------------------------------------------------------------------
    def create_container(self, acct: str, ct: str, metadata: dict[str, str]) -> ContainerProps:
        check_container_name(ct)
        path = self._container_dir(acct, ct)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            os.mkdir(path)
        except FileExistsError:
            raise StorageError("ContainerAlreadyExists") from None
        try:
            st = os.stat(path)
            props = ContainerProps(ct, stat_etag(st), st.st_mtime, dict(metadata))
            self._write_container_meta(acct, props)
        except BaseException:
            # all or nothing: a container without its record (a full disk) must not remain
            with contextlib.suppress(OSError):
                os.rmdir(path)
            raise
        return props

    def _write_container_meta(self, acct: str, props: ContainerProps) -> None:
        data = {
            "etag": props.etag,
            "last_modified": props.last_modified,
            "metadata": props.metadata,
        }
        self._write_json_atomic(
            os.path.join(self._meta_dir(acct, props.name), "container.json"), data
        )

    def get_container(self, acct: str, ct: str) -> ContainerProps:
        path = self._require_container(acct, ct)
        return self._container_props(acct, ct, path)

    def _container_props(self, acct: str, ct: str, path: str) -> ContainerProps:
        meta = _read_json(os.path.join(self._meta_dir(acct, ct), "container.json"))
        if meta is None:
            st = os.stat(path)
            return ContainerProps(ct, stat_etag(st), st.st_mtime)
        return ContainerProps(ct, meta["etag"], meta["last_modified"], meta.get("metadata", {}))

    def set_container_metadata(
        self, acct: str, ct: str, metadata: dict[str, str]
    ) -> ContainerProps:
        props = self.get_container(acct, ct)
        props.metadata = dict(metadata)
        props.last_modified = time.time()
        props.etag = "0x" + uuid.uuid4().hex[:16].upper()
        self._write_container_meta(acct, props)
        return props

    def delete_container(self, acct: str, ct: str) -> None:
        path = self._require_container(acct, ct)
        self._trash(path)
        self._trash(self._meta_dir(acct, ct))
        self._trash(os.path.join(self.root, ".blocks", acct, ct))
        self._forget_locks(self._meta_dir(acct, ct) + os.sep)
        self._dirs = {d for d in self._dirs if not d.startswith(self._meta_dir(acct, ct) + os.sep)}

    def list_containers(
        self, acct: str, prefix: str, marker: str | None, maxresults: int
    ) -> tuple[list[ContainerProps], str | None]:
        base = os.path.join(self.root, acct)
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
            if n.startswith(prefix) and (not marker or n > marker) and _is_container_name(n)
        ]
        page = names[:maxresults]
        props = []
        for n in page:
            with contextlib.suppress(FileNotFoundError):
                props.append(self._container_props(acct, n, os.path.join(base, n)))
        next_marker = page[-1] if len(names) > maxresults else None
        return props, next_marker

    # ---- blob properties ---------------------------------------------------------------
    def _read_props(self, acct: str, ct: str, name: str, file: str | int) -> dict | None:
        """The recorded properties of a blob file (path or fd): its xattr, else its sidecar."""
        try:
            raw = os.getxattr(file, PROPS_XATTR)
        except OSError:  # none (ENODATA), or a filesystem without user xattrs
            return _read_json(self._sidecar(acct, ct, name_hash(name)))
        try:
            return json.loads(raw)
        except ValueError:
            return None

    def _props_for(
        self, acct: str, ct: str, name: str, st: os.stat_result, file: str | int
    ) -> BlobProps:
        meta = self._read_props(acct, ct, name, file)
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

    def _current(self, acct: str, ct: str, name: str) -> BlobProps | None:
        """Properties of the blob now on disk, or None (also for names that cannot map)."""
        if name_problem(name):
            return None
        path = os.path.join(self._container_dir(acct, ct), *name.split("/"))
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return self._props_for(acct, ct, name, st, path)

    def get_blob(self, acct: str, ct: str, name: str) -> BlobProps:
        self._require_container(acct, ct)
        props = self._current(acct, ct, name)
        if props is None:
            raise StorageError("BlobNotFound")
        return props

    def open_blob(self, acct: str, ct: str, name: str) -> OpenBlob:
        """Open for reading; the properties describe exactly the opened version (fstat)."""
        self._require_container(acct, ct)
        if name_problem(name):
            raise StorageError("BlobNotFound")
        path = os.path.join(self._container_dir(acct, ct), *name.split("/"))
        try:
            f = open(path, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise StorageError("BlobNotFound") from None
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            f.close()
            raise StorageError("BlobNotFound")
        return OpenBlob(f, self._props_for(acct, ct, name, st, f.fileno()))

    # ---- writes ------------------------------------------------------------------------
    def new_upload(
        self,
        acct: str,
        ct: str,
        *,
        want_md5: bool,
        limit: int,
        expect_md5: tuple[bytes | None, ...] = (),
    ) -> Upload:
        """An upload whose file is made (after a container check) by its first write, in
        whichever thread that runs. ``expect_md5``: digests ``finish`` verifies (Md5Mismatch)."""
        check_container_name(ct)

        def open_temp() -> tuple[int, str]:
            self._require_container(acct, ct)
            return self._open_temp("up-")

        return Upload(open_temp, want_md5, limit, expect_md5)

    def _ensure_parent(self, ct_dir: str, segments: list[str]) -> None:
        parent = ct_dir
        for seg in segments[:-1]:
            parent = os.path.join(parent, seg)
            try:
                os.mkdir(parent)
            except FileExistsError:
                if not os.path.isdir(parent):
                    raise StorageError(
                        "InvalidPath",
                        f"A blob named {os.path.relpath(parent, ct_dir)!r} exists, "
                        "so no blob can be stored below it.",
                    ) from None

    def _commit_file(
        self,
        acct: str,
        ct: str,
        name: str,
        tmp_path: str,
        st: os.stat_result,
        content: ContentSettings,
        metadata: dict[str, str],
        blocks: list[tuple[str, int]],
        conditions: Conditions,
        copy: dict[str, str] | None = None,
    ) -> BlobProps:
        """(lock: check conditions, sidecar, rename) of ``tmp_path``, whose bytes the caller
        made durable (fsync) and whose stat is ``st``. Consumes ``tmp_path``."""
        committed = False
        try:
            segments = blob_segments(name)
            ct_dir = self._require_container(acct, ct)
            h = name_hash(name)
            target = os.path.join(ct_dir, *segments)
            with self._lock(acct, ct, h):
                try:
                    old = os.stat(target)
                except (FileNotFoundError, NotADirectoryError):
                    old = None
                if old is not None and stat.S_ISDIR(old.st_mode):
                    raise StorageError(
                        "InvalidPath", "Blobs exist below this name, so it cannot be a blob."
                    )
                current = None
                if old is not None and stat.S_ISREG(old.st_mode):
                    current = self._props_for(acct, ct, name, old, target)
                conditions.check_write(
                    current and current.etag, current and current.last_modified, creating=True
                )
                props = BlobProps(
                    name,
                    st.st_size,
                    stat_etag(st),
                    st.st_mtime,
                    current.creation_time if current else time.time(),
                    content,
                    dict(metadata),
                    blocks,
                    dict(copy or {}),
                )
                in_xattr = self._record(acct, ct, h, props, st, tmp_path, fresh=True)
                for attempt in range(3):
                    try:
                        os.rename(tmp_path, target)
                        committed = True
                        break
                    except (FileNotFoundError, NotADirectoryError):
                        # parent dirs missing (made here), or a blob where a dir must be
                        # (InvalidPath); a concurrent delete may keep removing them
                        if attempt == 2:
                            raise
                        self._ensure_parent(ct_dir, segments)
                    except IsADirectoryError:
                        raise StorageError("InvalidPath", "Blobs exist below this name.") from None
                if in_xattr:  # the record travelled with the file: an older sidecar is garbage
                    self._drop_sidecar(acct, ct, h)
            return props
        finally:
            if not committed:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp_path)

    def _record(
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
                    self._drop_sidecar(acct, ct, h)
                return True
        self._write_file_atomic(self._sidecar(acct, ct, h), data)
        if not fresh:
            with contextlib.suppress(OSError):
                os.removexattr(file, PROPS_XATTR)  # it would take precedence
        return False

    def _drop_sidecar(self, acct: str, ct: str, h: str) -> None:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            os.unlink(self._sidecar(acct, ct, h))

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
        st = upload.finish()
        if content.content_md5 is None:
            content.content_md5 = upload.md5_b64
        props = self._commit_file(
            acct, ct, name, upload.path, st, content, metadata, [], conditions, copy
        )
        # A Put Blob replaces the blob and discards its uncommitted blocks, as on Azure.
        self._drop_blocks(acct, ct, name_hash(name))
        return props

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
        self._require_container(acct, ct)
        h = name_hash(name)
        with self._lock(acct, ct, h):
            current = self._current(acct, ct, name)
            if current is None:
                raise StorageError("BlobNotFound")
            conditions.check_write(current.etag, current.last_modified)
            path = os.path.join(self._container_dir(acct, ct), *name.split("/"))
            st = os.stat(path)
            if content is not None:
                current.content = content
            if metadata is not None:
                current.metadata = dict(metadata)
            current.last_modified = time.time()
            current.etag = stat_etag(st, salt=time.time_ns())
            self._record(acct, ct, h, current, st, path)
            return current

    def update_copy_state(
        self, acct: str, ct: str, name: str, copy_id: str, state: dict[str, str], touch: bool
    ) -> BlobProps:
        """Merge ``state`` into the copy headers of the blob whose pending copy is ``copy_id``
        (NoPendingCopyOperation, CopyIdMismatch otherwise). ``touch`` gives it a new ETag and
        Last-Modified (Abort Copy); progress updates keep them, so the final commit can be
        conditioned on the ETag."""
        self._require_container(acct, ct)
        h = name_hash(name)
        with self._lock(acct, ct, h):
            current = self._current(acct, ct, name)
            if current is None:
                raise StorageError("BlobNotFound")
            if current.copy.get("x-ms-copy-status") != "pending":
                raise StorageError("NoPendingCopyOperation")
            if current.copy.get("x-ms-copy-id") != copy_id:
                raise StorageError("CopyIdMismatch")
            path = os.path.join(self._container_dir(acct, ct), *name.split("/"))
            st = os.stat(path)
            current.copy = {**current.copy, **state}
            if touch:
                current.last_modified = time.time()
                current.etag = stat_etag(st, salt=time.time_ns())
            self._record(acct, ct, h, current, st, path)
            return current

    def delete_blob(self, acct: str, ct: str, name: str, conditions: Conditions) -> None:
        ct_dir = self._require_container(acct, ct)
        h = name_hash(name)
        with self._lock(acct, ct, h):
            current = self._current(acct, ct, name)
            if current is None:
                raise StorageError("BlobNotFound")
            conditions.check_write(current.etag, current.last_modified)
            path = os.path.join(ct_dir, *name.split("/"))
            os.unlink(path)
            self._drop_sidecar(acct, ct, h)
        self._drop_blocks(acct, ct, h)
        # Remove directories the delete left empty, so they do not list as BlobPrefixes.
        parent = os.path.dirname(path)
        while parent != ct_dir:
            try:
                os.rmdir(parent)
            except OSError:
                break
            parent = os.path.dirname(parent)

    # ---- blocks ------------------------------------------------------------------------
    def _drop_blocks(self, acct: str, ct: str, h: str) -> None:
        d = self._blocks_dir(acct, ct, h)
        if os.path.isdir(d):
            self._block_counts.pop(d, None)
            self._id_lengths.pop(d, None)
            self._trash(d)

    def stage_block(self, acct: str, ct: str, name: str, block_id: str, upload: Upload) -> None:
        """Move a streamed block into the blob's staging dir (re-staging an ID replaces it).
        Not fsynced: an uncommitted block only has to outlive a process crash, and the commit
        that uses it makes the assembled file durable."""
        blob_segments(name)
        raw = decode_block_id(block_id)
        upload.finish(durable=False)
        try:
            d = self._blocks_dir(acct, ct, name_hash(name))
            fname = raw.hex()
            for attempt in range(3):
                try:
                    self._place_block(d, fname, upload.path)
                    break
                except FileNotFoundError:
                    # a concurrent commit or Put Blob discarded the blob's staging dir
                    # meanwhile: this block starts a new one
                    if attempt == 2:
                        raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(upload.path)

    def _place_block(self, d: str, fname: str, upload_path: str) -> None:
        try:
            ino = os.stat(d).st_ino
        except FileNotFoundError:
            os.makedirs(d, exist_ok=True)
            ino = os.stat(d).st_ino
        # The ID length of the blob's staged blocks, known per staging dir incarnation (inode):
        # a hot blob (1,000 Put Blocks at once) is not re-read for every block.
        if self._id_lengths.get(d) != (ino, len(fname)):
            with os.scandir(d) as it:
                other = next(it, None)
            if other is not None and len(other.name) != len(fname):
                raise StorageError(
                    "InvalidBlobOrBlock", "All block IDs of a blob must have the same length."
                )
            if len(self._id_lengths) >= MAX_CACHED_LOCKS:
                self._id_lengths.clear()
            self._id_lengths[d] = (ino, len(fname))
        dest = os.path.join(d, fname)
        if not os.path.exists(dest):
            count = self._block_counts.get(d)
            if count is None or count + 1 > MAX_UNCOMMITTED_BLOCKS:
                count = len(os.listdir(d))
            if count + 1 > MAX_UNCOMMITTED_BLOCKS:
                raise StorageError("BlockCountExceedsLimit")
            self._block_counts[d] = count + 1
        os.rename(upload_path, dest)

    def _uncommitted(self, acct: str, ct: str, name: str) -> dict[str, tuple[str, int, float]]:
        """base64 id -> (file path, size, mtime) of the staged blocks."""
        d = self._blocks_dir(acct, ct, name_hash(name))
        found = {}
        try:
            with os.scandir(d) as it:
                for e in it:
                    st = e.stat()
                    bid = base64.b64encode(bytes.fromhex(e.name)).decode()
                    found[bid] = (e.path, st.st_size, st.st_mtime)
        except FileNotFoundError:
            pass
        return found

    def get_block_list(
        self, acct: str, ct: str, name: str
    ) -> tuple[BlobProps | None, list[BlockInfo], list[BlockInfo]]:
        self._require_container(acct, ct)
        current = self._current(acct, ct, name)
        staged = self._uncommitted(acct, ct, name)
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
        blob_segments(name)
        self._require_container(acct, ct)
        if len(entries) > MAX_COMMITTED_BLOCKS:
            raise StorageError("BlockListTooLong")
        staged = self._uncommitted(acct, ct, name)
        src: OpenBlob | None = None
        with contextlib.suppress(StorageError):
            src = self.open_blob(acct, ct, name)
        fd_out, tmp = self._open_temp("commit-")
        try:
            blocks = self._assemble(entries, staged, src, fd_out)
            os.fsync(fd_out)
            st = os.fstat(fd_out)
        except BaseException:
            os.unlink(tmp)
            raise
        finally:
            os.close(fd_out)
            if src is not None:
                src.close()
        props = self._commit_file(acct, ct, name, tmp, st, content, metadata, blocks, conditions)
        self._drop_blocks(acct, ct, name_hash(name))
        return props

    @staticmethod
    def _assemble(
        entries: list[tuple[str, str]],
        staged: dict[str, tuple[str, int, float]],
        src: OpenBlob | None,
        fd_out: int,
    ) -> list[tuple[str, int]]:
        """Concatenate the listed blocks into ``fd_out``; Committed ones come from ``src``."""
        offsets: dict[str, tuple[int, int]] = {}
        if src is not None:
            pos = 0
            for bid, size in src.props.committed_blocks:
                offsets.setdefault(bid, (pos, size))
                pos += size
        blocks: list[tuple[str, int]] = []
        for kind, bid in entries:
            decode_block_id(bid)
            if bid in staged and kind in ("Latest", "Uncommitted"):
                path, size, _ = staged[bid]
                try:
                    f = open(path, "rb")
                except FileNotFoundError:
                    # a concurrent commit of this blob discarded its uncommitted blocks
                    raise StorageError(
                        "InvalidBlockList", f"The block {bid} ({kind}) does not exist."
                    ) from None
                with f:
                    _copy_range(f.fileno(), fd_out, 0, size)
            elif src is not None and bid in offsets and kind in ("Latest", "Committed"):
                off, size = offsets[bid]
                _copy_range(src.file.fileno(), fd_out, off, size)
            else:
                raise StorageError("InvalidBlockList", f"The block {bid} ({kind}) does not exist.")
            blocks.append((bid, size))
        return blocks

    def collect_uncommitted(self, max_age_s: float) -> int:
        """Delete block staging dirs untouched for ``max_age_s``; returns how many."""
        base = os.path.join(self.root, ".blocks")
        cutoff = time.time() - max_age_s
        removed = 0
        for acct in os.listdir(base) if os.path.isdir(base) else []:
            for ct in os.listdir(os.path.join(base, acct)):
                ct_dir = os.path.join(base, acct, ct)
                for h in os.listdir(ct_dir):
                    d = os.path.join(ct_dir, h)
                    with contextlib.suppress(FileNotFoundError):
                        if os.stat(d).st_mtime < cutoff:
                            self._block_counts.pop(d, None)
                            self._id_lengths.pop(d, None)
                            self._trash(d)
                            removed += 1
        return removed

    def sweep_staging(self, max_age_s: float = 0, pid: int | None = None) -> int:
        """Delete staging leftovers (bodies, commits, sidecar temps, trash) untouched for
        ``max_age_s``; returns how many. A crash leaves them behind. With 0 (at start, before any
        worker serves: the data root lock guarantees it) everything goes; live uploads touch
        their file with every batch. With ``pid`` (a worker that died), only the temp files
        named after that process go, whatever their age."""
        cutoff = time.time() - max_age_s
        removed = 0
        with os.scandir(self.staging) as it:
            entries = list(it)
        owner = f"-{pid}-"
        for e in entries:
            with contextlib.suppress(FileNotFoundError):
                if pid is not None:
                    # temp names: <kind>-<pid>-<tag>-<n> (_open_temp)
                    if owner not in e.name or e.name.index(owner) != e.name.index("-"):
                        continue
                elif max_age_s and e.stat(follow_symlinks=False).st_mtime >= cutoff:
                    continue
                if e.is_dir(follow_symlinks=False):
                    shutil.rmtree(e.path, ignore_errors=True)
                else:
                    os.unlink(e.path)
                removed += 1
        return removed

    # ---- listing -----------------------------------------------------------------------
    def list_blobs(
        self,
        acct: str,
        ct: str,
        prefix: str,
        delimiter: str | None,
        marker: str | None,
        maxresults: int,
    ) -> ListPage:
        ct_dir = self._require_container(acct, ct)
        items: list[BlobProps | str] = []
        last: Marker | None = None
        for name, entry in iter_listing(ct_dir, prefix, delimiter, Marker.decode(marker)):
            if len(items) == maxresults:
                return ListPage(items, last.encode() if last else None)
            if entry is None:
                items.append(name)
                last = Marker(name, True)
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # deleted while listing
            items.append(self._props_for(acct, ct, name, st, entry.path))
            last = Marker(name, False)
        return ListPage(items, None)

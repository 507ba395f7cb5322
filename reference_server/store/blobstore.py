"""The POSIX data root: containers are directories, committed blobs are regular files.

Layout under the data root (hidden names start with a dot, which no account name can)::

    <root>/<account>/<container>/<blob path>         the namespace: blob bytes, byte for byte
    <root>/.blobmeta/<account>/service-properties.xml
    <root>/.blobmeta/<account>/<container>/container.json
    <root>/.blobmeta/<account>/<container>/blobs/<hh>/<sha256(name)>.json   blob sidecars
    <root>/.blobmeta/<account>/<container>/locks/<hh>.lock                  commit locks
    <root>/.blocks/<account>/<container>/<sha256(name)>/<hex block id>     uncommitted blocks
    <root>/.staging/                                  temp files and trash (same filesystem)

A sidecar records the inode, size and mtime of the file it describes; when they no longer match
(another program replaced the file) it is stale and properties are derived from ``stat``, as for
files that never had one. A commit fsyncs the temp file, then under an flock shared by all worker
processes checks the conditions, writes the sidecar (temp + rename) and renames the data file into
place, so readers see either the old or the new version whole, and the last commit wins.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
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


def stat_etag(st: os.stat_result, salt: int = 0) -> str:
    """A strong ETag from a file's identity (inode, size, mtime): changes whenever they change."""
    raw = f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{salt}".encode()
    return "0x" + hashlib.blake2b(raw, digest_size=8).hexdigest().upper()


def _write_json_atomic(path: str, data: dict, staging: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=staging, prefix="meta-")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, separators=(",", ":"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.replace(tmp, path)


def _read_json(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None


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


def decode_block_id(block_id: str) -> bytes:
    try:
        raw = base64.b64decode(block_id, validate=True)
    except (binascii.Error, ValueError):
        raise StorageError("InvalidBlockId") from None
    if not raw or len(raw) > MAX_BLOCK_ID_BYTES:
        raise StorageError("InvalidBlockId", "The block ID must be 1 to 64 bytes before encoding.")
    return raw


class Upload:
    """A temp file in the staging dir that a request body is streamed into, chunk by chunk."""

    def __init__(self, staging: str, want_md5: bool, limit: int) -> None:
        fd, self.path = tempfile.mkstemp(dir=staging, prefix="up-")
        self.fd = fd
        self.size = 0
        self.limit = limit
        self._md5 = hashlib.md5() if want_md5 else None

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise StorageError("RequestBodyTooLarge")
        view = memoryview(chunk)
        while view:
            view = view[os.write(self.fd, view) :]
        if self._md5 is not None:
            self._md5.update(chunk)

    @property
    def md5_b64(self) -> str | None:
        return base64.b64encode(self._md5.digest()).decode() if self._md5 else None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def abort(self) -> None:
        self.close()
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

    @contextlib.contextmanager
    def _lock(self, acct: str, ct: str, h: str) -> Iterator[None]:
        lock_dir = os.path.join(self._meta_dir(acct, ct), "locks")
        os.makedirs(lock_dir, exist_ok=True)
        fd = os.open(os.path.join(lock_dir, h[:2] + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
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
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.staging, prefix="svc-")
        with os.fdopen(fd, "wb") as f:
            f.write(body)
        os.replace(tmp, path)

    # ---- containers --------------------------------------------------------------------
    def create_container(self, acct: str, ct: str, metadata: dict[str, str]) -> ContainerProps:
        check_container_name(ct)
        path = self._container_dir(acct, ct)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            os.mkdir(path)
        except FileExistsError:
            raise StorageError("ContainerAlreadyExists") from None
        st = os.stat(path)
        props = ContainerProps(ct, stat_etag(st), st.st_mtime, dict(metadata))
        self._write_container_meta(acct, props)
        return props

    def _write_container_meta(self, acct: str, props: ContainerProps) -> None:
        data = {
            "etag": props.etag,
            "last_modified": props.last_modified,
            "metadata": props.metadata,
        }
        _write_json_atomic(
            os.path.join(self._meta_dir(acct, props.name), "container.json"), data, self.staging
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
        names = [n for n in names if n.startswith(prefix) and (not marker or n > marker)]
        page = names[:maxresults]
        props = []
        for n in page:
            with contextlib.suppress(FileNotFoundError):
                props.append(self._container_props(acct, n, os.path.join(base, n)))
        next_marker = page[-1] if len(names) > maxresults else None
        return props, next_marker

    # ---- blob properties ---------------------------------------------------------------
    def _props_for(self, acct: str, ct: str, name: str, st: os.stat_result) -> BlobProps:
        meta = _read_json(self._sidecar(acct, ct, name_hash(name)))
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
        # No sidecar, or a stale one: the file was written by another program.
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
        if not os.path.isfile(path):
            return None
        return self._props_for(acct, ct, name, st)

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
        if not os.path.stat.S_ISREG(st.st_mode):
            f.close()
            raise StorageError("BlobNotFound")
        return OpenBlob(f, self._props_for(acct, ct, name, st))

    # ---- writes ------------------------------------------------------------------------
    def new_upload(self, acct: str, ct: str, *, want_md5: bool, limit: int) -> Upload:
        self._require_container(acct, ct)
        return Upload(self.staging, want_md5, limit)

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
        content: ContentSettings,
        metadata: dict[str, str],
        blocks: list[tuple[str, int]],
        conditions: Conditions,
        copy: dict[str, str] | None = None,
    ) -> BlobProps:
        """fsync + (lock: check conditions, sidecar, rename). Consumes ``tmp_path``."""
        segments = blob_segments(name)
        ct_dir = self._require_container(acct, ct)
        h = name_hash(name)
        target = os.path.join(ct_dir, *segments)
        try:
            fd = os.open(tmp_path, os.O_RDONLY)
            try:
                os.fsync(fd)
                st = os.fstat(fd)
            finally:
                os.close(fd)
            with self._lock(acct, ct, h):
                current = self._current(acct, ct, name)
                conditions.check_write(
                    current and current.etag, current and current.last_modified, creating=True
                )
                if os.path.isdir(target):
                    raise StorageError(
                        "InvalidPath", "Blobs exist below this name, so it cannot be a blob."
                    )
                now = time.time()
                props = BlobProps(
                    name,
                    st.st_size,
                    stat_etag(st),
                    st.st_mtime,
                    current.creation_time if current else now,
                    content,
                    dict(metadata),
                    blocks,
                    dict(copy or {}),
                )
                self._write_sidecar(acct, ct, h, props, st)
                for attempt in range(3):
                    self._ensure_parent(ct_dir, segments)
                    try:
                        os.rename(tmp_path, target)
                        break
                    except FileNotFoundError:
                        if attempt == 2:  # a concurrent delete kept removing the parent dirs
                            raise
                    except IsADirectoryError:
                        raise StorageError("InvalidPath", "Blobs exist below this name.") from None
            return props
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_path)

    def _write_sidecar(
        self, acct: str, ct: str, h: str, props: BlobProps, st: os.stat_result
    ) -> None:
        data = {
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
        }
        _write_json_atomic(self._sidecar(acct, ct, h), data, self.staging)

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
        upload.close()
        props = self._commit_file(
            acct, ct, name, upload.path, content, metadata, [], conditions, copy
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
            self._write_sidecar(acct, ct, h, current, st)
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
            st = os.stat(os.path.join(self._container_dir(acct, ct), *name.split("/")))
            current.copy = {**current.copy, **state}
            if touch:
                current.last_modified = time.time()
                current.etag = stat_etag(st, salt=time.time_ns())
            self._write_sidecar(acct, ct, h, current, st)
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
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._sidecar(acct, ct, h))
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
            self._trash(d)

    def stage_block(self, acct: str, ct: str, name: str, block_id: str, upload: Upload) -> None:
        """Move a streamed block into the blob's staging dir (re-staging an ID replaces it)."""
        upload.close()
        try:
            blob_segments(name)
            raw = decode_block_id(block_id)
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
        os.makedirs(d, exist_ok=True)
        with os.scandir(d) as it:
            other = next(it, None)
        if other is not None and len(other.name) != len(fname):
            raise StorageError(
                "InvalidBlobOrBlock", "All block IDs of a blob must have the same length."
            )
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
        fd_out, tmp = tempfile.mkstemp(dir=self.staging, prefix="commit-")
        try:
            blocks = self._assemble(entries, staged, src, fd_out)
        except BaseException:
            os.unlink(tmp)
            raise
        finally:
            os.close(fd_out)
            if src is not None:
                src.close()
        props = self._commit_file(acct, ct, name, tmp, content, metadata, blocks, conditions)
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
                            self._trash(d)
                            removed += 1
        return removed

    def sweep_staging(self, max_age_s: float = 0) -> int:
        """Delete staging leftovers (bodies, commits, sidecar temps, trash) untouched for
        ``max_age_s``; returns how many. A crash leaves them behind. With 0 (at start, before any
        worker serves) everything goes; live uploads touch their file with every chunk."""
        cutoff = time.time() - max_age_s
        removed = 0
        with os.scandir(self.staging) as it:
            entries = list(it)
        for e in entries:
            with contextlib.suppress(FileNotFoundError):
                if max_age_s and e.stat(follow_symlinks=False).st_mtime >= cutoff:
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
            items.append(self._props_for(acct, ct, name, st))
            last = Marker(name, False)
        return ListPage(items, None)

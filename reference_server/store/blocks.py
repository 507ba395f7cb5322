"""Uncommitted blocks: one file per block ID in the blob's staging dir (named by the hex of the
ID), the limits Azure puts on them (100,000 per blob, counted exactly across workers), and the
list of what is staged."""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import os
import shutil
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from reference_server.errors import StorageError
from reference_server.store.atomic import TempFiles
from reference_server.store.layout import Layout
from reference_server.store.names import blob_segments, name_hash
from reference_server.store.upload import Upload

MAX_BLOCK_SIZE = 4000 * 1024 * 1024  # a Put Block body (the handlers refuse more)
MAX_UNCOMMITTED_BLOCKS = 100_000
MAX_BLOCK_ID_BYTES = 64
MAX_CACHED_DIRS = 4096  # staging dirs whose ID length this worker remembers
# The staged-block count of a blob's staging dir, in the dir itself (so it is trashed with the
# blocks it counts); a hidden name no hex block ID can take.
COUNTER = ".count"
BACKGROUND_DISCARD = 1000  # staged blocks above which a discarded dir is deleted after the answer


def decode_block_id(block_id: str) -> bytes:
    try:
        raw = base64.b64decode(block_id, validate=True)
    except (binascii.Error, ValueError):
        raise StorageError("InvalidBlockId") from None
    if not raw or len(raw) > MAX_BLOCK_ID_BYTES:
        raise StorageError("InvalidBlockId", "The block ID must be 1 to 64 bytes before encoding.")
    return raw


def _staged_count(d: str) -> int:
    """The counter of the staging dir ``d`` (0 when it has none)."""
    try:
        fd = os.open(os.path.join(d, COUNTER), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return 0
    try:
        return int.from_bytes(os.pread(fd, 8, 0), "little")
    finally:
        os.close(fd)


def _read_count(cfd: int, dfd: int) -> int:
    """The counter's value; a dir staged before counters existed is counted once."""
    raw = os.pread(cfd, 8, 0)
    if len(raw) == 8:
        return int.from_bytes(raw, "little")
    with os.scandir(dfd) as it:
        return sum(1 for e in it if e.name != COUNTER)


class BlockStaging:
    def __init__(self, layout: Layout, temp: TempFiles) -> None:
        self.layout = layout
        self.temp = temp
        self._id_lengths: dict[str, tuple[int, int]] = {}  # blocks dir -> (inode, ID length)
        self._deleter: ThreadPoolExecutor | None = None  # deletes big discarded dirs
        self._deleter_guard = threading.Lock()

    def stage(self, acct: str, ct: str, name: str, block_id: str, upload: Upload) -> None:
        """Move a streamed block into the blob's staging dir (re-staging an ID replaces it).
        Not fsynced: an uncommitted block only has to outlive a process crash, and the commit
        that uses it makes the assembled file durable."""
        blob_segments(name)
        raw = decode_block_id(block_id)
        upload.finish(durable=False)
        try:
            d = self.layout.blocks_dir(acct, ct, name_hash(name))
            fname = raw.hex()
            for attempt in range(3):
                try:
                    self._place(d, fname, upload.path, name)
                    break
                except FileNotFoundError:
                    # a concurrent commit or Put Blob discarded the blob's staging dir
                    # meanwhile: this block starts a new one
                    if attempt == 2:
                        raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(upload.path)

    def _place(self, d: str, fname: str, upload_path: str, name: str) -> None:
        try:
            dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            os.makedirs(d, exist_ok=True)
            self.layout.name_blocks_dir(d, name)
            dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            # Everything below goes through the directory's fd: a commit that trashes the dir
            # (one rename) meanwhile takes this block with it, as if staged just before.
            self._check_id_length(d, dfd, fname)
            cfd = os.open(COUNTER, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644, dir_fd=dfd)
            try:
                # The counter file of this dir incarnation, under its flock, makes the limit
                # exact across threads and worker processes (each open holds its own lock).
                fcntl.flock(cfd, fcntl.LOCK_EX)
                try:
                    try:
                        os.stat(fname, dir_fd=dfd)
                        exists = True
                    except FileNotFoundError:
                        exists = False
                    if not exists:
                        count = _read_count(cfd, dfd)
                        if count + 1 > MAX_UNCOMMITTED_BLOCKS:
                            raise StorageError("BlockCountExceedsLimit")
                    os.rename(upload_path, fname, dst_dir_fd=dfd)
                    if not exists:
                        os.pwrite(cfd, (count + 1).to_bytes(8, "little"), 0)
                finally:
                    fcntl.flock(cfd, fcntl.LOCK_UN)
            finally:
                os.close(cfd)
            try:
                current = os.stat(d).st_ino == os.fstat(dfd).st_ino
            except FileNotFoundError:
                current = False
            if not current:
                # trashed meanwhile: its tree may already be half deleted, so drop the block
                # here rather than leave it behind in the staging dir
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(fname, dir_fd=dfd)
        finally:
            os.close(dfd)

    def _check_id_length(self, d: str, dfd: int, fname: str) -> None:
        """All block IDs of a blob have one length. Known per staging dir incarnation (inode):
        a hot blob (1,000 Put Blocks at once) is not re-read for every block."""
        ino = os.fstat(dfd).st_ino
        if self._id_lengths.get(d) == (ino, len(fname)):
            return
        with os.scandir(dfd) as it:
            other = next((e for e in it if e.name != COUNTER), None)
        if other is not None and len(other.name) != len(fname):
            raise StorageError(
                "InvalidBlobOrBlock", "All block IDs of a blob must have the same length."
            )
        if len(self._id_lengths) >= MAX_CACHED_DIRS:
            self._id_lengths.clear()
        self._id_lengths[d] = (ino, len(fname))

    def staged(self, acct: str, ct: str, name: str) -> dict[str, tuple[str, int, float]]:
        """base64 id -> (file path, size, mtime) of the staged blocks."""
        d = self.layout.blocks_dir(acct, ct, name_hash(name))
        found = {}
        try:
            with os.scandir(d) as it:
                for e in it:
                    if e.name == COUNTER:
                        continue
                    st = e.stat()
                    bid = base64.b64encode(bytes.fromhex(e.name)).decode()
                    found[bid] = (e.path, st.st_size, st.st_mtime)
        except FileNotFoundError:
            pass
        return found

    def drop(self, acct: str, ct: str, h: str) -> None:
        """Discard a blob's uncommitted blocks (it was committed, replaced or deleted)."""
        d = self.layout.blocks_dir(acct, ct, h)
        if os.path.isdir(d):
            self.discard(d, background=_staged_count(d) > BACKGROUND_DISCARD)

    def discard(self, d: str, background: bool = False) -> None:
        """Trash the staging dir ``d`` and forget what this worker knew of it. With
        ``background`` the dir vanishes at once (one rename) and its files are deleted by a
        thread of this worker after the request: unlinking 50,000 blocks takes seconds. What
        a killed worker leaves in the trash goes with its other leftovers (sweeps)."""
        self._id_lengths.pop(d, None)
        if not background:
            self.temp.trash(d)
            return
        dest = os.path.join(self.temp.staging, f"trash-{os.getpid()}-{uuid.uuid4().hex}")
        try:
            os.rename(d, dest)
        except FileNotFoundError:
            return
        with self._deleter_guard:
            if self._deleter is None:
                self._deleter = ThreadPoolExecutor(1, thread_name_prefix="blocks-trash")
        self._deleter.submit(shutil.rmtree, dest, True)

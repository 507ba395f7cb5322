"""Uncommitted blocks: one file per block ID in the blob's staging dir (named by the hex of the
ID), the limits Azure puts on them, and the list of what is staged."""

from __future__ import annotations

import base64
import binascii
import contextlib
import os

from reference_server.errors import StorageError
from reference_server.store.atomic import TempFiles
from reference_server.store.layout import Layout
from reference_server.store.names import blob_segments, name_hash
from reference_server.store.upload import Upload

MAX_BLOCK_SIZE = 4000 * 1024 * 1024  # a Put Block body (the handlers refuse more)
MAX_UNCOMMITTED_BLOCKS = 100_000
MAX_BLOCK_ID_BYTES = 64
MAX_CACHED_DIRS = 4096  # staging dirs whose ID length this worker remembers


def decode_block_id(block_id: str) -> bytes:
    try:
        raw = base64.b64decode(block_id, validate=True)
    except (binascii.Error, ValueError):
        raise StorageError("InvalidBlockId") from None
    if not raw or len(raw) > MAX_BLOCK_ID_BYTES:
        raise StorageError("InvalidBlockId", "The block ID must be 1 to 64 bytes before encoding.")
    return raw


class BlockStaging:
    def __init__(self, layout: Layout, temp: TempFiles) -> None:
        self.layout = layout
        self.temp = temp
        # Per-process count of uncommitted blocks per blob dir, verified on disk near the limit.
        self._counts: dict[str, int] = {}
        self._id_lengths: dict[str, tuple[int, int]] = {}  # blocks dir -> (inode, ID length)

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
            ino = os.stat(d).st_ino
        except FileNotFoundError:
            os.makedirs(d, exist_ok=True)
            self.layout.name_blocks_dir(d, name)
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
            if len(self._id_lengths) >= MAX_CACHED_DIRS:
                self._id_lengths.clear()
            self._id_lengths[d] = (ino, len(fname))
        dest = os.path.join(d, fname)
        if not os.path.exists(dest):
            count = self._counts.get(d)
            if count is None or count + 1 > MAX_UNCOMMITTED_BLOCKS:
                count = len(os.listdir(d))
            if count + 1 > MAX_UNCOMMITTED_BLOCKS:
                raise StorageError("BlockCountExceedsLimit")
            self._counts[d] = count + 1
        os.rename(upload_path, dest)

    def staged(self, acct: str, ct: str, name: str) -> dict[str, tuple[str, int, float]]:
        """base64 id -> (file path, size, mtime) of the staged blocks."""
        d = self.layout.blocks_dir(acct, ct, name_hash(name))
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

    def drop(self, acct: str, ct: str, h: str) -> None:
        """Discard a blob's uncommitted blocks (it was committed, replaced or deleted)."""
        d = self.layout.blocks_dir(acct, ct, h)
        if os.path.isdir(d):
            self.discard(d)

    def discard(self, d: str) -> None:
        """Trash the staging dir ``d`` and forget what this worker knew of it."""
        self._counts.pop(d, None)
        self._id_lengths.pop(d, None)
        self.temp.trash(d)

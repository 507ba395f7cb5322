"""Changes of a blob's file: commit (Put Blob, Put Block List with its assembly) and delete.

A commit writes the body to a temp file and fsyncs it, then under the blob's commit lock (an
flock shared by all worker processes) checks the conditions, records the properties on the temp
file (or in a sidecar) and renames it into place, so readers see either the old or the new
version whole, with its own properties, and the last commit wins.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time

from reference_server.conditions import Conditions
from reference_server.errors import StorageError
from reference_server.store.atomic import TempFiles, fsync_path
from reference_server.store.blocks import BlockStaging, decode_block_id
from reference_server.store.layout import Layout, ensure_parent
from reference_server.store.locks import CommitLocks
from reference_server.store.model import BlobProps, ContentSettings, OpenBlob
from reference_server.store.names import blob_segments, name_hash
from reference_server.store.records import Records, stat_etag
from reference_server.store.upload import Upload, copy_range

MAX_PUT_BLOB_SIZE = 5000 * 1024 * 1024  # a Put Blob body (the handlers refuse more)
MAX_COMMITTED_BLOCKS = 50_000


def assemble(
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
                copy_range(f.fileno(), fd_out, 0, size)
        elif src is not None and bid in offsets and kind in ("Latest", "Committed"):
            off, size = offsets[bid]
            copy_range(src.file.fileno(), fd_out, off, size)
        else:
            raise StorageError("InvalidBlockList", f"The block {bid} ({kind}) does not exist.")
        blocks.append((bid, size))
    return blocks


class Commits:
    def __init__(
        self,
        layout: Layout,
        temp: TempFiles,
        locks: CommitLocks,
        records: Records,
        blocks: BlockStaging,
    ) -> None:
        self.layout = layout
        self.temp = temp
        self.locks = locks
        self.records = records
        self.blocks = blocks

    def commit_file(
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
        """(lock: check conditions, record, rename) of ``tmp_path``, whose bytes the caller
        made durable (fsync) and whose stat is ``st``. Consumes ``tmp_path``."""
        committed = False
        try:
            segments = blob_segments(name)
            ct_dir = self.layout.require_container(acct, ct)
            h = name_hash(name)
            target = os.path.join(ct_dir, *segments)
            with self.locks.hold(self.layout.lock_file(acct, ct, h)):
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
                    current = self.records.props_for(acct, ct, name, old, target)
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
                in_xattr = self.records.write(acct, ct, h, props, st, tmp_path, fresh=True)
                if in_xattr:  # the record was set after the bytes' fsync: make it durable too
                    fsync_path(tmp_path)
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
                        ensure_parent(ct_dir, segments)
                    except IsADirectoryError:
                        raise StorageError("InvalidPath", "Blobs exist below this name.") from None
                # acknowledged means durable: the rename itself, in the blob's directory
                fsync_path(os.path.dirname(target))
                if in_xattr:  # the record travelled with the file: an older sidecar is garbage
                    self.records.drop_sidecar(acct, ct, h)
            return props
        finally:
            if not committed:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp_path)

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
        props = self.commit_file(
            acct, ct, name, upload.path, st, content, metadata, [], conditions, copy
        )
        # A Put Blob replaces the blob and discards its uncommitted blocks, as on Azure.
        self.blocks.drop(acct, ct, name_hash(name))
        return props

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
        self.layout.require_container(acct, ct)
        if len(entries) > MAX_COMMITTED_BLOCKS:
            raise StorageError("BlockListTooLong")
        staged = self.blocks.staged(acct, ct, name)
        src: OpenBlob | None = None
        with contextlib.suppress(StorageError):
            src = self.records.open(acct, ct, name)
        fd_out, tmp = self.temp.open("commit-")
        try:
            blocks = assemble(entries, staged, src, fd_out)
            os.fsync(fd_out)
            st = os.fstat(fd_out)
        except BaseException:
            os.unlink(tmp)
            raise
        finally:
            os.close(fd_out)
            if src is not None:
                src.close()
        props = self.commit_file(acct, ct, name, tmp, st, content, metadata, blocks, conditions)
        self.blocks.drop(acct, ct, name_hash(name))
        return props

    def delete_blob(self, acct: str, ct: str, name: str, conditions: Conditions) -> None:
        ct_dir = self.layout.require_container(acct, ct)
        h = name_hash(name)
        with self.locks.hold(self.layout.lock_file(acct, ct, h)):
            current = self.records.current(acct, ct, name)
            if current is None:
                raise StorageError("BlobNotFound")
            conditions.check_write(current.etag, current.last_modified)
            path = os.path.join(ct_dir, *name.split("/"))
            os.unlink(path)
            self.records.drop_sidecar(acct, ct, h)
        self.blocks.drop(acct, ct, h)
        # Remove directories the delete left empty, so they do not list as BlobPrefixes.
        parent = os.path.dirname(path)
        while parent != ct_dir:
            try:
                os.rmdir(parent)
            except OSError:
                break
            parent = os.path.dirname(parent)

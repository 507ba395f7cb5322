"""Files that appear whole or not at all: exclusive temp files in the staging dir, replacement
by rename, and trees made to vanish by one rename before they are deleted.

The staging dir is on the data root's filesystem, so every rename out of it is atomic. Temp
names are ``<kind>-<pid>-<tag>-<n>``: unique among live workers (O_EXCL skips a dead one's), and
the start-up or dead-worker sweep (sweeps.py) recognises a process's leftovers by them.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import uuid


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (a short write is not an error)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fsync_path(path: str) -> None:
    """Make what is recorded at ``path`` durable: a file's inode (its xattrs included), or a
    directory's entries (a rename into it)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: str) -> dict | None:
    """A small JSON record, or None when it is missing or unreadable (a torn write by another
    program; our own writes are atomic)."""
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


class TempFiles:
    """This process's temp files in ``staging`` and whole-file writes through them."""

    def __init__(self, staging: str) -> None:
        self.staging = staging
        self._tag = f"{os.getpid()}-{uuid.uuid4().hex[:6]}-"
        self._seq = itertools.count()
        # Directories known to exist (sidecar fan-out, records); a miss re-creates them.
        self._dirs: set[str] = set()

    def open(self, prefix: str) -> tuple[int, str]:
        """A new, empty, exclusive file in the staging dir: (fd, path)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        while True:
            path = os.path.join(self.staging, f"{prefix}{self._tag}{next(self._seq)}")
            try:
                return os.open(path, flags, 0o600), path
            except FileExistsError:
                continue

    def write_file(self, path: str, data: bytes, prefix: str = "meta-") -> None:
        """Replace ``path`` with ``data`` whole and durably (temp file, fsync, rename, fsync of
        the directory; parents made as needed)."""
        fd, tmp = self.open(prefix)
        try:
            try:
                write_all(fd, data)
                os.fsync(fd)  # a record that is answered for must outlive a power loss
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
            fsync_path(parent)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def write_json(self, path: str, data: dict) -> None:
        self.write_file(path, json.dumps(data, separators=(",", ":")).encode())

    def forget_dirs(self, prefix: str) -> None:
        """Stop trusting that directories under ``prefix`` exist (their tree was deleted)."""
        self._dirs = {d for d in self._dirs if not d.startswith(prefix)}

    def trash(self, path: str) -> None:
        """Make a tree vanish atomically (rename into staging), then delete it."""
        dest = os.path.join(self.staging, "trash-" + uuid.uuid4().hex)
        try:
            os.rename(path, dest)
        except FileNotFoundError:
            return
        shutil.rmtree(dest, ignore_errors=True)

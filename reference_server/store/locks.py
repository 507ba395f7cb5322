"""Commit locks: an flock per blob-name bucket, shared by every thread and worker process.

Each worker keeps one open fd per lock file (opening one per commit would cost two syscalls on
the hot path), guarded by a thread lock: flock is per open file, so threads of one process must
not share it unguarded.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator

MAX_CACHED_LOCKS = 4096  # open lock files per worker


class CommitLocks:
    def __init__(self) -> None:
        self._locks: dict[str, tuple[int, threading.Lock]] = {}
        self._guard = threading.Lock()

    def _entry(self, path: str) -> tuple[int, threading.Lock]:
        with self._guard:
            entry = self._locks.get(path)
        if entry is not None:
            return entry
        if len(self._locks) >= MAX_CACHED_LOCKS:
            self.forget("")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        with self._guard:
            entry = self._locks.setdefault(path, (fd, threading.Lock()))
        if entry[0] != fd:  # another thread cached one first
            os.close(fd)
        return entry

    def forget(self, prefix: str) -> None:
        """Close cached lock fds under ``prefix`` (a deleted container's, or all of them)."""
        with self._guard:
            gone = [(p, e) for p, e in self._locks.items() if p.startswith(prefix)]
            for path, _ in gone:
                del self._locks[path]
        for _, (fd, tlock) in gone:
            with tlock:  # wait for a commit still using it
                os.close(fd)

    @contextlib.contextmanager
    def hold(self, path: str) -> Iterator[None]:
        """Hold the lock file ``path`` exclusively (made when missing)."""
        while True:
            entry = self._entry(path)
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
                with self._guard:
                    mine = self._locks.get(path) is entry
                    if mine:
                        del self._locks[path]
                if mine:  # else forget closes it
                    os.close(fd)

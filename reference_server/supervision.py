"""One façade per data root, and workers that never outlive their supervisor.

Two flock(2) files at the top of the data root (hidden names, which no account can take):

- ``.facade.lock``: held exclusively by the process that started the server (the supervisor,
  or the single worker) for its whole life; its pid is written in it for the refusal message.
- ``.facade-workers.lock``: held shared by every worker. The starter takes it exclusively for
  the start-up sweep of ``.staging``, so it never sweeps under workers still serving (for
  example those of a supervisor killed with SIGKILL, until they notice and stop).

A second server on the same data root refuses to start with a message naming the pid. Workers
ask the kernel for SIGTERM when their supervisor dies (``PR_SET_PDEATHSIG``) and also watch
the pipe multiprocessing keeps open to them from the supervisor (EOF when it dies), so they
stop through the normal SIGTERM path: in-flight requests finish or are aborted, never left
half-committed.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import multiprocessing
import os
import signal
from pathlib import Path

SERVER_LOCK = ".facade.lock"
WORKERS_LOCK = ".facade-workers.lock"
PR_SET_PDEATHSIG = 1

_held: list[int] = []  # lock descriptors kept open for the life of the process


def _open(root: Path, name: str) -> int:
    return os.open(root / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        return f" (pid {int(os.pread(fd, 32, 0).split()[0])})"
    return ""


class DataRootClaim:
    """This process's exclusive claim on a data root, taken before anything is swept."""

    def __init__(self, root: Path) -> None:
        self.root = root
        fd = _open(root, SERVER_LOCK)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise SystemExit(
                f"data root {root} is in use by another reference façade{holder}: "
                "stop it first, or give this one its own --data-root"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _held.append(fd)
        self._workers = _open(root, WORKERS_LOCK)
        try:
            fcntl.flock(self._workers, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._workers)
            raise SystemExit(
                f"data root {root}: workers of a previous reference façade are still serving "
                "(their supervisor died; they stop once their requests end): try again shortly"
            ) from None

    def release_workers_lock(self) -> None:
        """After the sweep: workers may now take the workers' lock (shared)."""
        os.close(self._workers)


def hold_worker_lock(root: Path) -> None:
    """Mark this process as a live worker of the data root, until it exits."""
    fd = _open(root, WORKERS_LOCK)
    fcntl.flock(fd, fcntl.LOCK_SH)
    _held.append(fd)


def die_with_parent() -> int | None:
    """In a worker: SIGTERM when the supervisor dies; returns the supervisor pipe to watch
    (readable at EOF, when the supervisor is gone), or None outside multiprocessing."""
    parent = multiprocessing.parent_process()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if parent is not None and os.getppid() != parent.pid:
        raise SystemExit(0)  # the supervisor died before the signal was asked for
    return parent.sentinel if parent is not None else None

"""The one way async code runs a blocking call (file I/O, flock, fsync): in the thread pool."""

from __future__ import annotations

import asyncio
import errno
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from reference_server.errors import StorageError

T = TypeVar("T")
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


async def blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking store call in the thread pool. Every store call goes through here, so this
    is the one place a full data root (ENOSPC, EDQUOT) becomes 507 InsufficientStorage; the store
    has already undone the partial write by then."""
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise StorageError("InsufficientStorage") from exc
        raise

"""Clean-up sweeps: what crashes and abandoned uploads leave behind.

- uncommitted blocks of blobs nobody commits (Azure drops them after a week; the façade after
  ``uncommitted_block_max_age_s``);
- staging leftovers (bodies, commits, record temps, trash) of crashed or dead workers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time

from reference_server.store.blocks import BlockStaging
from reference_server.store.layout import Layout


def collect_uncommitted(layout: Layout, blocks: BlockStaging, max_age_s: float) -> int:
    """Delete block staging dirs untouched for ``max_age_s``; returns how many."""
    base = layout.blocks_root
    cutoff = time.time() - max_age_s
    removed = 0
    for acct in os.listdir(base) if os.path.isdir(base) else []:
        for ct in os.listdir(os.path.join(base, acct)):
            ct_dir = os.path.join(base, acct, ct)
            for h in os.listdir(ct_dir):
                d = os.path.join(ct_dir, h)
                with contextlib.suppress(FileNotFoundError):
                    if os.stat(d).st_mtime < cutoff:
                        blocks.discard(d)
                        removed += 1
    return removed


def sweep_staging(staging: str, max_age_s: float = 0, pid: int | None = None) -> int:
    """Delete staging leftovers (bodies, commits, sidecar temps, trash) untouched for
    ``max_age_s``; returns how many. A crash leaves them behind. With 0 (at start, before any
    worker serves: the data root lock guarantees it) everything goes; live uploads touch
    their file with every batch. With ``pid`` (a worker that died), only the temp files
    named after that process go, whatever their age."""
    cutoff = time.time() - max_age_s
    removed = 0
    with os.scandir(staging) as it:
        entries = list(it)
    owner = f"-{pid}-"
    for e in entries:
        with contextlib.suppress(FileNotFoundError):
            if pid is not None:
                # temp names: <kind>-<pid>-<tag>-<n> (atomic.TempFiles)
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

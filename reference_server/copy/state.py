"""The copy state of a blob: the x-ms-copy-* headers of the last Copy Blob into it (id, status,
progress, completion time, source), kept in the blob's property record. The store records them
as given; what they mean (a pending copy, which copy id) is decided here."""

from __future__ import annotations

import time

from reference_server.errors import StorageError
from reference_server.store import BlobProps, Store
from reference_server.xmlbody import http_date


def progress_state(done: int, total: int) -> dict[str, str]:
    return {"x-ms-copy-progress": f"{done}/{total}"}


def finished_state(status: str, done: int, total: int, description: str = "") -> dict[str, str]:
    state = {
        "x-ms-copy-status": status,
        "x-ms-copy-completion-time": http_date(time.time()),
        **progress_state(done, total),
    }
    if description:
        state["x-ms-copy-status-description"] = description
    return state


def update_copy_state(
    store: Store, acct: str, ct: str, name: str, copy_id: str, state: dict[str, str], touch: bool
) -> BlobProps:
    """Merge ``state`` into the copy state of the blob whose pending copy is ``copy_id``
    (NoPendingCopyOperation, CopyIdMismatch otherwise). ``touch`` gives it a new ETag and
    Last-Modified (Abort Copy); progress updates keep them, so the final commit can be
    conditioned on the ETag. Blocking."""

    def change(props: BlobProps) -> bool:
        if props.copy.get("x-ms-copy-status") != "pending":
            raise StorageError("NoPendingCopyOperation")
        if props.copy.get("x-ms-copy-id") != copy_id:
            raise StorageError("CopyIdMismatch")
        props.copy = {**props.copy, **state}
        return touch

    return store.update_blob(acct, ct, name, change)

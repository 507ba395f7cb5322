"""Copy state in the copy package: which copy a blob's x-ms-copy-* headers allow to update."""

from __future__ import annotations

from pathlib import Path

import pytest

from reference_server.conditions import Conditions
from reference_server.copy.state import finished_state, progress_state, update_copy_state
from reference_server.errors import StorageError
from reference_server.store import BlobProps, ContentSettings, Store

ACCT, CT = "acct", "ctr"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "data", [ACCT])
    s.create_container(ACCT, CT, {})
    return s


def put(store: Store, name: str, copy: dict[str, str] | None) -> BlobProps:
    upload = store.new_upload(ACCT, CT, want_md5=False, limit=0)
    return store.put_blob(ACCT, CT, name, upload, ContentSettings(), {}, Conditions(), copy)


def pending(copy_id: str) -> dict[str, str]:
    return {"x-ms-copy-id": copy_id, "x-ms-copy-status": "pending", **progress_state(0, 10)}


def test_progress_keeps_the_etag_and_abort_changes_it(store: Store) -> None:
    before = put(store, "b", pending("c1"))
    progressed = update_copy_state(store, ACCT, CT, "b", "c1", progress_state(4, 10), False)
    assert progressed.etag == before.etag
    assert store.get_blob(ACCT, CT, "b").copy["x-ms-copy-progress"] == "4/10"
    aborted = update_copy_state(store, ACCT, CT, "b", "c1", finished_state("aborted", 4, 10), True)
    read = store.get_blob(ACCT, CT, "b")
    assert aborted.etag != before.etag and read.etag == aborted.etag
    assert read.copy["x-ms-copy-status"] == "aborted" and read.copy["x-ms-copy-id"] == "c1"


@pytest.mark.parametrize(
    ("copy", "code"),
    [
        (None, "NoPendingCopyOperation"),  # never copied into
        ({"x-ms-copy-id": "c1", "x-ms-copy-status": "success"}, "NoPendingCopyOperation"),
        (pending("other"), "CopyIdMismatch"),
    ],
)
def test_only_the_pending_copy_updates(
    store: Store, copy: dict[str, str] | None, code: str
) -> None:
    before = put(store, "b", copy)
    with pytest.raises(StorageError) as exc:
        update_copy_state(store, ACCT, CT, "b", "c1", progress_state(1, 10), True)
    assert exc.value.code == code
    read = store.get_blob(ACCT, CT, "b")
    assert (read.etag, read.copy) == (before.etag, before.copy)


def test_a_missing_blob_has_no_copy(store: Store) -> None:
    with pytest.raises(StorageError) as exc:
        update_copy_state(store, ACCT, CT, "gone", "c1", progress_state(1, 1), False)
    assert exc.value.code == "BlobNotFound"

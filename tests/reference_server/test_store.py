"""The Store called directly (no HTTP): its record-update primitive, which Set Blob Properties
and the copy package's state updates go through."""

from __future__ import annotations

from pathlib import Path

import pytest

from reference_server.conditions import Conditions
from reference_server.errors import StorageError
from reference_server.store import BlobProps, ContentSettings, Store

ACCT, CT = "acct", "ctr"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "data", [ACCT])
    s.create_container(ACCT, CT, {})
    return s


def put(store: Store, name: str, data: bytes) -> BlobProps:
    upload = store.new_upload(ACCT, CT, want_md5=True, limit=1 << 20)
    upload.write(data)
    return store.put_blob(ACCT, CT, name, upload, ContentSettings(), {"k": "v"}, Conditions())


def test_update_blob_without_touch_keeps_etag_and_persists(store: Store) -> None:
    before = put(store, "a/b.bin", b"abc")

    def change(props: BlobProps) -> bool:
        props.metadata["n"] = "1"
        return False

    after = store.update_blob(ACCT, CT, "a/b.bin", change)
    read = store.get_blob(ACCT, CT, "a/b.bin")
    assert (after.etag, after.last_modified) == (before.etag, before.last_modified)
    assert read.metadata == {"k": "v", "n": "1"} and read.etag == before.etag


def test_update_blob_with_touch_gives_a_new_etag(store: Store) -> None:
    before = put(store, "x", b"abc")
    after = store.update_blob(ACCT, CT, "x", lambda props: True)
    assert after.etag != before.etag
    assert store.get_blob(ACCT, CT, "x").etag == after.etag
    opened = store.open_blob(ACCT, CT, "x")
    try:  # the bytes stay
        assert opened.file.read() == b"abc"
    finally:
        opened.close()


def test_update_blob_that_raises_writes_nothing(store: Store) -> None:
    before = put(store, "x", b"abc")

    def change(props: BlobProps) -> bool:
        props.metadata = {"half": "done"}
        raise StorageError("ConditionNotMet")

    with pytest.raises(StorageError) as exc:
        store.update_blob(ACCT, CT, "x", change)
    assert exc.value.code == "ConditionNotMet"
    read = store.get_blob(ACCT, CT, "x")
    assert (read.etag, read.metadata) == (before.etag, {"k": "v"})


@pytest.mark.parametrize(
    ("container", "name", "code"),
    [
        (CT, "missing", "BlobNotFound"),
        (CT, "a//b", "BlobNotFound"),  # a name that cannot map finds nothing
        ("nope", "x", "ContainerNotFound"),
    ],
)
def test_update_blob_of_nothing(store: Store, container: str, name: str, code: str) -> None:
    with pytest.raises(StorageError) as exc:
        store.update_blob(ACCT, container, name, lambda props: True)
    assert exc.value.code == code


def test_open_blob_reads_a_small_blob_whole_in_the_same_call(store: Store) -> None:
    put(store, "small", b"abc")
    put(store, "large", b"x" * 100)
    small = store.open_blob(ACCT, CT, "small", read_up_to=64)
    large = store.open_blob(ACCT, CT, "large", read_up_to=64)
    plain = store.open_blob(ACCT, CT, "small")
    try:  # above the threshold (or without one) the file is left for sendfile
        assert (small.content, large.content, plain.content) == (b"abc", None, None)
        assert large.file.read() == b"x" * 100
    finally:
        for opened in (small, large, plain):
            opened.close()


def test_a_commit_is_durable_before_it_is_answered(
    store: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Acknowledged means durable: the record set after the bytes' fsync is fsynced with the
    file's inode, and the rename into the blob's directory is fsynced in that directory."""
    import os

    events: list[tuple[str, str]] = []
    real_fsync, real_rename, real_setxattr = os.fsync, os.rename, os.setxattr

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def rename(src: str, dst: str, **kw: object) -> None:
        events.append(("rename", str(dst)))
        real_rename(src, dst, **kw)

    def setxattr(path: str, *args: object, **kw: object) -> None:
        events.append(("setxattr", str(path)))
        real_setxattr(path, *args, **kw)

    upload = store.new_upload(ACCT, CT, want_md5=True, limit=1 << 20)
    upload.write(b"durable")
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "setxattr", setxattr)
    store.put_blob(ACCT, CT, "d/x.bin", upload, ContentSettings(), {}, Conditions())
    kinds = [kind for kind, _ in events]
    blob_dir = str((tmp_path / "data").resolve())
    rename_at = kinds.index("rename")
    target = Path(events[rename_at][1])
    assert target.name == "x.bin" and store.get_blob(ACCT, CT, "d/x.bin").size == 7
    if "setxattr" in kinds:  # the record in an xattr: fsynced after it was set, before the rename
        assert "fsync" in kinds[kinds.index("setxattr") : rename_at]
    # the directory that received the rename is fsynced after it
    after = [path for kind, path in events[rename_at + 1 :] if kind == "fsync"]
    assert str(target.parent) in after and str(target.parent).startswith(blob_dir)

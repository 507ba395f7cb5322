"""AzCopy gate: the real AzCopy copies, syncs and removes a dataset; every byte verified."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from harness.datasets import Dataset, dataset_from_dir, write_file
from harness.drivers.azcopy import AzCopyDriver
from harness.drivers.base import StepContext
from harness.runner import run_step
from harness.targets.base import Endpoint
from harness.verify import verify_tree

pytestmark = [pytest.mark.azcopy, pytest.mark.slow]


def assert_clean(result: object) -> None:
    assert result.ok, result.error  # type: ignore[attr-defined]
    assert result.failed == 0  # type: ignore[attr-defined]
    assert result.extra.get("TransfersFailed", 0) == 0  # type: ignore[attr-defined]


def test_copy_sync_remove(
    gate_step: Callable[..., StepContext],
    service: BlobServiceClient,
    container_name: str,
    small_and_large: Dataset,
    tmp_path: Path,
) -> None:
    azcopy = AzCopyDriver()
    service.create_container(container_name)
    ds = small_and_large

    before_upload = time.time()
    up = run_step(azcopy, gate_step("upload", dataset=ds, prefix="data/"))
    assert_clean(up)
    assert "--put-md5" in up.extra["argv"]
    assert (up.objects, up.bytes) == (ds.count, ds.total_bytes)
    container = service.get_container_client(container_name)
    remote = {b.name: b for b in container.list_blobs(name_starts_with="data/")}
    assert sorted(remote) == sorted("data/" + f.path for f in ds.files)
    # --put-md5 stored each file's MD5, multi-block blobs included
    assert all(
        remote["data/" + f.path].content_settings.content_md5.hex() == f.md5 for f in ds.files
    )

    down_dir = tmp_path / "down"
    down = run_step(
        azcopy,
        gate_step(
            "download",
            dataset=ds,
            prefix="data/",
            local_dir=down_dir,
        ),
    )
    assert_clean(down)
    assert "--check-md5=FailIfDifferent" in down.extra["argv"]
    assert (down.verified_objects, down.verified_bytes) == (ds.count, ds.total_bytes)

    # change the local tree: modify one file, add one, delete one; then sync both ways
    work = tmp_path / "work"
    shutil.copytree(ds.root, work)
    # sync compares local mtimes with Last-Modified, which has one-second resolution: a dataset
    # generated in the same second as its upload would look newer than its blobs. Date the
    # unchanged files before the upload, so only the real changes below count.
    for path in work.rglob("*"):
        if path.is_file():
            os.utime(path, (before_upload - 2, before_upload - 2))
    changed, removed = ds.files[0].path, ds.files[1].path
    write_file(work / changed, 5000, seed=99)
    write_file(work / "small/added.bin", 7777, seed=98)
    os.remove(work / removed)
    local = dataset_from_dir(work)

    sync_up = run_step(
        azcopy,
        gate_step(
            "sync-up",
            local_dir=work,
            prefix="data/",
            options={"delete_destination": True},
        ),
    )
    assert_clean(sync_up)
    assert sync_up.objects == 2  # the modified and the added file, nothing else
    names = {b.name for b in container.list_blobs(name_starts_with="data/")}
    assert names == {"data/" + f.path for f in local.files}

    sync_down = run_step(
        azcopy,
        gate_step(
            "sync-down",
            dataset=local,
            prefix="data/",
            local_dir=down_dir,
            options={"delete_destination": True},
        ),
    )
    assert_clean(sync_down)
    check = verify_tree(down_dir, local)
    assert check.ok and not check.extra, check.summary()
    assert check.objects == local.count

    removed_all = run_step(azcopy, gate_step("remove", prefix="data/"))
    assert_clean(removed_all)
    assert removed_all.objects == local.count
    assert list(container.list_blobs()) == []


def test_virtual_host_name_through_lab_proxy(
    gate_step: Callable[..., StepContext],
    lab_endpoint: Endpoint,
    service: BlobServiceClient,
    container_name: str,
    small_and_large: Dataset,
    tmp_path: Path,
) -> None:
    """AzCopy addresses <account>.blob.lab.test with no --from-to; the lab proxy routes it."""
    azcopy = AzCopyDriver()
    service.create_container(container_name)
    small = Dataset(
        small_and_large.name,
        small_and_large.root,
        [f for f in small_and_large.files if f.path.startswith("small/")][:60],
    )
    shutil.copytree(small.root, tmp_path / "src", ignore=_only(small))
    src = dataset_from_dir(tmp_path / "src")
    opts = {"via_proxy": True}
    up = run_step(azcopy, gate_step("upload", dataset=src, options=opts))
    assert_clean(up)
    assert "--from-to" not in up.extra["argv"]
    assert f"{lab_endpoint.account}.blob.lab.test" in up.extra["argv"]
    assert up.extra["proxy_forwarded"] > 0 and up.extra["proxy_refused"] == 0
    down = run_step(azcopy, gate_step("download", dataset=src, options=opts))
    assert_clean(down)
    assert "--from-to" not in down.extra["argv"]
    assert (down.verified_objects, down.verified_bytes) == (src.count, src.total_bytes)
    listed = run_step(azcopy, gate_step("list"))
    assert listed.ok, listed.error
    assert (listed.objects, listed.bytes) == (src.count, src.total_bytes)


def _only(ds: Dataset):
    keep = {f.path for f in ds.files}

    def ignore(directory: str, names: list[str]) -> list[str]:
        rel = Path(directory).relative_to(ds.root)
        return [
            n for n in names if (Path(directory) / n).is_file() and (rel / n).as_posix() not in keep
        ]

    return ignore

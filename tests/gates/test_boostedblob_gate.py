"""boostedblob gate: cp, ls, rm and sync at high concurrency through the endpoint override."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient

from harness.datasets import Dataset, dataset_from_dir, write_file
from harness.drivers.base import StepContext
from harness.drivers.boostedblob import BoostedblobDriver
from harness.results import StepResult
from harness.runner import run_step
from harness.verify import verify_tree

pytestmark = pytest.mark.boostedblob
MIB = 1024 * 1024


def test_cp_ls_sync_rm(
    gate_step: Callable[..., StepContext],
    service: BlobServiceClient,
    container_name: str,
    small_tree: Dataset,
    tmp_path: Path,
) -> None:
    bbb = BoostedblobDriver()
    container = service.create_container(container_name)

    def run(op: str, **fields: Any) -> StepResult:
        fields = {"dataset": small_tree, "prefix": "bbb/", "block_size_mib": 4, **fields}
        return run_step(bbb, gate_step(op, concurrency=64, **fields))

    up = run("upload")
    assert up.ok, up.error
    assert (up.objects, up.bytes) == (small_tree.count, small_tree.total_bytes)
    assert "--concurrency 64" in up.extra["argv"]
    # the 10 MiB file went up as 4 MiB blocks, committed by a block list
    big = next(f for f in small_tree.files if f.size > 4 * MIB)
    committed, _ = container.get_blob_client("bbb/" + big.path).get_block_list("committed")
    assert len(committed) == 3

    listed = run("list")
    assert listed.ok, listed.error
    assert (listed.objects, listed.bytes) == (small_tree.count, small_tree.total_bytes)

    down_dir = tmp_path / "down"
    down = run("download", local_dir=down_dir)
    assert down.ok, down.error
    assert (down.verified_objects, down.verified_bytes) == (
        small_tree.count,
        small_tree.total_bytes,
    )

    work = tmp_path / "work"
    shutil.copytree(small_tree.root, work)
    write_file(work / small_tree.files[0].path, 4321, seed=77)  # modified (new size)
    write_file(work / "tree/new.bin", 1234, seed=78)  # added
    (work / small_tree.files[1].path).unlink()  # deleted
    local = dataset_from_dir(work)
    synced = run("sync-up", local_dir=work, options={"delete_destination": True})
    assert synced.ok, synced.error
    names = {b.name for b in container.list_blobs(name_starts_with="bbb/")}
    assert names == {"bbb/" + f.path for f in local.files}

    back = run("sync-down", dataset=local, local_dir=down_dir, options={"delete_destination": True})
    assert back.ok, back.error
    check = verify_tree(down_dir, local)
    assert check.ok and not check.extra, check.summary()

    removed = run("remove")
    assert removed.ok, removed.error
    assert removed.objects == local.count  # blobs deleted, not DELETE requests
    assert list(container.list_blobs()) == []

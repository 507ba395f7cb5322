"""rclone gate: copy up and down, lsf and delete through the azureblob backend."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from azure.storage.blob import BlobServiceClient

from harness.datasets import Dataset
from harness.drivers.base import StepContext
from harness.drivers.rclone import RcloneDriver
from harness.results import StepResult
from harness.runner import run_step

pytestmark = pytest.mark.rclone


def test_copy_lsf_delete(
    gate_step: Callable[..., StepContext],
    service: BlobServiceClient,
    container_name: str,
    small_tree: Dataset,
) -> None:
    rclone = RcloneDriver()
    service.create_container(container_name)

    def run(op: str) -> StepResult:
        return run_step(rclone, gate_step(op, dataset=small_tree, prefix="rc/", block_size_mib=4))

    up = run("upload")
    assert up.ok, up.error
    assert (up.objects, up.bytes) == (small_tree.count, small_tree.total_bytes)
    remote = {b.name: b.size for b in service.get_container_client(container_name).list_blobs()}
    assert remote == {"rc/" + f.path: f.size for f in small_tree.files}

    listed = run("list")
    assert listed.ok, listed.error
    assert (listed.objects, listed.bytes) == (small_tree.count, small_tree.total_bytes)

    down = run("download")
    assert down.ok, down.error
    assert (down.verified_objects, down.verified_bytes) == (
        small_tree.count,
        small_tree.total_bytes,
    )

    gone = run("remove")
    assert gone.ok, gone.error
    assert gone.objects == small_tree.count
    assert run("list").objects == 0

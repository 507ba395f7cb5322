"""rclone gate: copy up and down, lsf and delete through the azureblob backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from harness.datasets import Dataset
from harness.drivers.base import StepContext
from harness.drivers.rclone import RcloneDriver
from harness.targets.base import Endpoint

pytestmark = pytest.mark.rclone


def test_copy_lsf_delete(
    lab_endpoint: Endpoint,
    service: BlobServiceClient,
    container_name: str,
    small_tree: Dataset,
    tmp_path: Path,
) -> None:
    rclone = RcloneDriver()
    service.create_container(container_name)

    def run(op: str):
        ctx = StepContext(
            scenario="rclone-gate",
            step=op,
            operation=op,
            endpoint=lab_endpoint,
            container=container_name,
            workdir=tmp_path / op,
            dataset=small_tree,
            prefix="rc/",
            concurrency=16,
            block_size_mib=4,
            timeout_s=300,
        )
        return rclone.run(ctx)

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

"""AzCopy service-to-service gate: `azcopy copy` BlobBlob into the façade, every byte verified.

Two sources: a second façade (another port, another account) and Azurite. AzCopy reads the
source listing itself, then asks the destination façade for Put Blob From URL (small blobs) and
Put Block From URL with x-ms-source-range (blobs larger than the block size) + Put Block List:
the destination fetches every byte from the source.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from harness.datasets import Dataset
from harness.drivers.azcopy import AzCopyDriver
from harness.drivers.base import StepContext
from harness.results import StepResult
from harness.targets.azurite import AzuriteTarget
from harness.targets.base import Endpoint
from harness.targets.reference import ReferenceTarget

pytestmark = [pytest.mark.azcopy, pytest.mark.slow]

BLOCK_MIB = 4  # the 10 MiB file of ``small_tree`` becomes three Put Block From URL calls
LAKE_ACCOUNT = "lake"
LAKE_KEY = base64.b64encode(b"lake-account-key-for-the-s2s-gate").decode()


@pytest.fixture
def lake(tmp_path: Path) -> Iterator[Endpoint]:
    """A second reference façade, with an account of its own, as the source."""
    target = ReferenceTarget(extra_args=["--account", f"{LAKE_ACCOUNT}:{LAKE_KEY}"])
    target.start(tmp_path / "lake")
    try:
        assert target.server is not None
        yield Endpoint(
            target="reference-lake",
            account=LAKE_ACCOUNT,
            blob_url=f"http://127.0.0.1:{target.server.port}/{LAKE_ACCOUNT}",
            key=LAKE_KEY,
        )
    finally:
        target.stop()


@pytest.fixture
def azurite(tmp_path: Path) -> Iterator[Endpoint]:
    target = AzuriteTarget()
    target.start(tmp_path / "azurite")
    try:
        yield target.endpoint()
    finally:
        target.stop()


def seed(endpoint: Endpoint, container: str, dataset: Dataset) -> None:
    """Put the dataset into the source with the SDK (the gate is about the copy, not this)."""
    with BlobServiceClient(endpoint.blob_url, credential=endpoint.key) as client:
        ct = client.create_container(container)
        for entry in dataset.files:
            with open(dataset.root / entry.path, "rb") as f:
                ct.upload_blob(entry.path, f, length=entry.size)


def s2s_copy(
    source: Endpoint,
    source_container: str,
    dest: Endpoint,
    container: str,
    dataset: Dataset,
    workdir: Path,
) -> StepResult:
    return AzCopyDriver().run(
        StepContext(
            scenario="s2s-gate",
            step="copy",
            operation="copy",
            endpoint=dest,
            container=container,
            workdir=workdir,
            dataset=dataset,
            concurrency=16,
            block_size_mib=BLOCK_MIB,
            timeout_s=300,
            source_endpoint=source,
            source_container=source_container,
        )
    )


def assert_copied(result: StepResult, dest: Endpoint, container: str, dataset: Dataset) -> None:
    assert result.ok, result.error
    assert result.failed == 0 and result.extra.get("TransfersFailed", 0) == 0
    assert "--from-to=BlobBlob" in result.extra["argv"]
    assert (result.objects, result.bytes) == (dataset.count, dataset.total_bytes)
    with BlobServiceClient(dest.blob_url, credential=dest.key) as client:
        ct = client.get_container_client(container)
        assert sorted(b.name for b in ct.list_blobs()) == sorted(f.path for f in dataset.files)
        for entry in dataset.files:
            data = ct.download_blob(entry.path).readall()
            assert hashlib.md5(data).hexdigest() == entry.md5, entry.path
        # the multi-block file arrived as blocks staged from source ranges
        big = max(dataset.files, key=lambda f: f.size)
        blocks = ct.get_blob_client(big.path).get_block_list("committed")[0]
        assert len(blocks) == -(-big.size // (BLOCK_MIB * 2**20))
        assert sum(b.size for b in blocks) == big.size


def test_azcopy_s2s_between_two_facades(
    lab_endpoint: Endpoint, lake: Endpoint, small_tree: Dataset, tmp_path: Path
) -> None:
    seed(lake, "lake-data", small_tree)
    result = s2s_copy(lake, "lake-data", lab_endpoint, "edge-data", small_tree, tmp_path / "copy")
    assert_copied(result, lab_endpoint, "edge-data", small_tree)


@pytest.mark.azurite
def test_azcopy_s2s_from_azurite(
    lab_endpoint: Endpoint, azurite: Endpoint, small_tree: Dataset, tmp_path: Path
) -> None:
    # Both use devstoreaccount1 on 127.0.0.1: AzCopy ignores the port when it refuses a copy
    # onto itself ("source and destination are the same"), so the containers differ.
    seed(azurite, "azurite-data", small_tree)
    result = s2s_copy(
        azurite, "azurite-data", lab_endpoint, "edge-data", small_tree, tmp_path / "c"
    )
    assert_copied(result, lab_endpoint, "edge-data", small_tree)

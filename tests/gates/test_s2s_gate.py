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
from harness.runner import Runner, RunOutcome, run_step
from harness.scenario import load
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
    return run_step(
        AzCopyDriver(),
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
        ),
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


def _run_scenario(name: str, overrides: list[str], tmp_path: Path) -> RunOutcome:
    scenario = load(name, overrides)
    return Runner(scenario, out=tmp_path / "reports", cache_dir=tmp_path / "datasets").run()


def test_hydrate_scenario_reports_measured_numbers(tmp_path: Path) -> None:
    """The shipped `hydrate` scenario, scaled down: lake and edge façades, AzCopy S2S."""
    outcome = _run_scenario(
        "hydrate",
        [
            "datasets.0.files.0.count=40",
            "datasets.0.files.1.count=1",
            "steps.hydrate.repeats=1",
            "criteria.1.expect=min(objects) == 41",
            "criteria.3.expect=verified_objects == 41",
        ],
        tmp_path,
    )
    assert outcome.exit_code == 0, (outcome.notes, outcome.verdicts)
    rows = outcome.results.set_index("step")
    assert set(rows.loc["seed-lake", ["target"]]) == {"lake"}
    hydrate = rows.loc["hydrate"]
    assert (hydrate["objects"], hydrate["failed"]) == (41, 0)
    assert hydrate["bytes"] > 0 and hydrate["duration_s"] > 0
    assert 0 < hydrate["extra"]["first_object_s"] <= hydrate["duration_s"]
    assert rows.loc["verify-edge", "verified_objects"] == 41


def test_checkpoint_scenario_reports_measured_numbers(tmp_path: Path) -> None:
    """The shipped `checkpoint` scenario, scaled down: N writers, sync back, read back."""
    outcome = _run_scenario(
        "checkpoint",
        [
            "datasets.0.files.0.count=4",
            "datasets.0.files.0.size=6MiB",
            "steps.save.repeats=1",
            "criteria.1.expect=min(objects) == 4",
            "criteria.2.expect=objects == 4",
            "criteria.3.expect=verified_objects == 4",
        ],
        tmp_path,
    )
    assert outcome.exit_code == 0, (outcome.notes, outcome.verdicts)
    rows = outcome.results.set_index("step")
    save = rows.loc["save"]
    assert (save["objects"], save["extra"]["writers"]) == (4, 4)
    assert 0 < save["extra"]["slowest_writer_s"] <= save["duration_s"]
    assert save["extra"]["min_writer_mib_s"] > 0
    assert rows.loc["sync-back", "target"] == "lake" and rows.loc["sync-back", "objects"] == 4
    assert rows.loc["cold-read", "verified_objects"] == 4

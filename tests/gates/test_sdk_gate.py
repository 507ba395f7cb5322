"""SDK gate: list_blobs (prefixes, delimiters, > 5,000 blobs), multi-block upload_blob,
download_blob, the aio client, and ``UseDevelopmentStorage=true``."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from azure.storage.blob import BlobBlock, BlobPrefix, BlobServiceClient
from azure.storage.blob.aio import BlobServiceClient as AioBlobServiceClient

from harness.datasets import Dataset
from harness.drivers.base import StepContext
from harness.drivers.sdk import SdkAioDriver, SdkDriver
from harness.paths import ROOT
from harness.results import StepResult
from harness.runner import run_step
from harness.targets.base import Endpoint, ServerProcess

pytestmark = pytest.mark.sdk
MIB = 1024 * 1024
MANY = 5_100  # past the 5,000-blob page the service returns by default
DIRS = 6


def blob_name(i: int) -> str:
    return f"d{i % DIRS}/blob-{i:05d}"


def payload(size: int, seed: int) -> bytes:
    return np.random.default_rng(seed).bytes(size)


async def put_many(endpoint: Endpoint, container: str, count: int) -> None:
    """Many small blobs quickly: concurrent Put Blobs with the aio client."""
    async with AioBlobServiceClient(endpoint.blob_url, credential=endpoint.key) as svc:
        client = svc.get_container_client(container)
        gate = asyncio.Semaphore(64)

        async def put(i: int) -> None:
            async with gate:
                await client.upload_blob(
                    f"d{i % DIRS}/blob-{i:05d}", f"#{i}".encode(), overwrite=True
                )

        await asyncio.gather(*(put(i) for i in range(count)))


@pytest.mark.slow
def test_listing_pagination_prefixes_delimiters(
    lab_endpoint: Endpoint, service: BlobServiceClient, container_name: str
) -> None:
    container = service.create_container(container_name)
    if data_root := lab_endpoint.extra.get("data_root"):
        # the façade serves files other programs write into its data root: the fastest way in
        for i in range(MANY):
            path = Path(data_root) / lab_endpoint.account / container_name / blob_name(i)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f"#{i}".encode())
    else:
        asyncio.run(put_many(lab_endpoint, container_name, MANY))

    # one pass with the service's default page size: 5,000 names, then a NextMarker page
    pages = [[b.name for b in page] for page in container.list_blobs().by_page()]
    assert [len(p) for p in pages] == [5000, MANY - 5000]
    names = [n for page in pages for n in page]
    assert names == sorted(names) == sorted(blob_name(i) for i in range(MANY))

    in_d3 = [b.name for b in container.list_blobs(name_starts_with="d3/")]
    assert in_d3 == sorted(n for n in names if n.startswith("d3/"))

    top = list(container.walk_blobs(delimiter="/"))
    assert all(isinstance(p, BlobPrefix) for p in top)
    assert [p.name for p in top] == [f"d{i}/" for i in range(DIRS)]
    inner = list(container.walk_blobs(name_starts_with="d2/", delimiter="/"))
    assert len(inner) == len([n for n in names if n.startswith("d2/")])


def test_multi_block_upload_and_download(
    lab_endpoint: Endpoint, container_name: str, tmp_path: Path
) -> None:
    data = payload(9 * MIB + 12345, seed=1)
    with BlobServiceClient(
        lab_endpoint.blob_url,
        credential=lab_endpoint.key,
        max_single_put_size=1 * MIB,
        max_block_size=1 * MIB,
        max_chunk_get_size=1 * MIB,
        max_single_get_size=1 * MIB,
    ) as svc:
        container = svc.create_container(container_name)
        blob = container.get_blob_client("ckpt/shard-0.bin")
        blob.upload_blob(data, max_concurrency=8)
        committed, uncommitted = blob.get_block_list("all")
        assert len(committed) == 10 and not uncommitted  # ten 1 MiB blocks, all committed
        assert all(isinstance(b, BlobBlock) for b in committed)
        props = blob.get_blob_properties()
        assert props.size == len(data) and props.blob_type == "BlockBlob"
        assert props.etag and props.last_modified

        assert blob.download_blob(max_concurrency=4).readall() == data
        with open(tmp_path / "shard.bin", "wb") as fh:
            assert blob.download_blob(max_concurrency=4).readinto(fh) == len(data)
        assert (tmp_path / "shard.bin").read_bytes() == data
        ranged = blob.download_blob(offset=MIB - 10, length=100).readall()
        assert ranged == data[MIB - 10 : MIB + 90]


def test_aio_client(lab_endpoint: Endpoint, container_name: str) -> None:
    data = payload(5 * MIB + 7, seed=2)

    async def scenario() -> None:
        async with AioBlobServiceClient(
            lab_endpoint.blob_url,
            credential=lab_endpoint.key,
            max_single_put_size=MIB,
            max_block_size=MIB,
            max_chunk_get_size=MIB,
            max_single_get_size=MIB,
        ) as svc:
            container = await svc.create_container(container_name)
            await container.upload_blob("a/big.bin", data, max_concurrency=8)
            await asyncio.gather(*(container.upload_blob(f"a/s{i}", b"x" * i) for i in range(20)))
            stream = await container.download_blob("a/big.bin", max_concurrency=4)
            assert await stream.readall() == data
            listed = [(b.name, b.size) async for b in container.list_blobs(name_starts_with="a/")]
            assert len(listed) == 21 and dict(listed)["a/big.bin"] == len(data)
            walked = [p.name async for p in container.walk_blobs(delimiter="/")]
            assert walked == ["a/"]
            await container.delete_blob("a/big.bin")
            assert len([b async for b in container.list_blobs()]) == 20

    asyncio.run(scenario())


@pytest.mark.parametrize("driver_cls", [SdkDriver, SdkAioDriver], ids=["sdk", "sdk-aio"])
def test_drivers_upload_download_list_remove(
    driver_cls: type,
    gate_step: Callable[..., StepContext],
    container_name: str,
    small_tree: Dataset,
) -> None:
    driver = driver_cls()

    def run(op: str, **options: object) -> StepResult:
        ctx = gate_step(
            op,
            dataset=small_tree,
            prefix="p/",
            concurrency=8,
            block_size_mib=4,
            timeout_s=600.0,
            options=dict(options),
        )
        return run_step(driver, ctx)

    up = run("upload")
    assert up.ok, up.error
    assert (up.objects, up.bytes) == (small_tree.count, small_tree.total_bytes)
    assert up.p50_ms is not None and up.max_ms >= up.p50_ms
    listed = run("list")
    assert (listed.objects, listed.bytes) == (small_tree.count, small_tree.total_bytes)
    walked = run("list", delimiter="/")
    assert walked.objects == small_tree.count
    down = run("download")
    assert down.ok, down.error
    assert (down.verified_objects, down.verified_bytes) == (
        small_tree.count,
        small_tree.total_bytes,
    )
    again = run("sync-up")
    assert again.ok and again.objects == 0  # nothing changed
    gone = run("remove")
    assert gone.ok and gone.objects == small_tree.count
    assert run("list").objects == 0


def test_use_development_storage_connection_string(tmp_path: Path) -> None:
    """``UseDevelopmentStorage=true`` means http://127.0.0.1:10000/devstoreaccount1."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", 10000))
        except OSError:
            pytest.fail("port 10000 is taken: UseDevelopmentStorage=true needs it for the façade")
    argv = [sys.executable, "-m", "reference_server", "--host", "127.0.0.1", "--port", "10000"]
    server = ServerProcess(
        "reference façade",
        [*argv, "--data-root", str(tmp_path / "data")],
        10000,
        tmp_path / "server.log",
        cwd=ROOT,
    )
    server.start()
    try:
        with BlobServiceClient.from_connection_string("UseDevelopmentStorage=true") as svc:
            assert svc.account_name == "devstoreaccount1"
            container = svc.create_container("devstorage-gate")
            container.upload_blob("hello.txt", b"hello lab")
            assert container.download_blob("hello.txt").readall() == b"hello lab"
            assert [b.name for b in container.list_blobs()] == ["hello.txt"]
            assert "devstorage-gate" in [c.name for c in svc.list_containers()]
    finally:
        server.stop()

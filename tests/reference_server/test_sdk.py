"""The real azure-storage-blob SDK, sync and aio, against the façade."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid

import pytest
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContentSettings
from azure.storage.blob.aio import BlobServiceClient as AioBlobServiceClient

pytestmark = pytest.mark.sdk
MiB = 1024 * 1024


def test_sdk_sync_round_trip(shared_server) -> None:
    svc = BlobServiceClient.from_connection_string(
        shared_server.connection_string, max_single_put_size=4 * MiB, max_block_size=4 * MiB
    )
    ct = svc.create_container(f"sdk-{uuid.uuid4().hex[:10]}", metadata={"Owner": "lab"})
    with pytest.raises(ResourceExistsError):
        svc.create_container(ct.container_name)
    assert ct.get_container_properties().metadata == {"Owner": "lab"}
    data = os.urandom(18 * MiB + 123)
    blob = ct.get_blob_client("ckpt/shard-0.bin")
    blob.upload_blob(
        data,
        max_concurrency=8,
        metadata={"Step": "10"},
        content_settings=ContentSettings(content_type="application/x-ckpt"),
    )
    assert len(blob.get_block_list()[0]) == 5
    props = blob.get_blob_properties()
    assert props.size == len(data) and props.metadata == {"Step": "10"}
    assert props.content_settings.content_type == "application/x-ckpt"
    got = blob.download_blob(max_concurrency=4).readall()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert blob.download_blob(offset=MiB, length=10).readall() == data[MiB : MiB + 10]
    with pytest.raises(ResourceExistsError):
        blob.upload_blob(b"x", overwrite=False)
    small = ct.upload_blob("ckpt/meta.json", b"{}", overwrite=True)
    assert small.get_blob_properties().content_settings.content_md5 == hashlib.md5(b"{}").digest()
    assert [b.name for b in ct.walk_blobs()] == ["ckpt/"]
    assert [b.name for b in ct.list_blobs(name_starts_with="ckpt/")] == [
        "ckpt/meta.json",
        "ckpt/shard-0.bin",
    ]
    blob.set_blob_metadata({"Step": "11"})
    assert blob.get_blob_properties().metadata == {"Step": "11"}
    blob.delete_blob()
    with pytest.raises(ResourceNotFoundError):
        blob.get_blob_properties()
    assert svc.get_account_information()["sku_name"] == "Standard_LRS"
    assert ct.container_name in [c.name for c in svc.list_containers(name_starts_with="sdk-")]
    ct.delete_container()


def test_sdk_pagination_over_5000(shared_server) -> None:
    svc = BlobServiceClient.from_connection_string(shared_server.connection_string)
    ct = svc.create_container(f"many-{uuid.uuid4().hex[:10]}")
    root = shared_server.data_root / shared_server.account / ct.container_name
    # Files dropped into the data root are blobs too: 5,100 of them in three directories.
    expected = []
    for d in ("d0", "d1", "d2"):
        (root / d).mkdir()
        for i in range(1700):
            (root / d / f"f{i:05d}").write_bytes(b"")
            expected.append(f"{d}/f{i:05d}")
    pages = list(ct.list_blobs().by_page())
    listed = [b.name for page in pages for b in page]
    assert listed == sorted(expected) and len(pages) == 2
    assert [b.name for b in ct.walk_blobs()] == ["d0/", "d1/", "d2/"]
    ct.delete_container()


def test_sdk_aio_round_trip(shared_server) -> None:
    async def run() -> None:
        async with AioBlobServiceClient.from_connection_string(
            shared_server.connection_string, max_single_put_size=2 * MiB, max_block_size=2 * MiB
        ) as svc:
            ct = await svc.create_container(f"aio-{uuid.uuid4().hex[:10]}")
            data = os.urandom(7 * MiB)
            await ct.upload_blob("x/big", data, max_concurrency=8)
            stream = await ct.download_blob("x/big", max_concurrency=4)
            assert await stream.readall() == data
            names = [b.name async for b in ct.list_blobs()]
            assert names == ["x/big"]
            await ct.delete_container()

    asyncio.run(run())

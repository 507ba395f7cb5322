"""adlfs gate: fsspec's Azure filesystem (what PyTorch and pandas loaders reach Blob through):
ls, find, info, open for reading and writing, put and get of a directory tree, bytes compared.

adlfs is given the endpoint in a connection string, so it never builds a
``*.blob.core.windows.net`` URL, and an account key, so it never falls back to
DefaultAzureCredential (whose managed identity probe is IMDS at 169.254.169.254). Every socket
the test opens is checked to go to loopback."""

from __future__ import annotations

import hashlib
import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.datasets import Dataset
from harness.targets.base import Endpoint

adlfs = pytest.importorskip("adlfs")

pytestmark = pytest.mark.adlfs


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[object]]:
    """Refuse (and record) any connection that is not to a loopback address: no real Azure
    host, no IMDS. Name lookups of anything but localhost fail too. Loopback connections are
    recorded as well, proving the guard sees adlfs's sockets."""
    refused: list[object] = []
    allowed: list[object] = []
    connect, getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def guarded_connect(self: socket.socket, address: object) -> None:
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and not ipaddress.ip_address(host).is_loopback:
            refused.append(address)
            raise ConnectionRefusedError(f"the gate stays on loopback, not {address}")
        allowed.append(address)
        return connect(self, address)

    def guarded_getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        name = host.decode() if isinstance(host, bytes) else str(host)
        try:
            ipaddress.ip_address(name)
        except ValueError:
            if name != "localhost":
                refused.append(name)
                raise socket.gaierror(f"the gate resolves no names ({name})") from None
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    return {"refused": refused, "allowed": allowed}


@pytest.fixture
def fs(lab_endpoint: Endpoint, loopback_only: dict[str, list[object]]) -> Iterator[object]:
    conn = (
        f"DefaultEndpointsProtocol=http;AccountName={lab_endpoint.account};"
        f"AccountKey={lab_endpoint.key};BlobEndpoint={lab_endpoint.blob_url};"
    )
    filesystem = adlfs.AzureBlobFileSystem(
        account_name=lab_endpoint.account,
        connection_string=conn,
        anon=False,
        skip_instance_cache=True,
    )
    yield filesystem
    assert not loopback_only["refused"], f"adlfs tried to leave loopback: {loopback_only}"
    assert loopback_only["allowed"], "the guard saw none of adlfs's connections"


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_ls_find_info_open_put_get(
    fs: object, container_name: str, small_tree: Dataset, tmp_path: Path
) -> None:
    fs.mkdir(container_name)  # type: ignore[attr-defined]
    root = f"{container_name}/tree"

    fs.put(str(small_tree.root) + "/", root, recursive=True)  # type: ignore[attr-defined]
    found = fs.find(root)  # type: ignore[attr-defined]
    assert sorted(found) == sorted(f"{root}/{f.path}" for f in small_tree.files)

    top = {p.rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)}  # type: ignore[attr-defined]
    assert top == {f.path.split("/", 1)[0] for f in small_tree.files}
    for entry in small_tree.files[:5]:
        info = fs.info(f"{root}/{entry.path}")  # type: ignore[attr-defined]
        assert (info["type"], info["size"]) == ("file", entry.size)
    directory = next(f.path.rsplit("/", 1)[0] for f in small_tree.files if "/" in f.path)
    assert fs.info(f"{root}/{directory}")["type"] == "directory"  # type: ignore[attr-defined]

    payload = bytes(range(256)) * 4096  # 1 MiB through open("wb")
    with fs.open(f"{container_name}/written.bin", "wb") as out:  # type: ignore[attr-defined]
        out.write(payload[:1000])
        out.write(payload[1000:])
    with fs.open(f"{container_name}/written.bin", "rb") as back:  # type: ignore[attr-defined]
        assert back.read(10) == payload[:10]
        back.seek(500_000)
        assert back.read(100) == payload[500_000:500_100]
        back.seek(0)
        assert back.read() == payload

    local = tmp_path / "down"
    fs.get(root + "/", str(local), recursive=True)  # type: ignore[attr-defined]
    for entry in small_tree.files:
        got = local / entry.path
        assert got.stat().st_size == entry.size and _md5(got) == entry.md5, entry.path
    assert sum(1 for p in local.rglob("*") if p.is_file()) == small_tree.count

    fs.rm(root, recursive=True)  # type: ignore[attr-defined]
    assert not fs.exists(f"{root}/{small_tree.files[0].path}")  # type: ignore[attr-defined]

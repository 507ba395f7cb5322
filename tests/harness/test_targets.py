"""Targets: the embedded façade, Azurite and a URL, each driven by the real SDK."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest
from azure.storage.blob import BlobServiceClient

from harness import scenario
from harness.runner import Runner, read_results
from harness.targets import make_target
from harness.targets.base import Endpoint
from harness.targets.url import UrlTarget
from reference_server.config import DEV_ACCOUNT, DEV_KEY


def round_trip(endpoint: Endpoint, container: str) -> bytes:
    client = BlobServiceClient(
        endpoint.blob_url,
        credential={"account_name": endpoint.account, "account_key": endpoint.key},
    )
    client.create_container(container)
    blob = client.get_blob_client(container, "dir/hello.bin")
    blob.upload_blob(b"hello target" * 1000)
    data = blob.download_blob().readall()
    client.close()
    return data


@pytest.mark.sdk
def test_reference_target_starts_fresh_and_stops(tmp_path: Path) -> None:
    target = make_target("reference")
    target.start(tmp_path / "ref")
    try:
        (pid,) = target.server_pids()
        endpoint = target.endpoint()
        assert endpoint.blob_url.startswith("http://127.0.0.1:") and endpoint.key == DEV_KEY
        assert round_trip(endpoint, "tgt") == b"hello target" * 1000
        # the blob is a regular file in the run's own data root
        assert (tmp_path / "ref" / "data" / DEV_ACCOUNT / "tgt" / "dir" / "hello.bin").is_file()
        assert target.facts()["port"] == int(endpoint.blob_url.split(":")[2].split("/")[0])
    finally:
        target.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert target.server_pids() == []


@pytest.mark.azurite
@pytest.mark.sdk
def test_azurite_target_starts_and_stops(tmp_path: Path) -> None:
    target = make_target("azurite")
    target.start(tmp_path / "azurite")
    try:
        (pid,) = target.server_pids()
        assert round_trip(target.endpoint(), "tgt") == b"hello target" * 1000
        assert target.facts()["version"][0].isdigit()
    finally:
        target.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_url_target_credentials_from_the_environment() -> None:
    conn = (
        f"DefaultEndpointsProtocol=http;AccountName=acct;AccountKey={DEV_KEY};"
        "BlobEndpoint=http://127.0.0.1:9/acct;"
    )
    t = UrlTarget(None, {"AZURE_STORAGE_CONNECTION_STRING": conn})
    ep = t.endpoint()
    assert (ep.blob_url, ep.account, ep.key, ep.sas) == (
        "http://127.0.0.1:9/acct",
        "acct",
        DEV_KEY,
        None,
    )
    assert t.facts() == {
        "kind": "url",
        "url": "http://127.0.0.1:9/acct",
        "account": "acct",
        "credentials": "connection string",
    }  # never the secret itself

    t = UrlTarget("https://lab.blob.example.test/", {"AZURE_STORAGE_SAS_TOKEN": "?sv=x&sig=y"})
    assert (t.account, t.url, t.sas, t.key) == (
        "lab",
        "https://lab.blob.example.test",
        "sv=x&sig=y",
        None,
    )

    t = UrlTarget(
        "http://127.0.0.1:10000",
        {"AZURE_STORAGE_ACCOUNT": "devstoreaccount1", "AZURE_STORAGE_KEY": DEV_KEY},
    )
    assert t.url == "http://127.0.0.1:10000/devstoreaccount1" and t.key == DEV_KEY

    with pytest.raises(ValueError, match="--endpoint"):
        UrlTarget(None, {})
    with pytest.raises(ValueError, match="AZURE_STORAGE_ACCOUNT"):
        UrlTarget("https://storage.example.test", {})


@pytest.mark.sdk
def test_run_against_a_url_target(server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A running façade reached only by URL and an environment key."""
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.setenv("AZURE_STORAGE_KEY", server.key)
    (tmp_path / "s.yaml").write_text(
        "name: via-url\ndatasets: [{name: d, files: [{count: 4, size: 3KiB}]}]\n"
        "steps:\n  - {driver: sdk, operation: upload, dataset: d}\n"
        "  - {driver: sdk, operation: list}\n"
    )
    runner = Runner(
        scenario.load(tmp_path / "s.yaml"),
        out=tmp_path / "out",
        target="url",
        endpoint=server.account_url,
        cache_dir=tmp_path / "cache",
    )
    outcome = runner.run()
    assert outcome.exit_code == 0, outcome.notes
    df = read_results(outcome.run_dir)
    assert list(df["target"]) == ["url", "url"] and list(df["objects"]) == [4, 4]
    assert (server.data_root / DEV_ACCOUNT / "via-url").is_dir()

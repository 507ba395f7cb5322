"""AzCopy service-to-service copy between two bearer-only façades: the accounts have no Shared
Key, so AzCopy (managed identity, by lab name) authenticates to the destination with its token
and hands the same token to the destination as ``x-ms-copy-source-authorization: Bearer ...``,
which the destination passes on when it fetches every byte from the source."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.datasets import Dataset
from harness.drivers.azcopy import AzCopyDriver
from harness.drivers.base import StepContext
from harness.drivers.sdk import SdkDriver
from harness.http import BlobHttp
from harness.identity.lab import INSTANCE_DISCOVERY_HOST, LAB_ROLES, LabIdentity
from harness.lab_proxy import LabProxy, virtual_host, with_proxy
from harness.labca import LabCA
from harness.paths import ROOT
from harness.runner import run_step
from harness.targets.base import DEV_KEY, Endpoint, ServerProcess, free_port
from harness.targets.reference import TLS_NAMES

pytestmark = [pytest.mark.azcopy, pytest.mark.slow]
ACCOUNTS = ("lake", "edge")  # source and destination, each its own façade


@dataclass
class Pair:
    endpoints: dict[str, Endpoint]  # by account, each carrying the lab proxy
    proxy: LabProxy
    logs: dict[str, Path]


@pytest.fixture
def bearer_only_pair(tmp_path: Path, lab_identity: LabIdentity, lab_ca: LabCA) -> Iterator[Pair]:
    """Two https façades whose accounts take bearer tokens only, reachable by their lab names
    through one lab proxy (the destination's copy fetches go through it too)."""
    ports = {name: free_port() for name in ACCOUNTS}
    token_port = int(lab_identity.authority.rsplit(":", 1)[1])
    routes = {virtual_host(name): ("127.0.0.1", port) for name, port in ports.items()}
    proxy = LabProxy({**routes, INSTANCE_DISCOVERY_HOST: ("127.0.0.1", token_port)})
    proxy.start()
    cert, key = lab_ca.issue(list(TLS_NAMES), tmp_path / "tls")
    servers: list[ServerProcess] = []
    try:
        for name, port in ports.items():
            config = tmp_path / f"{name}.yaml"
            account = {"name": name, "bearer": lab_identity.bearer_block(LAB_ROLES)}  # no key
            config.write_text(yaml.safe_dump({"accounts": [account]}))
            argv = [sys.executable, "-m", "reference_server", "--host", "127.0.0.1"]
            argv += ["--port", str(port), "--data-root", str(tmp_path / name)]
            argv += ["--config", str(config), "--trust-ca", str(lab_ca.bundle_path)]
            argv += ["--tls-cert", str(cert), "--tls-key", str(key)]
            # copy sources by lab name through the proxy; the token service directly
            env = {"SSL_CERT_FILE": str(lab_ca.bundle_path), "HTTPS_PROXY": proxy.url,
                   "NO_PROXY": "127.0.0.1"}  # fmt: skip
            server = ServerProcess(name, argv, port, tmp_path / f"{name}.log", env=env, cwd=ROOT)
            servers.append(server)
            server.start()
        endpoints = {}
        for name, port in ports.items():
            url = f"https://127.0.0.1:{port}/{name}"
            endpoint = Endpoint("reference", name, url, ca_bundle=lab_ca.bundle_path)
            endpoints[name] = with_proxy(endpoint, proxy.url)
        yield Pair(endpoints, proxy, {n: tmp_path / f"{n}.log" for n in ACCOUNTS})
    finally:
        for server in servers:
            server.stop()
        proxy.stop()


def _sdk_options(lab: LabIdentity) -> dict[str, Any]:
    """The SDK as the writer service principal (Contributor on both accounts)."""
    env = {
        "AZURE_TENANT_ID": lab.tenant,
        "AZURE_CLIENT_ID": lab.principal("writer")[1],
        "AZURE_CLIENT_SECRET": "lab-writer-secret",
        "AZURE_AUTHORITY_HOST": lab.authority,
    }
    return {"auth": "oauth", "env": env}


def test_azcopy_copies_between_bearer_only_facades(
    bearer_only_pair: Pair, lab_identity: LabIdentity, small_tree: Dataset, tmp_path: Path
) -> None:
    lake, edge = bearer_only_pair.endpoints["lake"], bearer_only_pair.endpoints["edge"]
    # bearer only: a Shared Key request (any key) is refused
    http = BlobHttp(lake.blob_url, "lake", DEV_KEY, ca_bundle=lake.ca_bundle)
    assert http.request("PUT", "lake-ct", query={"restype": "container"}).status == 403
    http.close()
    common: dict[str, Any] = {"scenario": "identity-s2s", "dataset": small_tree, "prefix": "data/",
                              "block_size_mib": 4, "concurrency": 8, "timeout_s": 180}  # fmt: skip
    seed = run_step(SdkDriver(), StepContext(
        step="seed", operation="upload", endpoint=lake, container="lake-ct",
        workdir=tmp_path / "seed", options=_sdk_options(lab_identity), **common,
    ))  # fmt: skip
    assert seed.ok, seed.error
    assert seed.objects == small_tree.count

    options = {
        "auth": "oauth",
        "extra_args": ["--trusted-microsoft-suffixes", "lab.test"],
        "log_level": "DEBUG",  # request headers in the job log
        "env": {
            "AZCOPY_AUTO_LOGIN_TYPE": "MSI",  # the managed identity vm: Contributor on both
            "IDENTITY_ENDPOINT": f"{lab_identity.authority}/msi/token",
            "IDENTITY_HEADER": "lab-identity-header",
        },
    }
    copy = run_step(AzCopyDriver(), StepContext(
        step="copy", operation="copy", endpoint=edge, source_endpoint=lake,
        source_container="lake-ct", container="edge-ct", workdir=tmp_path / "copy",
        options=options, **common,
    ))  # fmt: skip
    assert copy.ok, copy.error
    assert (copy.objects, copy.failed) == (small_tree.count, 0)
    assert bearer_only_pair.proxy.refused == []
    # every From-URL call carried the token for the source (AzCopy logs it redacted)
    logs = [
        p for p in (tmp_path / "copy" / "azcopy-logs").glob("*.log") if "scanning" not in p.name
    ]
    job_log = "".join(p.read_text(errors="replace") for p in logs).lower()
    assert job_log.count("x-ms-copy-source-authorization: redacted") >= small_tree.count
    assert "x-ms-source-range" in job_log  # the large file as Put Block From URL

    # the destination fetched from the source with the token AzCopy passed on: the source
    # answered the From-URL reads of the destination (range GETs with a bearer token)
    down = run_step(SdkDriver(), StepContext(
        step="down", operation="download", endpoint=edge, container="edge-ct",
        workdir=tmp_path / "down", local_dir=tmp_path / "local",
        options=_sdk_options(lab_identity), **common,
    ))  # fmt: skip
    assert down.ok, down.error
    assert (down.verified_objects, down.verified_bytes) == (
        small_tree.count, small_tree.total_bytes,
    )  # fmt: skip

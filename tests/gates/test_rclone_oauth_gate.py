"""rclone's azureblob backend with Entra ID tokens from the lab token service, against the
bearer façade over https (path-style endpoint, no emulator key): a service principal with a
secret (``tenant`` / ``client_id`` / ``client_secret``, ``disable_instance_discovery``), and
``env_auth`` reaching the App Service managed identity endpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from identity_fixtures import BearerFacade

from harness.datasets import Dataset
from harness.drivers.base import StepContext
from harness.drivers.rclone import RcloneDriver
from harness.http import BlobHttp
from harness.lab_proxy import LabProxy
from harness.runner import run_step
from harness.targets.base import Endpoint

pytestmark = pytest.mark.rclone


def _up_and_down(
    facade: BearerFacade,
    proxy: LabProxy,
    dataset: Dataset,
    tmp_path: Path,
    container: str,
    options: dict,
) -> None:
    http = BlobHttp(facade.account_url, facade.account, facade.key, ca_bundle=facade.ca_bundle)
    assert http.request("PUT", container, query={"restype": "container"}).status == 201
    http.close()
    # the key is not handed over: rclone must authenticate with tokens
    endpoint = Endpoint("reference", facade.account, facade.account_url,
                        ca_bundle=facade.ca_bundle)  # fmt: skip
    # Go's token clients trust the system pool: SSL_CERT_FILE adds the lab CA there
    options = {"auth": "oauth", **options}
    # and the login proxy: a login host rclone asks (instance or tenant discovery) is routed to
    # the token service, never looked up in DNS
    options["env"] = {
        "SSL_CERT_FILE": str(facade.ca_bundle),
        "HTTPS_PROXY": proxy.url,
        "NO_PROXY": "127.0.0.1",
        **options.get("env", {}),
    }
    common: dict[str, Any] = {
        "scenario": "rclone-oauth", "endpoint": endpoint, "container": container,
        "dataset": dataset, "prefix": "rc/", "block_size_mib": 4, "concurrency": 8,
        "timeout_s": 180, "options": options,
    }  # fmt: skip
    rclone = RcloneDriver()
    up = run_step(
        rclone, StepContext(step="up", operation="upload", workdir=tmp_path / "up", **common)
    )
    assert up.ok, up.error
    assert (up.objects, up.bytes) == (dataset.count, dataset.total_bytes)
    down = run_step(rclone,
        StepContext(step="down", operation="download", workdir=tmp_path / "down",
                    local_dir=tmp_path / "local", **common)
    )  # fmt: skip
    assert down.ok, down.error
    assert (down.verified_objects, down.verified_bytes) == (dataset.count, dataset.total_bytes)
    assert proxy.refused == []  # nothing tried a host the lab does not route


def test_rclone_service_principal(
    bearer_facade: BearerFacade, login_proxy: LabProxy, small_tree: Dataset, tmp_path: Path
) -> None:
    lab = bearer_facade.identity
    remote = {
        "tenant": lab.tenant,
        "client_id": lab.principal("writer")[1],
        "client_secret": "lab-writer-secret",
        "disable_instance_discovery": "true",
    }
    options = {"remote": remote, "env": {"AZURE_AUTHORITY_HOST": lab.authority}}
    _up_and_down(bearer_facade, login_proxy, small_tree, tmp_path, "rclone-spn", options)


def test_rclone_env_auth_managed_identity(
    bearer_facade: BearerFacade, login_proxy: LabProxy, small_tree: Dataset, tmp_path: Path
) -> None:
    lab = bearer_facade.identity
    env = {
        "IDENTITY_ENDPOINT": f"{lab.authority}/msi/token",
        "IDENTITY_HEADER": "lab-identity-header",
    }
    options = {"remote": {"env_auth": "true"}, "env": env}
    _up_and_down(bearer_facade, login_proxy, small_tree, tmp_path, "rclone-msi", options)

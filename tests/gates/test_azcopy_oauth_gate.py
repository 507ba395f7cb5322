"""AzCopy with OAuth against the bearer façade over https: managed identity (App Service flavour,
``AZCOPY_AUTO_LOGIN_TYPE=MSI``) and a service principal with a secret (``SPN``), the façade
reached by its lab name through the lab proxy with ``--trusted-microsoft-suffixes lab.test``
(AzCopy sends tokens only to trusted suffixes). The SPN login always asks MSAL's instance
discovery at login.microsoftonline.com: the lab proxy routes that name to the token service,
which answers it. Every byte is verified on the way back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.identity import ClientSecretCredential
from azure.storage.blob import BlobServiceClient, generate_container_sas
from identity_fixtures import BearerFacade

from harness.datasets import Dataset
from harness.drivers.azcopy import AzCopyDriver
from harness.drivers.base import StepContext
from harness.http import BlobHttp
from harness.lab_proxy import LabProxy, with_proxy
from harness.runner import run_step
from harness.targets.base import Endpoint

pytestmark = [pytest.mark.azcopy, pytest.mark.slow]


def _endpoint(facade: BearerFacade, proxy: LabProxy) -> Endpoint:
    endpoint = Endpoint(
        "reference", facade.account, facade.account_url, key=facade.key,
        ca_bundle=facade.ca_bundle,
    )  # fmt: skip
    return with_proxy(endpoint, proxy.url)


def _options(env: dict[str, str]) -> dict[str, Any]:
    return {
        "auth": "oauth",  # no SAS in the URLs: AzCopy authenticates with tokens
        "extra_args": ["--trusted-microsoft-suffixes", "lab.test"],
        # the token service is reached directly; everything else goes to the lab proxy, which
        # refuses what it does not route (nothing is resolved or leaves the machine)
        "env": {"NO_PROXY": "127.0.0.1", **env},
    }


def _up_and_down(
    facade: BearerFacade,
    proxy: LabProxy,
    dataset: Dataset,
    tmp_path: Path,
    container: str,
    env: dict[str, str],
) -> None:
    http = BlobHttp(facade.account_url, facade.account, facade.key, ca_bundle=facade.ca_bundle)
    assert http.request("PUT", container, query={"restype": "container"}).status == 201
    http.close()
    azcopy = AzCopyDriver()
    common: dict[str, Any] = {
        "scenario": "azcopy-oauth", "endpoint": _endpoint(facade, proxy), "container": container,
        "dataset": dataset, "prefix": "data/", "timeout_s": 180, "options": _options(env),
        "concurrency": 8, "block_size_mib": 4,
    }  # fmt: skip
    up = run_step(
        azcopy, StepContext(step="up", operation="upload", workdir=tmp_path / "up", **common)
    )
    assert up.ok, up.error
    assert (up.objects, up.failed) == (dataset.count, 0)
    down = run_step(
        azcopy,
        StepContext(
            step="down",
            operation="download",
            workdir=tmp_path / "down",
            local_dir=tmp_path / "local",
            **common,
        ),
    )
    assert down.ok, down.error
    assert (down.verified_objects, down.verified_bytes) == (dataset.count, dataset.total_bytes)
    assert proxy.refused == []  # nothing tried a host the lab does not route


def test_azcopy_managed_identity(
    bearer_facade: BearerFacade, login_proxy: LabProxy, small_tree: Dataset, tmp_path: Path
) -> None:
    lab = bearer_facade.identity
    env = {
        "AZCOPY_AUTO_LOGIN_TYPE": "MSI",
        "IDENTITY_ENDPOINT": f"{lab.authority}/msi/token",
        "IDENTITY_HEADER": "lab-identity-header",
    }
    _up_and_down(bearer_facade, login_proxy, small_tree, tmp_path, "azcopy-msi", env)


def test_azcopy_service_principal_with_secret(
    bearer_facade: BearerFacade, login_proxy: LabProxy, small_tree: Dataset, tmp_path: Path
) -> None:
    lab = bearer_facade.identity
    env = {
        "AZCOPY_AUTO_LOGIN_TYPE": "SPN",
        "AZCOPY_SPA_APPLICATION_ID": lab.principal("writer")[1],
        "AZCOPY_SPA_CLIENT_SECRET": "lab-writer-secret",
        "AZCOPY_TENANT_ID": lab.tenant,
        "AZCOPY_ACTIVE_DIRECTORY_ENDPOINT": lab.authority,
    }
    _up_and_down(bearer_facade, login_proxy, small_tree, tmp_path, "azcopy-spn", env)
    # its login asked MSAL's instance discovery, answered by the token service via the proxy
    assert (
        "GET /common/discovery/instance 200"
        in Path(bearer_facade.identity.state_dir.parent / "token-service.log").read_text()
    )


def test_azcopy_user_delegation_sas_in_the_url(
    bearer_facade: BearerFacade, login_proxy: LabProxy, small_tree: Dataset, tmp_path: Path
) -> None:
    """A container SAS signed with a user delegation key (the SDK's, for the writer), passed in
    AzCopy's URLs like any SAS: no key and no token on AzCopy's side."""
    facade, lab = bearer_facade, bearer_facade.identity
    credential = ClientSecretCredential(
        lab.tenant, lab.principal("writer")[1], "lab-writer-secret", authority=lab.authority,
        disable_instance_discovery=True, connection_verify=str(facade.ca_bundle),
    )  # fmt: skip
    now = datetime.now(UTC)
    with BlobServiceClient(
        facade.account_url, credential=credential, connection_verify=str(facade.ca_bundle)
    ) as service:
        service.create_container("azcopy-udsas")
        key = service.get_user_delegation_key(now - timedelta(minutes=5), now + timedelta(hours=2))
    sas = generate_container_sas(
        facade.account, "azcopy-udsas", user_delegation_key=key, permission="racwdl",
        expiry=now + timedelta(hours=1),
    )  # fmt: skip
    assert "skoid=" in sas
    endpoint = with_proxy(
        Endpoint(
            "reference", facade.account, facade.account_url, sas=sas, ca_bundle=facade.ca_bundle
        ),
        login_proxy.url,
    )
    common: dict[str, Any] = {
        "scenario": "azcopy-oauth", "endpoint": endpoint, "container": "azcopy-udsas",
        "dataset": small_tree, "prefix": "data/", "timeout_s": 180, "concurrency": 8,
        "block_size_mib": 4,
    }  # fmt: skip
    azcopy = AzCopyDriver()
    up = run_step(
        azcopy, StepContext(step="up", operation="upload", workdir=tmp_path / "up", **common)
    )
    assert up.ok, up.error
    assert (up.objects, up.failed) == (small_tree.count, 0)
    down = run_step(azcopy,
        StepContext(step="down", operation="download", workdir=tmp_path / "down",
                    local_dir=tmp_path / "local", **common)
    )  # fmt: skip
    assert down.ok, down.error
    assert (down.verified_objects, down.verified_bytes) == (
        small_tree.count, small_tree.total_bytes,
    )  # fmt: skip

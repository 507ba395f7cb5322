"""boostedblob through its managed identity path: ``MSI_ENDPOINT`` at the lab token service
(Cloud Shell's flavour: a form POST), its tokens sent to the bearer façade over https."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from identity_fixtures import BearerFacade

from harness.datasets import Dataset
from harness.drivers.base import StepContext
from harness.drivers.boostedblob import BoostedblobDriver
from harness.http import BlobHttp
from harness.runner import run_step
from harness.targets.base import Endpoint

pytestmark = pytest.mark.boostedblob


def test_boostedblob_managed_identity(
    bearer_facade: BearerFacade, small_tree: Dataset, tmp_path: Path
) -> None:
    facade, lab = bearer_facade, bearer_facade.identity
    http = BlobHttp(facade.account_url, facade.account, facade.key, ca_bundle=facade.ca_bundle)
    assert http.request("PUT", "bbb-msi", query={"restype": "container"}).status == 201
    http.close()
    endpoint = Endpoint("reference", facade.account, facade.account_url, key=facade.key,
                        ca_bundle=facade.ca_bundle)  # fmt: skip
    options = {"auth": "oauth", "env": {"MSI_ENDPOINT": f"{lab.authority}/msi/legacy"}}
    common: dict[str, Any] = {
        "scenario": "bbb-oauth", "endpoint": endpoint, "container": "bbb-msi",
        "dataset": small_tree, "prefix": "bbb/", "block_size_mib": 4, "concurrency": 16,
        "timeout_s": 180, "options": options,
    }  # fmt: skip
    bbb = BoostedblobDriver()
    up = run_step(
        bbb, StepContext(step="up", operation="upload", workdir=tmp_path / "up", **common)
    )
    assert up.ok, up.error
    assert (up.objects, up.bytes) == (small_tree.count, small_tree.total_bytes)
    down = run_step(
        bbb,
        StepContext(
            step="down",
            operation="download",
            workdir=tmp_path / "down",
            local_dir=tmp_path / "local",
            **common,
        ),
    )
    assert down.ok, down.error
    assert (down.verified_objects, down.verified_bytes) == (
        small_tree.count,
        small_tree.total_bytes,
    )
    log = (lab.state_dir.parent / "token-service.log").read_text()
    assert f"POST /msi/legacy 200 principal={lab.principal('vm')[0]}" in log

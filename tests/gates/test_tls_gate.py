"""TLS gate: every real client moves bytes over https to a `tls: true` reference target.

Each client trusts the lab CA the ordinary way for its kind (SDK ``connection_verify``, AzCopy
``SSL_CERT_FILE``, boostedblob's aiohttp SSL context, rclone ``--ca-cert``, Locust's SSL context
factory), with certificate verification on: without the CA the same client fails.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from azure.core.exceptions import ServiceRequestError
from azure.storage.blob import BlobServiceClient

from harness.datasets import Dataset, generate_dataset
from harness.drivers import REGISTRY
from harness.drivers.base import StepContext
from harness.drivers.common import sdk_credential, sdk_transport
from harness.drivers.locust import LocustDriver
from harness.http import BlobHttp
from harness.labca import LabCA
from harness.load.plan import PLAN_ENV, plan_from_options
from harness.paths import ROOT
from harness.runner import run_step
from harness.targets.base import Endpoint
from harness.targets.reference import ReferenceTarget
from harness.verify import remote_listing

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def tls_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceTarget]:
    target = ReferenceTarget(tls=True, ca_dir=tmp_path_factory.mktemp("lab-ca"))
    target.start(tmp_path_factory.mktemp("tls-target"))
    yield target
    target.stop()


@pytest.fixture
def lab_endpoint(tls_target: ReferenceTarget) -> Endpoint:
    """Overrides the gates' endpoint: the https one, with its CA bundle."""
    endpoint = tls_target.endpoint()
    assert endpoint.blob_url.startswith("https://") and endpoint.ca_bundle is not None
    return endpoint


@pytest.fixture(scope="module")
def tls_tree(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """Small files in directories plus one file of three 4 MiB blocks."""
    spec = {
        "name": "tls-tree",
        "seed": 12,
        "files": [
            {"count": 12, "size_min": 1, "size_max": 40 * 1024, "dir_depth": 2, "prefix": "s"},
            {"count": 1, "size": 10 * MIB, "prefix": "big"},
        ],
    }
    return generate_dataset(spec, tmp_path_factory.mktemp("datasets"))


def _create_container(endpoint: Endpoint, container: str) -> None:
    http = BlobHttp(endpoint.blob_url, endpoint.account, endpoint.key, ca_bundle=endpoint.ca_bundle)
    try:
        assert http.request("PUT", container, query={"restype": "container"}).status == 201
    finally:
        http.close()


@pytest.mark.parametrize(
    "driver_name",
    [
        pytest.param("sdk", marks=pytest.mark.sdk),
        pytest.param("sdk-aio", marks=pytest.mark.sdk),
        pytest.param("azcopy", marks=[pytest.mark.azcopy, pytest.mark.slow]),
        pytest.param("boostedblob", marks=pytest.mark.boostedblob),
        pytest.param("rclone", marks=pytest.mark.rclone),
    ],
)
def test_upload_download_over_https(
    driver_name: str,
    gate_step: Callable[..., StepContext],
    lab_endpoint: Endpoint,
    container_name: str,
    tls_tree: Dataset,
    tmp_path: Path,
) -> None:
    driver = REGISTRY[driver_name]()
    _create_container(lab_endpoint, container_name)
    up = run_step(driver, gate_step("upload", dataset=tls_tree, prefix="tls/", block_size_mib=4))
    assert up.ok and up.failed == 0, up.error
    remote = {name: size for name, size, _ in remote_listing(lab_endpoint, container_name, "tls/")}
    assert remote == {"tls/" + f.path: f.size for f in tls_tree.files}

    down = run_step(
        driver,
        gate_step(
            "download",
            dataset=tls_tree,
            prefix="tls/",
            local_dir=tmp_path / "down",
            block_size_mib=4,
        ),
    )
    assert down.ok and down.failed == 0, down.error
    assert (down.verified_objects, down.verified_bytes) == (tls_tree.count, tls_tree.total_bytes)


@pytest.mark.azcopy
@pytest.mark.slow
def test_azcopy_by_virtual_host_name_through_the_lab_proxy(
    gate_step: Callable[..., StepContext],
    lab_endpoint: Endpoint,
    container_name: str,
    tls_tree: Dataset,
    tmp_path: Path,
) -> None:
    """https://<account>.blob.lab.test through the lab proxy (CONNECT): the certificate is
    verified for the lab name, and AzCopy classifies the host as Blob (no --from-to)."""
    azcopy = REGISTRY["azcopy"]()
    _create_container(lab_endpoint, container_name)
    named = {"via_proxy": True}
    up = run_step(azcopy, gate_step("upload", dataset=tls_tree, prefix="vh/", options=named))
    assert up.ok and up.failed == 0, up.error
    argv = up.extra["argv"]  # the command line as run, one string
    assert "--from-to" not in argv and " https://devstoreaccount1.blob.lab.test/" in argv
    listed = run_step(azcopy, gate_step("list", prefix="vh/"))  # an IP host lists by name anyway
    assert listed.ok and (listed.objects, listed.bytes) == (tls_tree.count, tls_tree.total_bytes)
    down = run_step(
        azcopy,
        gate_step(
            "download", dataset=tls_tree, prefix="vh/", local_dir=tmp_path / "d", options=named
        ),
    )
    assert down.ok, down.error
    assert (down.verified_objects, down.verified_bytes) == (tls_tree.count, tls_tree.total_bytes)


@pytest.mark.sdk
def test_sdk_without_the_lab_ca_fails_verification(
    lab_endpoint: Endpoint, container_name: str
) -> None:
    """The keywords the drivers pass (sdk_transport) are what makes https work: without the CA
    the SDK refuses the certificate instead of sending anything."""
    untrusting = dataclasses.replace(lab_endpoint, ca_bundle=None)
    for endpoint, verified in ((lab_endpoint, True), (untrusting, False)):
        with BlobServiceClient(
            endpoint.blob_url,
            credential=sdk_credential(endpoint),
            retry_total=0,
            **sdk_transport(endpoint),
        ) as service:
            container = service.get_container_client(container_name)
            if verified:
                container.create_container()
                container.upload_blob("b", b"over https")
                assert container.download_blob("b").readall() == b"over https"
            else:
                with pytest.raises(ServiceRequestError, match="CERTIFICATE_VERIFY_FAILED"):
                    container.download_blob("b").readall()


@pytest.mark.locust
def test_locust_put_and_get_over_https(
    gate_step: Callable[..., StepContext], lab_endpoint: Endpoint
) -> None:
    options = {
        "mix": {"put_block": 1, "get_range": 1},
        "users": 4,
        "workers": 1,
        "level_duration_s": 4,
        "ramp_s": 1,
        "object_size": "64KiB",
        "block_size": "16KiB",
        "seed_objects": 2,
        "max_requests": 400,
    }
    ctx = gate_step("load", options=options)
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    driver = LocustDriver()
    driver.prepare(ctx)
    rows = {r.operation: r for r in driver.run_levels(ctx)}
    assert set(rows) == {"put_block", "get_range"}
    for op, row in rows.items():
        assert row.ok and row.failed == 0 and row.objects > 0, (op, row.error)
        assert row.bytes == row.objects * 16 * 1024  # every block sent, every range read whole


# Locust's FastHttpUser skips certificate checks unless told otherwise: probe the locustfile's
# user class itself, in a process of its own (it monkey-patches the interpreter with gevent).
_LOCUST_PROBE = """
import json
from locust.env import Environment
from harness.load import locustfile
user = locustfile.BlobUser(Environment(user_classes=[locustfile.BlobUser]))
req = locustfile.BUILDER.shaper.prepare("GET", query={"comp": "list"})  # List Containers, signed
resp = user.client.request("GET", req.target, headers=req.headers)
print(json.dumps({"status": resp.status_code or 0, "error": repr(getattr(resp, "error", None))}))
"""


@pytest.mark.locust
@pytest.mark.parametrize("trusted", [True, False])
def test_locust_user_verifies_the_certificate(
    lab_endpoint: Endpoint, tmp_path: Path, trusted: bool
) -> None:
    bundle = (
        lab_endpoint.ca_bundle if trusted else LabCA.load_or_create(tmp_path / "ca").bundle_path
    )
    plan = plan_from_options(
        {},
        blob_url=lab_endpoint.blob_url,
        account=lab_endpoint.account,
        key=lab_endpoint.key,
        sas=None,
        container="probe",
        prefix="",
        out_dir=tmp_path,
        default_users=1,
        ca_bundle=str(bundle),
    ).dump(tmp_path / "plan.json")
    probe = subprocess.run(
        [sys.executable, "-c", _LOCUST_PROBE],
        env={**os.environ, PLAN_ENV: str(plan)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    answer = json.loads(probe.stdout.strip().splitlines()[-1])
    if trusted:
        assert answer["status"] == 200
    else:
        assert answer["status"] == 0 and "CERTIFICATE_VERIFY_FAILED" in answer["error"]

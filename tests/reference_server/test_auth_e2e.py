"""Auth end to end: the reference façade process with the SDK and raw signed requests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import TYPE_CHECKING

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobServiceClient, ContainerClient, generate_blob_sas
from facade_raw import Raw

from reference_server.auth import sas
from reference_server.config import DEV_ACCOUNT, DEV_KEY

if TYPE_CHECKING:
    from conftest import RunningServer

WRONG_KEY = "d3Jvbmcta2V5LW5vdC1vZi10aGlzLWFjY291bnQtMDEyMzQ1Njc4OWFiY2RlZg=="
EXPIRY = datetime.now(UTC) + timedelta(hours=1)


@pytest.mark.sdk
def test_account_key_and_wrong_key(server: RunningServer) -> None:
    service = BlobServiceClient.from_connection_string(server.connection_string)
    container = service.create_container("auth-e2e")
    container.upload_blob("dir/a b.txt", b"hello auth", metadata={"a1": "x", "a_1": "y"})
    assert container.download_blob("dir/a b.txt").readall() == b"hello auth"
    assert [b.name for b in container.list_blobs()] == ["dir/a b.txt"]

    wrong = ContainerClient(server.account_url, "auth-e2e", credential=WRONG_KEY)
    with pytest.raises(HttpResponseError) as info:
        list(wrong.list_blobs())
    assert (info.value.status_code, info.value.error_code) == (403, "AuthenticationFailed")


@pytest.mark.sdk
def test_container_sas_lists_but_cannot_delete(server: RunningServer) -> None:
    service = BlobServiceClient.from_connection_string(server.connection_string)
    service.create_container("sas-e2e").upload_blob("x.bin", b"12345")
    token = sas.generate_service_sas(
        DEV_ACCOUNT, DEV_KEY, container="sas-e2e", blob=None, permissions="rl", expiry=EXPIRY
    )
    via_sas = ContainerClient(server.account_url, "sas-e2e", credential=token)
    assert [b.name for b in via_sas.list_blobs()] == ["x.bin"]
    assert via_sas.download_blob("x.bin").readall() == b"12345"
    with pytest.raises(HttpResponseError) as info:
        via_sas.delete_blob("x.bin")
    assert (info.value.status_code, info.value.error_code) == (
        403,
        "AuthorizationPermissionMismatch",
    )
    other = ContainerClient(server.account_url, "other-ct", credential=token)
    with pytest.raises(HttpResponseError) as info:
        list(other.list_blobs())
    assert (info.value.status_code, info.value.error_code) == (403, "AuthenticationFailed")


@pytest.mark.sdk
def test_sdk_blob_sas_with_response_override(server: RunningServer) -> None:
    service = BlobServiceClient.from_connection_string(server.connection_string)
    service.create_container("override-e2e").upload_blob("r.txt", b"body")
    token = generate_blob_sas(
        DEV_ACCOUNT, "override-e2e", "r.txt", account_key=DEV_KEY, permission="r",
        expiry=EXPIRY, content_type="text/x-lab", content_disposition="attachment",
    )  # fmt: skip
    r = Raw(server).request("GET", "override-e2e", "r.txt", sas=token)
    assert (r.status, r.body) == (200, b"body")
    assert r.headers["content-type"] == "text/x-lab"
    assert r.headers["content-disposition"] == "attachment"


def test_raw_shared_key_clock_skew_and_anonymous(server: RunningServer) -> None:
    raw = Raw(server)
    listing = {"comp": "list"}
    assert raw.request("GET", query=listing).status == 200

    old = format_datetime(datetime.now(UTC) - timedelta(minutes=20), usegmt=True)
    skewed = raw.request("GET", query=listing, date=old)
    assert (skewed.status, skewed.error_code) == (403, "AuthenticationFailed")
    assert b"<Code>AuthenticationFailed</Code>" in skewed.body

    anonymous = raw.request("GET", query=listing, sign=False)
    assert (anonymous.status, anonymous.error_code) == (401, "NoAuthenticationInformation")
    assert anonymous.headers["www-authenticate"].startswith("Bearer ")

    bearer = {"x-ms-date": None, "Authorization": "Bearer e30.e30.sig"}
    r = raw.request("GET", query=listing, sign=False, headers=bearer)
    assert (r.status, r.error_code) == (403, "AuthenticationFailed")


def test_raw_shared_key_names_needing_encoding(server: RunningServer) -> None:
    """Names with spaces, '+', '%' and unicode: the raw path is what both sides sign."""
    raw = Raw(server)
    assert raw.request("PUT", "enc-e2e", query={"restype": "container"}).status == 201
    for name in ("a b+c%d/é.txt", "plain"):
        assert raw.put_blob("enc-e2e", name, b"").status == 201
        assert raw.request("HEAD", "enc-e2e", name).status == 200

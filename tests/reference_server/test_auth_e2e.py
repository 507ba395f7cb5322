"""Auth end to end: the reference façade process with the SDK and raw signed requests."""

from __future__ import annotations

import http.client
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, formatdate
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobServiceClient, ContainerClient, generate_blob_sas

from reference_server.auth import sas, shared_key
from reference_server.config import DEV_ACCOUNT, DEV_KEY

if TYPE_CHECKING:
    from conftest import RunningServer

WRONG_KEY = "d3Jvbmcta2V5LW5vdC1vZi10aGlzLWFjY291bnQtMDEyMzQ1Njc4OWFiY2RlZg=="
API_VERSION = "2025-07-05"
EXPIRY = datetime.now(UTC) + timedelta(hours=1)


def raw_request(
    server: RunningServer, method: str, target: str, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        conn.request(method, target, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def signed_headers(server: RunningServer, method: str, target: str, **extra: str) -> dict[str, str]:
    headers = {"x-ms-version": API_VERSION, **extra}
    return shared_key.sign_request(method, server.base_url + target, headers, DEV_ACCOUNT, DEV_KEY)


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
    status, headers, body = raw_request(
        server, "GET", f"/{DEV_ACCOUNT}/override-e2e/r.txt?{token}", {"x-ms-version": API_VERSION}
    )
    assert (status, body) == (200, b"body")
    assert headers["content-type"] == "text/x-lab"
    assert headers["content-disposition"] == "attachment"


def test_raw_shared_key_clock_skew_and_anonymous(server: RunningServer) -> None:
    target = f"/{DEV_ACCOUNT}/?comp=list"
    status, headers, _ = raw_request(server, "GET", target, signed_headers(server, "GET", target))
    assert status == 200

    old = format_datetime(datetime.now(UTC) - timedelta(minutes=20), usegmt=True)
    skewed = signed_headers(server, "GET", target, **{"x-ms-date": old})
    status, headers, body = raw_request(server, "GET", target, skewed)
    assert (status, headers["x-ms-error-code"]) == (403, "AuthenticationFailed")
    assert b"<Code>AuthenticationFailed</Code>" in body

    status, headers, _ = raw_request(
        server, "GET", target, {"x-ms-version": API_VERSION, "x-ms-date": formatdate(usegmt=True)}
    )
    assert (status, headers["x-ms-error-code"]) == (401, "NoAuthenticationInformation")
    assert headers["www-authenticate"].startswith("Bearer ")

    bearer = {"x-ms-version": API_VERSION, "Authorization": "Bearer e30.e30.sig"}
    status, headers, _ = raw_request(server, "GET", target, bearer)
    assert (status, headers["x-ms-error-code"]) == (403, "AuthenticationFailed")


def test_raw_shared_key_names_needing_encoding(server: RunningServer) -> None:
    """Names with spaces, '+', '%' and unicode: the raw path is what both sides sign."""
    ct = f"/{DEV_ACCOUNT}/enc-e2e"
    assert raw_request(server, "PUT", ct + "?restype=container",
                       signed_headers(server, "PUT", ct + "?restype=container",
                                      **{"Content-Length": "0"}))[0] == 201  # fmt: skip
    for name in ("a b+c%d/é.txt", "plain"):
        target = f"{ct}/{quote(name)}"
        headers = signed_headers(
            server, "PUT", target, **{"Content-Length": "0", "x-ms-blob-type": "BlockBlob"}
        )
        assert raw_request(server, "PUT", target, headers)[0] == 201
        status, _, _ = raw_request(server, "HEAD", target, signed_headers(server, "HEAD", target))
        assert status == 200

"""Snapshots, versions and leases are outside the façade contract: a request naming one fails
with an Azure error code and touches nothing (it used to act on the base blob)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobClient, BlobServiceClient, generate_blob_sas
from azure.storage.blob._shared.constants import X_MS_VERSION
from facade_raw import Raw

from harness.http import block_list_xml
from reference_server.auth.sas import generate_service_sas
from reference_server.config import DEV_ACCOUNT, DEV_KEY

BLOB = "keep.txt"
BODY = b"keep me"
SNAPSHOT = "2026-01-01T00:00:00.0000000Z"
BLOCK_ID = base64.b64encode(b"block-0001").decode()
BLOCK_BLOB = {"x-ms-blob-type": "BlockBlob"}

# (method, extra query, headers, body): every kind of blob request
BLOB_REQUESTS = {
    "get": ("GET", {}, {}, b""),
    "head": ("HEAD", {}, {}, b""),
    "delete": ("DELETE", {}, {}, b""),
    "put-blob": ("PUT", {}, BLOCK_BLOB, b"overwritten"),
    "set-metadata": ("PUT", {"comp": "metadata"}, {"x-ms-meta-evil": "1"}, b""),
    "set-properties": ("PUT", {"comp": "properties"}, {"x-ms-blob-content-type": "x/evil"}, b""),
    "put-block": ("PUT", {"comp": "block", "blockid": BLOCK_ID}, {}, b"staged"),
    "put-block-list": ("PUT", {"comp": "blocklist"}, {}, block_list_xml([BLOCK_ID])),
    "get-block-list": ("GET", {"comp": "blocklist"}, {}, b""),
}


@pytest.fixture
def blob(raw: Raw, container: str) -> tuple[str, str]:
    """The blob under test and its ETag."""
    assert raw.put_blob(container, BLOB, BODY).status == 201
    return container, raw.request("HEAD", container, BLOB).header("etag") or ""


def assert_untouched(raw: Raw, container: str, etag: str) -> None:
    got = raw.request("GET", container, BLOB)
    assert (got.status, got.body, got.header("etag")) == (200, BODY, etag)
    assert got.header("x-ms-meta-evil") is None
    blocks = raw.request(
        "GET", container, BLOB, query={"comp": "blocklist", "blocklisttype": "all"}
    )
    uncommitted = blocks.xml().find("UncommittedBlocks")
    assert uncommitted is None or len(uncommitted) == 0, "a block was staged"


@pytest.mark.parametrize("param", ["snapshot", "versionid"])
@pytest.mark.parametrize("name", list(BLOB_REQUESTS))
def test_snapshot_or_version_is_refused(raw: Raw, blob: tuple[str, str], name: str, param: str):
    container, etag = blob
    method, query, headers, body = BLOB_REQUESTS[name]
    resp = raw.request(
        method, container, BLOB, query={**query, param: SNAPSHOT}, headers=headers, body=body
    )
    assert (resp.status, resp.error_code) == (400, "InvalidQueryParameterValue")
    if method != "HEAD":
        assert f"<QueryParameterName>{param}</QueryParameterName>".encode() in resp.body
    assert_untouched(raw, container, etag)


def test_snapshot_on_container_delete_is_refused(raw: Raw, blob: tuple[str, str]) -> None:
    container, etag = blob
    query = {"restype": "container", "snapshot": SNAPSHOT}
    resp = raw.request("DELETE", container, query=query)
    assert (resp.status, resp.error_code) == (400, "InvalidQueryParameterValue")
    assert_untouched(raw, container, etag)


def _sdk_sas(raw: Raw, container: str, **kw: str) -> str:
    return generate_blob_sas(
        raw.account, container, BLOB, account_key=raw.key, permission="rwd",
        expiry=datetime.now(UTC) + timedelta(hours=1), **kw,
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["snapshot", "version_id"])
def test_snapshot_and_version_sas_are_refused(raw: Raw, blob: tuple[str, str], kind: str) -> None:
    container, etag = blob
    sas = _sdk_sas(raw, container, **{kind: SNAPSHOT})
    assert f"sr={'bs' if kind == 'snapshot' else 'bv'}" in sas
    param = kind.replace("_", "")
    # as a client sends it: the SAS plus the snapshot / version it names
    resp = raw.request("DELETE", container, BLOB, query={param: SNAPSHOT}, sas=sas)
    assert (resp.status, resp.error_code) == (400, "InvalidQueryParameterValue")
    # and the SAS alone on the base blob
    resp = raw.request("DELETE", container, BLOB, sas=sas)
    assert (resp.status, resp.error_code) == (403, "AuthenticationFailed")
    assert_untouched(raw, container, etag)


@pytest.mark.sdk
def test_sdk_snapshot_client_cannot_delete_the_blob(shared_server, raw: Raw, blob) -> None:
    container, etag = blob
    snap = BlobClient.from_connection_string(
        shared_server.connection_string, container, BLOB, snapshot=SNAPSHOT
    )
    with pytest.raises(HttpResponseError) as err:
        snap.delete_blob()
    assert err.value.error_code == "InvalidQueryParameterValue"
    with pytest.raises(HttpResponseError):
        snap.download_blob().readall()
    assert_untouched(raw, container, etag)


@pytest.mark.parametrize("name", list(BLOB_REQUESTS))
def test_lease_id_is_refused(raw: Raw, blob: tuple[str, str], name: str) -> None:
    container, etag = blob
    method, query, headers, body = BLOB_REQUESTS[name]
    headers = {**headers, "x-ms-lease-id": "11111111-2222-3333-4444-555555555555"}
    resp = raw.request(method, container, BLOB, query=query or None, headers=headers, body=body)
    assert (resp.status, resp.error_code) == (412, "LeaseNotPresentWithBlobOperation")
    assert_untouched(raw, container, etag)


def test_lease_id_on_container_is_refused(raw: Raw, blob: tuple[str, str]) -> None:
    container, etag = blob
    headers = {"x-ms-lease-id": "11111111-2222-3333-4444-555555555555"}
    resp = raw.request("DELETE", container, query={"restype": "container"}, headers=headers)
    assert (resp.status, resp.error_code) == (412, "LeaseNotPresentWithContainerOperation")
    assert_untouched(raw, container, etag)


@pytest.mark.parametrize(
    ("query", "headers", "code"),
    [
        ({"comp": "lease"}, {"x-ms-lease-action": "acquire", "x-ms-lease-duration": "-1"},
         "InvalidQueryParameterValue"),
        ({"comp": "lease"}, {}, "InvalidQueryParameterValue"),
        ({}, {"x-ms-lease-action": "break"}, "UnsupportedHeader"),
        ({}, {"x-ms-proposed-lease-id": "11111111-2222-3333-4444-555555555555"},
         "UnsupportedHeader"),
    ],
)  # fmt: skip
def test_lease_operations_are_refused(raw: Raw, blob, query, headers, code) -> None:
    container, etag = blob
    resp = raw.request("PUT", container, BLOB, query=query or None, headers=headers)
    assert (resp.status, resp.error_code) == (400, code)
    ct_query = {"restype": "container", **query}
    resp = raw.request("PUT", container, query=ct_query, headers=headers)
    assert (resp.status, resp.error_code) == (400, code)
    assert_untouched(raw, container, etag)


def test_delete_snapshots_only_is_refused_include_is_served(raw: Raw, blob) -> None:
    container, etag = blob
    only = raw.request("DELETE", container, BLOB, headers={"x-ms-delete-snapshots": "only"})
    assert (only.status, only.error_code) == (400, "InvalidHeaderValue")
    assert_untouched(raw, container, etag)
    include = raw.request("DELETE", container, BLOB, headers={"x-ms-delete-snapshots": "include"})
    assert include.status == 202
    assert raw.request("HEAD", container, BLOB).status == 404


@pytest.mark.sdk
def test_sdk_lease_calls_fail_and_touch_nothing(shared_server, raw: Raw, blob) -> None:
    container, etag = blob
    client = BlobServiceClient.from_connection_string(shared_server.connection_string)
    blob_client = client.get_blob_client(container, BLOB)
    with pytest.raises(HttpResponseError) as err:
        blob_client.acquire_lease()
    assert err.value.status_code == 400
    with pytest.raises(HttpResponseError) as err:
        blob_client.delete_blob(lease="11111111-2222-3333-4444-555555555555")
    assert err.value.error_code == "LeaseNotPresentWithBlobOperation"
    assert_untouched(raw, container, etag)


@pytest.mark.parametrize("kind", ["snapshot", "version_id"])
def test_project_signer_makes_the_sdks_snapshot_and_version_sas(kind: str) -> None:
    """The conformance checks sign sr=bs / sr=bv with the project's signer: it must agree with
    azure-storage-blob's generate_blob_sas."""
    expiry = datetime(2030, 1, 1, tzinfo=UTC)
    theirs = generate_blob_sas(
        DEV_ACCOUNT, "ct", BLOB, account_key=DEV_KEY, permission="rd", expiry=expiry,
        **{kind: SNAPSHOT},
    )  # fmt: skip
    ours = generate_service_sas(
        DEV_ACCOUNT, DEV_KEY, container="ct", blob=BLOB, permissions="rd", expiry=expiry,
        version=X_MS_VERSION, **{kind: SNAPSHOT},
    )  # fmt: skip
    assert parse_qs(ours)["sr"] == parse_qs(theirs)["sr"]
    assert parse_qs(ours)["sig"] == parse_qs(theirs)["sig"]


@pytest.mark.parametrize("param", ["snapshot", "versionid"])
@pytest.mark.parametrize(
    ("query", "headers"),
    [({}, BLOCK_BLOB), ({"comp": "block", "blockid": BLOCK_ID}, {}), ({}, {})],
    ids=["put-blob-from-url", "put-block-from-url", "copy-blob"],
)
def test_copy_from_a_snapshot_or_version_is_refused(
    raw: Raw, blob: tuple[str, str], query, headers, param: str
) -> None:
    """A source on this façade would be read from the base blob: refused before any copy."""
    container, etag = blob
    source = f"{raw.url(raw.path(container, 'src.txt'))}?{param}={SNAPSHOT}"
    assert raw.put_blob(container, "src.txt", b"source").status == 201
    headers = {**headers, "x-ms-copy-source": source}
    resp = raw.request("PUT", container, BLOB, query=query or None, headers=headers)
    assert (resp.status, resp.error_code) == (400, "InvalidHeaderValue")
    assert_untouched(raw, container, etag)

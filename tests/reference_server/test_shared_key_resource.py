"""Shared Key names one resource: the canonicalized resource is ``/account`` + the path exactly as
sent, as the SDK signs it, and a signature replayed on another path or another addressing style
is refused (403 AuthenticationFailed) with nothing deleted."""

from __future__ import annotations

from email.utils import formatdate

import pytest
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.rest import HttpRequest
from azure.storage.blob._shared.authentication import SharedKeyCredentialPolicy
from azure.storage.blob._shared.constants import X_MS_VERSION
from facade_raw import Raw

from reference_server.auth import shared_key
from reference_server.config import DEV_ACCOUNT, DEV_KEY

BODY = b"precious"


def sdk_signed(method: str, url: str, account: str, key: str) -> dict[str, str]:
    """Headers azure-storage-blob's own Shared Key policy signs for ``url`` (no network)."""
    headers = {"x-ms-version": X_MS_VERSION, "x-ms-date": formatdate(usegmt=True)}
    request = HttpRequest(method, url, headers=headers)
    SharedKeyCredentialPolicy(account, key).on_request(
        PipelineRequest(request, PipelineContext(None))
    )
    return dict(request.headers)


@pytest.fixture
def twins(raw: Raw) -> tuple[str, str]:
    """Blob ``x/y.txt`` of a container, and the blob ``<container>/x/y.txt`` of a container named
    like the account: the two resources one path-style signature could name."""
    ct = raw.create_container()
    assert raw.put_blob(ct, "x/y.txt", BODY).status == 201
    raw.request("PUT", raw.account, query={"restype": "container"})  # may exist already
    assert raw.put_blob(raw.account, f"{ct}/x/y.txt", BODY).status == 201
    return ct, f"{ct}/x/y.txt"


def _both_present(raw: Raw, ct: str, twin: str) -> bool:
    return (
        raw.request("GET", ct, "x/y.txt").body == BODY
        and raw.request("GET", raw.account, twin).body == BODY
    )


def test_replay_on_doubled_account_path_is_refused(raw: Raw, twins: tuple[str, str]) -> None:
    ct, twin = twins
    url = f"{raw.account_url}/{ct}/x/y.txt"
    headers = sdk_signed("DELETE", url, raw.account, raw.key)
    doubled = f"/{raw.account}/{raw.account}/{ct}/x/y.txt"
    resp = raw.request("DELETE", raw_path=doubled, headers=headers, sign=False)
    assert (resp.status, resp.error_code) == (403, "AuthenticationFailed")
    assert _both_present(raw, ct, twin)
    # the request as signed is served, and deletes only its own blob
    resp = raw.request(
        "DELETE", raw_path=f"/{raw.account}/{ct}/x/y.txt", headers=headers, sign=False
    )
    assert resp.status == 202
    assert raw.request("HEAD", ct, "x/y.txt").status == 404
    assert raw.request("GET", raw.account, twin).body == BODY


@pytest.mark.parametrize("domain", ["localhost", "lab.test"])
def test_replay_with_virtual_host_name_is_refused(raw: Raw, twins, domain: str) -> None:
    ct, twin = twins
    url = f"{raw.account_url}/{ct}/x/y.txt"
    headers = sdk_signed("DELETE", url, raw.account, raw.key)
    host = f"{raw.account}.blob.{domain}:{raw.server.port}"
    path = f"/{raw.account}/{ct}/x/y.txt"  # as a virtual-host path: container = the account name
    resp = raw.request("DELETE", raw_path=path, headers=headers, host=host, sign=False)
    assert (resp.status, resp.error_code) == (403, "AuthenticationFailed")
    assert _both_present(raw, ct, twin)


def test_virtual_host_requests_still_verify(raw: Raw, twins: tuple[str, str]) -> None:
    """What AzCopy (through the lab proxy) and boostedblob send: /container/blob signed as
    /account/container/blob."""
    ct, _ = twins
    host = f"{raw.account}.blob.lab.test:{raw.server.port}"
    resp = raw.request("GET", raw_path=f"/{ct}/x/y.txt", host=host)
    assert (resp.status, resp.body) == (200, BODY)
    listing = raw.request(
        "GET", raw_path=f"/{ct}", query={"restype": "container", "comp": "list"}, host=host
    )
    assert listing.status == 200 and b"<Name>x/y.txt</Name>" in listing.body


def test_sdk_path_style_signature_is_the_full_path() -> None:
    """The SDK signs /account + the whole URL path; the project's signer and verifier agree."""
    url = "http://127.0.0.1:10000/devstoreaccount1/ct1/x/y.txt"
    headers = sdk_signed("DELETE", url, DEV_ACCOUNT, DEV_KEY)
    ours = shared_key.sign_request(
        "DELETE", url, {k: v for k, v in headers.items() if k != "Authorization"}, DEV_ACCOUNT,
        DEV_KEY,
    )  # fmt: skip
    assert ours["Authorization"] == headers["Authorization"]
    sts = shared_key.string_to_sign(
        "DELETE", "/devstoreaccount1/ct1/x/y.txt", [], headers, DEV_ACCOUNT, True
    )
    assert sts.endswith("\n/devstoreaccount1/devstoreaccount1/ct1/x/y.txt")

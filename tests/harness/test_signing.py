"""The harness's own signatures equal azure-storage-blob's (its SharedKeyCredentialPolicy and
generate_*_sas) for a table of requests and tokens, and follow the REST documentation where the
SDK leaves a field out."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qsl

import pytest
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.pipeline.transport import HttpRequest
from azure.storage.blob import generate_account_sas, generate_blob_sas, generate_container_sas
from azure.storage.blob._shared.authentication import SharedKeyCredentialPolicy
from azure.storage.blob._shared.constants import X_MS_VERSION

from harness import signing
from harness.http import BlobRequests, block_id
from harness.targets.base import DEV_ACCOUNT, DEV_KEY

DATE = "Tue, 01 Dec 2026 20:00:00 GMT"
PATH_STYLE = BlobRequests(f"http://127.0.0.1:10000/{DEV_ACCOUNT}", DEV_ACCOUNT, DEV_KEY)
HOST_STYLE = BlobRequests(f"https://{DEV_ACCOUNT}.blob.lab.test", DEV_ACCOUNT, DEV_KEY)


def _url(style: BlobRequests, container: str | None, blob: str | None, query=None) -> str:
    return style.url(style.path(container, blob), query)


# (id, method, url, headers): the headers are exactly what is signed and sent.
REQUESTS = [
    ("get-blob-path-style", "GET", _url(PATH_STYLE, "ct", "a.bin"), {}),
    ("get-blob-host-style", "GET", _url(HOST_STYLE, "ct", "a.bin"), {}),
    (
        "put-blob-body-and-metadata",
        "PUT",
        _url(PATH_STYLE, "ct", "dir/file.txt"),
        {
            "Content-Length": "11",
            "Content-Type": "text/plain; charset=utf-8",
            "Content-MD5": "XrY7u+Ae7tCTyyK7j1rNww==",
            "Content-Encoding": "gzip",
            "Content-Language": "en-GB",
            "x-ms-blob-type": "BlockBlob",
            # the service's culture-aware order differs from byte order for these three
            "x-ms-meta-ab": "1",
            "x-ms-meta-a_b": "2",
            "x-ms-meta-a-b": "3",
            "x-ms-meta-Upper": "Mixed Case Value",
        },
    ),
    (
        "conditional-head",
        "HEAD",
        _url(HOST_STYLE, "ct", "a.bin"),
        {
            "If-Match": '"0x8D0000000000001"',
            "If-None-Match": '"0x8D0000000000002"',
            "If-Modified-Since": "Mon, 30 Nov 2026 10:00:00 GMT",
            "If-Unmodified-Since": "Wed, 02 Dec 2026 10:00:00 GMT",
        },
    ),
    (
        "put-block-encoded-blockid",
        "PUT",
        _url(PATH_STYLE, "ct", "big.bin", {"comp": "block", "blockid": block_id(7) + "+/="}),
        {"Content-Length": "4096"},
    ),
    (
        "put-container-empty-body",
        "PUT",
        _url(PATH_STYLE, "ct-new", None, {"restype": "container"}),
        {"Content-Length": "0", "x-ms-blob-public-access": "blob"},
    ),
    (
        "list-blobs-unicode-prefix",
        "GET",
        _url(
            HOST_STYLE,
            "ct",
            None,
            {
                "restype": "container",
                "comp": "list",
                "prefix": "données/ünï cödé/",
                "delimiter": "/",
                "maxresults": "5",
                "marker": "2!80!MDAwMDE2IWRhdGEvZmlsZS0wMDAwMDEhMDAwMDI4ITk5OTktMTItMzE-",
            },
        ),
        {},
    ),
    ("list-containers-path-style", "GET", _url(PATH_STYLE, None, None, {"comp": "list"}), {}),
    ("list-containers-host-style", "GET", _url(HOST_STYLE, None, None, {"comp": "list"}), {}),
    ("unicode-blob-name", "GET", _url(PATH_STYLE, "ct", "日本語/ファイル ü.txt"), {}),
    ("reserved-characters", "DELETE", _url(HOST_STYLE, "ct", "a+b=c&d%e#f?g;h.bin"), {}),
    (
        "delete-with-snapshots",
        "DELETE",
        _url(PATH_STYLE, "ct", "a.bin"),
        {"x-ms-delete-snapshots": "include", "x-ms-client-request-id": "req-1"},
    ),
    ("ranged-get", "GET", _url(HOST_STYLE, "ct", "a.bin"), {"x-ms-range": "bytes=0-1023"}),
    ("date-header-only", "GET", _url(PATH_STYLE, "ct", "a.bin"), {"Date": DATE}),
    (
        "put-block-list",
        "PUT",
        _url(PATH_STYLE, "ct", "big.bin", {"comp": "blocklist"}),
        {
            "Content-Length": "120",
            "Content-Type": "application/xml",
            "x-ms-blob-content-type": "application/octet-stream",
            "x-ms-meta-checksum": "abc",
        },
    ),
]


def _sdk_authorization(method: str, url: str, headers: dict[str, str]) -> str:
    request = PipelineRequest(
        HttpRequest(method, url, headers=dict(headers)), PipelineContext(None)
    )
    SharedKeyCredentialPolicy(DEV_ACCOUNT, DEV_KEY).on_request(request)
    return request.http_request.headers["Authorization"]


@pytest.mark.parametrize(
    ("method", "url", "headers"), [r[1:] for r in REQUESTS], ids=[r[0] for r in REQUESTS]
)
def test_shared_key_equals_the_sdk(method: str, url: str, headers: dict[str, str]) -> None:
    sent = {"x-ms-version": "2025-07-05", **headers}
    if "Date" not in headers:
        sent["x-ms-date"] = DATE
    ours = signing.sign_request(method, url, dict(sent), DEV_ACCOUNT, DEV_KEY)["Authorization"]
    assert ours == _sdk_authorization(method, url, sent)


@pytest.mark.parametrize("style", [PATH_STYLE, HOST_STYLE], ids=["path-style", "host-style"])
def test_blob_requests_sign_like_the_sdk(style: BlobRequests) -> None:
    """The one request builder every raw client uses signs with the harness signer."""
    prepared = style.prepare(
        "PUT",
        "ct",
        "dir/ü b.bin",
        query={"comp": "block", "blockid": block_id(1)},
        headers={"x-ms-meta-k": "v"},
        content_length=3,
        date=DATE,
    )
    unsigned = {k: v for k, v in prepared.headers.items() if k != "Authorization"}
    assert prepared.headers["Authorization"] == _sdk_authorization("PUT", prepared.url, unsigned)


def test_documented_form_where_the_sdk_differs() -> None:
    """The SDK never fills the Range line (it sends x-ms-range); the documented form does, and
    combines a repeated query parameter's sorted values with commas."""
    url = "https://myaccount.blob.core.windows.net/mycontainer?restype=container&comp=metadata"
    sts = signing.string_to_sign("GET", url, {"Range": "bytes=0-9", "x-ms-date": DATE}, "myaccount")
    lines = sts.split("\n")
    assert lines[11] == "bytes=0-9"  # after VERB and the ten standard headers before Range
    assert sts.endswith("\n/myaccount/mycontainer\ncomp:metadata\nrestype:container")
    repeated = signing.string_to_sign("GET", "http://h/acct/ct?b=2&B=1&a=x%2Fy", {}, "acct")
    assert repeated.endswith("/acct/acct/ct\na:x/y\nb:1,2")


EXPIRY = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
START = datetime(2026, 12, 1, 0, 0, 0, tzinfo=UTC)


def _fields(token: str) -> dict[str, str]:
    return dict(parse_qsl(token.lstrip("?"), keep_blank_values=True))


ACCOUNT_SAS = [
    {"services": "b", "resource_types": "sco", "permissions": "rwdlac"},
    {"services": "b", "resource_types": "o", "permissions": "r", "start": START},
    {"services": "bf", "resource_types": "c", "permissions": "l", "ip": "127.0.0.1"},
    {"services": "b", "resource_types": "sco", "permissions": "rw", "protocol": "https,http"},
    {"services": "b", "resource_types": "s", "permissions": "r", "encryption_scope": "scope1"},
    {"services": "q", "resource_types": "sc", "permissions": "rwl", "ip": "10.0.0.1-10.0.0.9"},
]


@pytest.mark.parametrize("args", ACCOUNT_SAS, ids=[str(i) for i in range(len(ACCOUNT_SAS))])
def test_account_sas_equals_the_sdk(args: dict) -> None:
    ours = signing.generate_account_sas(
        DEV_ACCOUNT, DEV_KEY, expiry=EXPIRY, version=X_MS_VERSION, **args
    )
    sdk = generate_account_sas(
        DEV_ACCOUNT,
        DEV_KEY,
        args["resource_types"],
        args["permissions"],
        EXPIRY,
        start=args.get("start"),
        ip=args.get("ip"),
        services=args["services"],
        protocol=args.get("protocol"),
        encryption_scope=args.get("encryption_scope"),
    )
    assert _fields(ours) == _fields(sdk)


SERVICE_SAS = [
    {"container": "ct", "blob": None, "permissions": "rl"},
    {"container": "ct", "blob": "a.bin", "permissions": "r", "start": START},
    {"container": "ct", "blob": "dir/ünï cödé/日本.txt", "permissions": "rcw", "ip": "127.0.0.1"},
    {"container": "ct", "blob": "a+b=c&d.bin", "permissions": "r", "protocol": "https"},
    {"container": "ct", "blob": None, "permissions": "r", "identifier": "policy-1"},
    {
        "container": "ct",
        "blob": "report.pdf",
        "permissions": "r",
        "cache_control": "no-cache",
        "content_disposition": "attachment; filename=r.pdf",
        "content_encoding": "gzip",
        "content_language": "fr",
        "content_type": "application/pdf",
    },
    {"container": "ct", "blob": "s.bin", "permissions": "w", "encryption_scope": "scope1"},
]
_OVERRIDES = ("cache_control", "content_disposition", "content_encoding", "content_language")


@pytest.mark.parametrize("args", SERVICE_SAS, ids=[str(i) for i in range(len(SERVICE_SAS))])
def test_service_sas_equals_the_sdk(args: dict) -> None:
    ours = signing.generate_service_sas(
        DEV_ACCOUNT, DEV_KEY, expiry=EXPIRY, version=X_MS_VERSION, **args
    )
    common = {
        "account_key": DEV_KEY,
        "permission": args["permissions"],
        "expiry": EXPIRY,
        "start": args.get("start"),
        "policy_id": args.get("identifier"),
        "ip": args.get("ip"),
        "protocol": args.get("protocol"),
        "encryption_scope": args.get("encryption_scope"),
        "content_type": args.get("content_type"),
        **{k: args.get(k) for k in _OVERRIDES},
    }
    if args["blob"] is None:
        sdk = generate_container_sas(DEV_ACCOUNT, args["container"], **common)
    else:
        sdk = generate_blob_sas(DEV_ACCOUNT, args["container"], args["blob"], **common)
    assert _fields(ours) == _fields(sdk)


def test_harness_signs_what_the_default_sas_version_documents() -> None:
    """The default signed version is the lab's API version; a service SAS for one blob does not
    sign for another (the canonicalized resource names the blob)."""
    token = _fields(
        signing.generate_service_sas(
            DEV_ACCOUNT, DEV_KEY, container="ct", blob="a", permissions="r", expiry=EXPIRY
        )
    )
    other = _fields(
        signing.generate_service_sas(
            DEV_ACCOUNT, DEV_KEY, container="ct", blob="b", permissions="r", expiry=EXPIRY
        )
    )
    assert token["sv"] == signing.SAS_VERSION == "2025-07-05"
    assert token["sr"] == "b" and token["sig"] != other["sig"]

"""Shared Key and SAS: the project's signer and verifier against azure-storage-blob's own.

No façade needed: SDK requests go to a small in-process aiohttp app whose only logic is
``authorize``; other cases sign with the SDK's SharedKeyCredentialPolicy / generate_*_sas and
verify with ours, and the reverse.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, formatdate
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
from aiohttp import web
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.rest import HttpRequest
from azure.storage.blob import (
    BlobServiceClient,
    ContainerClient,
    UserDelegationKey,
    generate_account_sas,
    generate_blob_sas,
    generate_container_sas,
)
from azure.storage.blob._shared.authentication import SharedKeyCredentialPolicy
from azure.storage.blob._shared.constants import X_MS_VERSION
from azure.storage.blob.aio import ContainerClient as AioContainerClient

from reference_server.auth import Access, RequestView, authorize, sas, shared_key
from reference_server.config import DEV_ACCOUNT, DEV_KEY, Account
from reference_server.errors import StorageError

OTHER_KEY = "c2Vjb25kLWtleS1mb3ItdGhlLWxhYi0wMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OQ=="
WRONG_KEY = "d3Jvbmcta2V5LW5vdC1vZi10aGlzLWFjY291bnQtMDEyMzQ1Njc4OWFiY2RlZg=="
ACCOUNT = Account(DEV_ACCOUNT, [OTHER_KEY, DEV_KEY])  # DEV_KEY second: every key is tried
NOW = datetime.now(UTC)


# ---- helpers ---------------------------------------------------------------------------------


def split_path(raw_path: str, path_style: bool) -> tuple[str | None, str | None]:
    """Decoded container and blob names of a raw request path."""
    segments = raw_path.split("?", 1)[0].lstrip("/").split("/", 2 if path_style else 1)
    if path_style:
        segments = segments[1:]
    container = unquote(segments[0]) if segments and segments[0] else None
    blob = unquote(segments[1]) if len(segments) > 1 and segments[1] else None
    return container, blob


def access_for(
    method: str, raw_path: str, query: list[tuple[str, str]], path_style: bool
) -> Access:
    container, blob = split_path(raw_path, path_style)
    names = dict(query)
    if method in ("GET", "HEAD"):
        permission = "l" if names.get("comp") == "list" else "r"
    else:
        permission = {"PUT": "cw", "DELETE": "d"}.get(method, "w")
    resource = "o" if blob else "c" if container else "s"
    return Access(permission, resource, container, blob, is_read=method in ("GET", "HEAD"))


def view_for(
    method: str,
    url: str,
    headers: dict[str, str],
    *,
    path_style: bool = True,
    secure: bool = False,
    client_ip: str = "127.0.0.1",
) -> RequestView:
    parts = urlsplit(url)
    return RequestView(
        method,
        parts.path,
        parse_qsl(parts.query, keep_blank_values=True),
        headers,
        DEV_ACCOUNT,
        path_style,
        secure,
        client_ip,
    )


def check(view: RequestView, account: Account = ACCOUNT) -> str:
    """The principal scheme, or the error code authorize answers with."""
    access = access_for(view.method, view.raw_path, view.query, view.path_style)
    try:
        return authorize(view, account, access).scheme
    except StorageError as exc:
        return exc.code


def sdk_sign(method: str, url: str, headers: dict[str, str], key: str = DEV_KEY) -> dict[str, str]:
    """Sign with azure-storage-blob's own policy (no network)."""
    request = HttpRequest(method, url, headers=dict(headers))
    SharedKeyCredentialPolicy(DEV_ACCOUNT, key).on_request(
        PipelineRequest(request, PipelineContext(None))
    )
    return dict(request.headers)


def base_headers(**extra: str) -> dict[str, str]:
    return {"x-ms-version": X_MS_VERSION, "x-ms-date": formatdate(usegmt=True), **extra}


# ---- a tiny app that only authorizes ---------------------------------------------------------


class AuthApp:
    """aiohttp on a loopback port, in a thread; records what ``authorize`` decided."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.outcomes: list[tuple[str, str]] = []
        self.paths: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    @property
    def account_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.account.name}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        raw_path, path_style = request.raw_path, True
        if raw_path.startswith("http://"):
            # absolute form: the app stands in as the forward proxy for a virtual-host name
            raw_path, path_style = "/" + raw_path.split("/", 3)[3], False
        self.paths.append(raw_path)
        query = list(request.query.items())
        view = RequestView(
            request.method,
            raw_path,
            query,
            request.headers,
            self.account.name,
            path_style,
            False,
            request.remote,
        )
        access = access_for(request.method, raw_path, query, path_style)
        try:
            principal = authorize(view, self.account, access)
        except StorageError as exc:
            self.outcomes.append((request.method, exc.code))
            root = ET.Element("Error")
            ET.SubElement(root, "Code").text = exc.code
            ET.SubElement(root, "Message").text = exc.text
            return web.Response(
                status=exc.status,
                body=ET.tostring(root, xml_declaration=True, encoding="utf-8"),
                headers={"x-ms-error-code": exc.code, "Content-Type": "application/xml"},
            )
        self.outcomes.append((request.method, principal.scheme))
        status = {"PUT": 201, "DELETE": 202}.get(request.method, 200)
        if request.query.get("comp") in ("metadata", "properties"):
            status = 200
        headers = {
            "ETag": '"0x1"',
            "Last-Modified": formatdate(usegmt=True),
            "x-ms-blob-type": "BlockBlob",
            "x-ms-request-id": "1",
        }
        return web.Response(status=status, headers=headers)

    def start(self) -> None:
        self.thread.start()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        asyncio.run_coroutine_threadsafe(self.runner.setup(), self.loop).result()
        site = web.SockSite(self.runner, self.sock)
        asyncio.run_coroutine_threadsafe(site.start(), self.loop).result()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture
def auth_app() -> Iterator[AuthApp]:
    app = AuthApp(ACCOUNT)
    app.start()
    yield app
    app.stop()


# ---- Shared Key: the SDK's requests ---------------------------------------------------------


@pytest.mark.sdk
def test_sdk_shared_key_requests_verify(auth_app: AuthApp) -> None:
    client = ContainerClient(auth_app.account_url, "ct", credential=DEV_KEY)
    client.create_container()
    blob = client.get_blob_client("dir/a b+%ü~(1).txt")
    # a1 / a_1: byte order and the service's collation sort these two differently
    blob.upload_blob(b"hello", metadata={"a1": "x", "a_1": "y", "Upper": "z"}, overwrite=True)
    blob.get_blob_properties()
    blob.set_blob_metadata({"k": "v"})
    blob.delete_blob()
    BlobServiceClient(auth_app.account_url, credential=DEV_KEY).get_account_information()
    assert auth_app.outcomes == [
        ("PUT", "sharedkey"),
        ("PUT", "sharedkey"),
        ("HEAD", "sharedkey"),
        ("PUT", "sharedkey"),
        ("DELETE", "sharedkey"),
        ("GET", "sharedkey"),
    ]


@pytest.mark.sdk
def test_sdk_aio_shared_key_requests_verify(auth_app: AuthApp) -> None:
    async def run() -> None:
        async with AioContainerClient(auth_app.account_url, "ct", credential=DEV_KEY) as client:
            await client.create_container()
            await client.upload_blob("x/é y.bin", b"data", metadata={"m": "1"})
            await client.delete_blob("x/é y.bin")

    asyncio.run(run())
    assert auth_app.outcomes == [
        ("PUT", "sharedkey"),
        ("PUT", "sharedkey"),
        ("DELETE", "sharedkey"),
    ]


@pytest.mark.sdk
def test_sdk_wrong_key_is_authentication_failed(auth_app: AuthApp) -> None:
    client = ContainerClient(auth_app.account_url, "ct", credential=WRONG_KEY)
    with pytest.raises(HttpResponseError) as info:
        client.create_container()
    assert info.value.status_code == 403
    assert info.value.error_code == "AuthenticationFailed"
    assert auth_app.outcomes == [("PUT", "AuthenticationFailed")]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:10000/devstoreaccount1/ct/a%2Fb%20c?comp=metadata",
        "http://127.0.0.1:10000/devstoreaccount1/?comp=list&prefix=p&include=metadata",
        "http://127.0.0.1:10000/devstoreaccount1",
        "http://devstoreaccount1.blob.lab.test:8443/ct/dir/x.bin?blockid=QUJD&comp=block",
        "http://devstoreaccount1.blob.lab.test/",
    ],
)
def test_sdk_policy_signature_verifies(url: str) -> None:
    path_style = "blob.lab.test" not in url
    headers = base_headers(
        **{"Content-Length": "5", "Content-Type": "application/octet-stream", "If-Match": '"e"'}
    )
    signed = sdk_sign("PUT", url, headers)
    assert check(view_for("PUT", url, signed, path_style=path_style)) == "sharedkey"
    # and the project's signer produces the very same Authorization header
    ours = shared_key.sign_request("PUT", url, dict(headers), DEV_ACCOUNT, DEV_KEY)
    assert ours["Authorization"] == signed["Authorization"]


def test_path_style_canonical_resource_repeats_account() -> None:
    sts = shared_key.string_to_sign(
        "GET", "/devstoreaccount1/ct/blob", [("comp", "list"), ("b", "2"), ("B", "1")],
        {"x-ms-date": "d"}, DEV_ACCOUNT, True,
    )  # fmt: skip
    assert sts.endswith("x-ms-date:d\n/devstoreaccount1/devstoreaccount1/ct/blob\nb:1,2\ncomp:list")
    virtual = shared_key.string_to_sign("GET", "/ct/blob", [], {}, DEV_ACCOUNT, False)
    assert virtual.endswith("\n/devstoreaccount1/ct/blob")


def test_go_sdk_form_verifies() -> None:
    """AzCopy (Go SDK) leaves Date empty and sorts x-ms-* headers by bytes."""
    url = "http://127.0.0.1:10000/devstoreaccount1/ct/a"
    headers = base_headers(**{"Date": formatdate(usegmt=True), "x-ms-meta-a1": "1"})
    headers["x-ms-meta-a_1"] = "2"
    sts = shared_key.string_to_sign(
        "PUT", "/devstoreaccount1/ct/a", [], headers, DEV_ACCOUNT, True,
        header_order="ordinal", blank_date=True,
    )  # fmt: skip
    assert sts != shared_key.string_to_sign(
        "PUT", "/devstoreaccount1/ct/a", [], headers, DEV_ACCOUNT, True
    )
    headers["Authorization"] = (
        f"SharedKey {DEV_ACCOUNT}:{shared_key.compute_signature(DEV_KEY, sts)}"
    )
    assert check(view_for("PUT", url, headers)) == "sharedkey"


def test_a_cached_request_date_is_still_checked_against_the_clock() -> None:
    """Parsed dates are cached per string; the skew check is not: the same x-ms-date passes
    now and fails once the clock has moved past the allowed skew."""
    now = datetime.now(UTC).replace(microsecond=0)
    headers = {"x-ms-date": format_datetime(now, usegmt=True)}
    assert shared_key.check_request_date(headers, now) == now
    assert shared_key.check_request_date(headers, now) == now  # from the cache
    later = now + shared_key.MAX_CLOCK_SKEW + timedelta(seconds=1)
    with pytest.raises(StorageError) as err:
        shared_key.check_request_date(headers, later)
    assert "too old" in err.value.details["AuthenticationErrorDetail"]


def test_long_header_names_sort_like_short_ones() -> None:
    """Collation keys are cached for short names only; a long name sorts the same way."""
    long_a = "x-ms-meta-a_" + "b" * 80
    long_b = "x-ms-meta-a" + "c" * 80
    headers = {long_a: "1", long_b: "2", "x-ms-meta-a_b": "3", "x-ms-meta-ac": "4"}
    lines = shared_key.canonicalized_headers(headers).splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "x-ms-meta-a_b",
        long_a,
        "x-ms-meta-ac",
        long_b,
    ]  # '_' is ignored at the first level, as the service sorts
    assert shared_key.canonicalized_headers(headers) == "".join(line + "\n" for line in lines)


def test_python_sdk_range_header_form_verifies() -> None:
    """The Python SDK never fills the Range line; the documented form does."""
    url = "http://127.0.0.1:10000/devstoreaccount1/ct/a"
    headers = base_headers(Range="bytes=0-9")
    assert check(view_for("GET", url, sdk_sign("GET", url, headers))) == "sharedkey"
    ours = shared_key.sign_request("GET", url, dict(headers), DEV_ACCOUNT, DEV_KEY)
    assert check(view_for("GET", url, ours)) == "sharedkey"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ("tamper", "AuthenticationFailed"),
        ("skew-past", "AuthenticationFailed"),
        ("skew-future", "AuthenticationFailed"),
        ("no-date", "AuthenticationFailed"),
        ("other-account", "AuthenticationFailed"),
        ("changed-header", "AuthenticationFailed"),
        ("lite", "AuthenticationFailed"),
    ],
)
def test_shared_key_failures(change: str, code: str) -> None:
    url = "http://127.0.0.1:10000/devstoreaccount1/ct/a"
    headers = base_headers(**{"Content-Length": "3"})
    if change == "skew-past":
        headers["x-ms-date"] = format_datetime(
            datetime.now(UTC) - timedelta(minutes=16), usegmt=True
        )
    if change == "skew-future":
        headers["x-ms-date"] = format_datetime(
            datetime.now(UTC) + timedelta(minutes=16), usegmt=True
        )
    if change == "no-date":
        del headers["x-ms-date"]
    signed = sdk_sign("PUT", url, headers)
    if change == "tamper":
        sig = signed["Authorization"].rsplit(":", 1)[1]
        signed["Authorization"] = signed["Authorization"][: -len(sig)] + sig[::-1]
    if change == "other-account":
        signed["Authorization"] = signed["Authorization"].replace(DEV_ACCOUNT, "someoneelse")
    if change == "changed-header":
        signed["Content-Length"] = "4"
    if change == "lite":
        signed["Authorization"] = signed["Authorization"].replace("SharedKey ", "SharedKeyLite ")
    assert check(view_for("PUT", url, signed)) == code


def test_clock_skew_within_window_verifies() -> None:
    url = "http://127.0.0.1:10000/devstoreaccount1/ct/a"
    headers = base_headers()
    headers["x-ms-date"] = format_datetime(datetime.now(UTC) - timedelta(minutes=14), usegmt=True)
    assert check(view_for("GET", url, sdk_sign("GET", url, headers))) == "sharedkey"


def test_authentication_failed_detail_shows_string_to_sign_not_secrets() -> None:
    url = "http://127.0.0.1:10000/devstoreaccount1/ct/a"
    signed = sdk_sign("GET", url, base_headers(), key=WRONG_KEY)
    view = view_for("GET", url, signed)
    with pytest.raises(StorageError) as info:
        authorize(view, ACCOUNT, access_for("GET", view.raw_path, view.query, True))
    detail = info.value.details["AuthenticationErrorDetail"]
    assert "/devstoreaccount1/devstoreaccount1/ct/a" in detail
    sig = signed["Authorization"].rsplit(":", 1)[1]
    for secret in (sig, DEV_KEY, OTHER_KEY):
        assert secret not in detail and secret not in info.value.text


# ---- SAS: SDK-generated tokens verify, ours match the SDK's ---------------------------------


def sas_view(url: str, token: str, **kw: object) -> RequestView:
    sep = "&" if "?" in url else "?"
    return view_for("GET" if "method" not in kw else str(kw.pop("method")), url + sep + token, {
        "x-ms-version": X_MS_VERSION}, **kw)  # type: ignore[arg-type]  # fmt: skip


def sas_check(url: str, token: str, method: str = "GET", **kw: object) -> str:
    return check(sas_view(url, token, method=method, **kw))


def token_fields(token: str) -> dict[str, str]:
    return dict(parse_qsl(token))


BLOB_URL = "http://127.0.0.1:10000/devstoreaccount1/ct/dir/a b.txt".replace(" ", "%20")
CONTAINER_URL = "http://127.0.0.1:10000/devstoreaccount1/ct?restype=container&comp=list"
SERVICE_URL = "http://127.0.0.1:10000/devstoreaccount1/?comp=list"
EXPIRY = NOW + timedelta(hours=1)


def test_sdk_account_sas_verifies_and_matches_ours() -> None:
    seen: list[str] = []
    token = generate_account_sas(
        DEV_ACCOUNT, DEV_KEY, resource_types="sco", permission="rwdlac", expiry=EXPIRY,
        start=NOW - timedelta(minutes=5), sts_hook=seen.append,
    )  # fmt: skip
    for url in (BLOB_URL, CONTAINER_URL, SERVICE_URL):
        assert sas_check(url, token) == "sas"
    assert sas_check(BLOB_URL, token, method="DELETE") == "sas"
    ours = sas.generate_account_sas(
        DEV_ACCOUNT, DEV_KEY, permissions="rwdlac", expiry=EXPIRY,
        start=NOW - timedelta(minutes=5), version=X_MS_VERSION,
    )  # fmt: skip
    assert token_fields(ours)["sig"] == token_fields(token)["sig"]
    assert sas.account_string_to_sign(DEV_ACCOUNT, token_fields(ours)) == seen[0]


def test_sdk_container_sas_verifies_and_matches_ours() -> None:
    seen: list[str] = []
    token = generate_container_sas(
        DEV_ACCOUNT, "ct", DEV_KEY, permission="rl", expiry=EXPIRY, protocol="https,http",
        sts_hook=seen.append,
    )  # fmt: skip
    assert sas_check(CONTAINER_URL, token) == "sas"
    assert sas_check(BLOB_URL, token) == "sas"
    assert sas_check(BLOB_URL, token, method="DELETE") == "AuthorizationPermissionMismatch"
    other = "http://127.0.0.1:10000/devstoreaccount1/other?restype=container&comp=list"
    assert sas_check(other, token) == "AuthenticationFailed"
    # Azure: "The specified signed resource is not allowed for the this resource level"
    assert sas_check(SERVICE_URL, token) == "AuthenticationFailed"
    ours = sas.generate_service_sas(
        DEV_ACCOUNT, DEV_KEY, container="ct", blob=None, permissions="rl", expiry=EXPIRY,
        protocol="https,http", version=X_MS_VERSION,
    )  # fmt: skip
    assert token_fields(ours)["sig"] == token_fields(token)["sig"]
    fields = token_fields(ours)
    assert sas.service_string_to_sign(fields, f"/blob/{DEV_ACCOUNT}/ct") == seen[0]


def test_sdk_blob_sas_with_response_overrides() -> None:
    seen: list[str] = []
    overrides = {
        "cache_control": "no-cache",
        "content_disposition": "attachment; filename=a.txt",
        "content_encoding": "identity",
        "content_language": "en",
        "content_type": "text/plain",
    }
    token = generate_blob_sas(
        DEV_ACCOUNT, "ct", "dir/a b.txt", account_key=DEV_KEY, permission="r", expiry=EXPIRY,
        sts_hook=seen.append, **overrides,
    )  # fmt: skip
    view = sas_view(BLOB_URL, token)
    principal = authorize(view, ACCOUNT, access_for("GET", view.raw_path, view.query, True))
    assert principal.details["rscd"] == "attachment; filename=a.txt"
    assert principal.details["rsct"] == "text/plain"
    assert principal.details["rscc"] == "no-cache"
    assert principal.details["sas"] == "service"
    ours = sas.generate_service_sas(
        DEV_ACCOUNT, DEV_KEY, container="ct", blob="dir/a b.txt", permissions="r",
        expiry=EXPIRY, version=X_MS_VERSION, **overrides,
    )  # fmt: skip
    assert token_fields(ours)["sig"] == token_fields(token)["sig"]
    resource = f"/blob/{DEV_ACCOUNT}/ct/dir/a b.txt"
    assert sas.service_string_to_sign(token_fields(ours), resource) == seen[0]
    # a changed override breaks the signature
    tampered = token.replace("rsct=text/plain", "rsct=text/html")
    assert tampered != token and sas_check(BLOB_URL, tampered) == "AuthenticationFailed"
    # the blob SAS does not reach another blob
    other_blob = BLOB_URL.replace("a%20b", "c")
    assert sas_check(other_blob, token) == "AuthenticationFailed"


def test_our_generated_sas_verifies_with_default_version() -> None:
    token = sas.generate_service_sas(
        DEV_ACCOUNT, DEV_KEY, container="ct", blob=None, permissions="rcwl", expiry=EXPIRY
    )
    assert token_fields(token)["sv"] == sas.SAS_VERSION
    assert sas_check(BLOB_URL, token, method="PUT") == "sas"
    acct = sas.generate_account_sas(DEV_ACCOUNT, DEV_KEY, permissions="l", expiry=EXPIRY)
    assert sas_check(SERVICE_URL, acct) == "sas"


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("tampered", "AuthenticationFailed"),
        ("expired", "AuthenticationFailed"),
        ("not-yet-valid", "AuthenticationFailed"),
        ("permission", "AuthorizationPermissionMismatch"),
        ("resource-type", "AuthorizationResourceTypeMismatch"),
        ("service", "AuthorizationServiceMismatch"),
        ("https-only", "AuthorizationProtocolMismatch"),
        ("ip", "AuthorizationSourceIPMismatch"),
        ("ip-range-ok", "sas"),
        ("https-over-tls", "sas"),
        ("other-key", "AuthenticationFailed"),
    ],
)
def test_account_sas_failures(case: str, code: str) -> None:
    kw: dict = {"resource_types": "sco", "permission": "r", "expiry": EXPIRY}
    view_kw: dict = {}
    if case == "expired":
        kw.update(start=NOW - timedelta(hours=2), expiry=NOW - timedelta(minutes=1))
    if case == "not-yet-valid":
        kw["start"] = NOW + timedelta(minutes=30)
    if case == "permission":
        kw["permission"] = "l"
    if case == "resource-type":
        kw["resource_types"] = "sc"
    if case == "service":
        kw["services"] = "qf"
    if case in ("https-only", "https-over-tls"):
        kw["protocol"] = "https"
        view_kw["secure"] = case == "https-over-tls"
    if case == "ip":
        kw["ip"] = "10.0.0.1-10.0.0.9"
    if case == "ip-range-ok":
        kw["ip"] = "127.0.0.0-127.0.0.9"
    key = WRONG_KEY if case == "other-key" else DEV_KEY
    token = generate_account_sas(DEV_ACCOUNT, key, **kw)
    if case == "tampered":
        fields = token_fields(token)
        token = token.replace("sp=r", "sp=rwd")
        assert token_fields(token)["sig"] == fields["sig"]
    assert sas_check(BLOB_URL, token, **view_kw) == code


def test_blob_sas_does_not_authorize_container_listing() -> None:
    token = generate_blob_sas(
        DEV_ACCOUNT, "ct", "dir/a b.txt", account_key=DEV_KEY, permission="rl", expiry=EXPIRY
    )
    assert sas_check(BLOB_URL, token) == "sas"
    assert sas_check(CONTAINER_URL, token) == "AuthenticationFailed"


def test_user_delegation_sas_string_to_sign_matches_sdk_and_is_refused() -> None:
    key = UserDelegationKey()
    key.signed_oid, key.signed_tid = "11111111-aaaa", "22222222-bbbb"
    key.signed_start, key.signed_expiry = "2025-01-01T00:00:00Z", "2035-01-01T00:00:00Z"
    key.signed_service, key.signed_version = "b", X_MS_VERSION
    key.value = DEV_KEY
    seen: list[str] = []
    token = generate_blob_sas(
        DEV_ACCOUNT, "ct", "dir/a b.txt", user_delegation_key=key, permission="r",
        expiry=EXPIRY, content_type="text/plain", sts_hook=seen.append,
    )  # fmt: skip
    fields = token_fields(token)
    resource = f"/blob/{DEV_ACCOUNT}/ct/dir/a b.txt"
    assert sas.user_delegation_string_to_sign(fields, resource) == seen[0]
    assert sas_check(BLOB_URL, token) == "AuthenticationFailed"


def test_redact_blanks_only_the_signature() -> None:
    target = "/devstoreaccount1/ct/b?sv=2025-07-05&sig=abc%2Bdef%3D&sp=r"
    assert sas.redact(target) == "/devstoreaccount1/ct/b?sv=2025-07-05&sig=REDACTED&sp=r"
    assert sas.redact("/ct/b?sig=x") == "/ct/b?sig=REDACTED"
    assert sas.redact("/ct/b?comp=list") == "/ct/b?comp=list"


def test_sas_time_formats() -> None:
    assert sas.parse_sas_time("2030-01-02") == datetime(2030, 1, 2, tzinfo=UTC)
    assert sas.parse_sas_time("2030-01-02T03:04Z") == datetime(2030, 1, 2, 3, 4, tzinfo=UTC)
    assert sas.parse_sas_time("2030-01-02T03:04:05.1234567Z").microsecond == 123456
    assert sas.parse_sas_time("2030-01-02T05:04:05+02:00").hour == 3
    with pytest.raises(ValueError):
        sas.parse_sas_time("tomorrow")


# ---- authorize: scheme dispatch and anonymous access ----------------------------------------


def test_bearer_is_refused_until_enabled() -> None:
    view = view_for("GET", BLOB_URL, {"Authorization": "Bearer eyJ0eXAi", **base_headers()})
    with pytest.raises(StorageError) as info:
        authorize(view, ACCOUNT, access_for("GET", view.raw_path, view.query, True))
    assert info.value.code == "AuthenticationFailed"
    assert info.value.text == "Bearer tokens are not enabled on this server"


@pytest.mark.parametrize(
    ("allow", "method", "version", "code", "status"),
    [
        (True, "GET", X_MS_VERSION, "anonymous", None),
        (True, "HEAD", None, "anonymous", None),
        (True, "PUT", X_MS_VERSION, "NoAuthenticationInformation", 401),
        (False, "GET", X_MS_VERSION, "NoAuthenticationInformation", 401),
        (False, "GET", None, "ResourceNotFound", 404),
        (False, "GET", "2019-07-07", "ResourceNotFound", 404),
    ],
)
def test_anonymous(
    allow: bool, method: str, version: str | None, code: str, status: int | None
) -> None:
    account = Account(DEV_ACCOUNT, [DEV_KEY], allow_anonymous_read=allow)
    view = view_for(method, BLOB_URL, {"x-ms-version": version} if version else {})
    access = access_for(method, view.raw_path, view.query, True)
    try:
        assert authorize(view, account, access).scheme == code
    except StorageError as exc:
        assert (exc.code, exc.status) == (code, status)
        if status == 401:
            assert exc.headers["WWW-Authenticate"].startswith("Bearer authorization_uri=")


def test_keys_and_signatures_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = "http://127.0.0.1:10000/devstoreaccount1/ct/a"
    good = sdk_sign("GET", url, base_headers())
    bad = sdk_sign("GET", url, base_headers(), key=WRONG_KEY)
    token = generate_account_sas(DEV_ACCOUNT, DEV_KEY, "sco", "r", EXPIRY)
    bad_token = generate_account_sas(DEV_ACCOUNT, WRONG_KEY, "sco", "r", EXPIRY)
    assert check(view_for("GET", url, good)) == "sharedkey"
    assert check(view_for("GET", url, bad)) == "AuthenticationFailed"
    assert sas_check(url, token) == "sas"
    assert sas_check(url, bad_token) == "AuthenticationFailed"
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "mismatch" in text  # the failures were logged...
    secrets = [DEV_KEY, OTHER_KEY, WRONG_KEY]
    secrets += [h["Authorization"].rsplit(":", 1)[1] for h in (good, bad)]
    secrets += [token_fields(t)["sig"] for t in (token, bad_token)]
    for secret in secrets:  # ...without any key or signature
        assert secret not in text


# ---- AzCopy (Go SDK signer) ------------------------------------------------------------------


@pytest.mark.azcopy
def test_azcopy_shared_key_requests_verify(auth_app: AuthApp, tmp_path: Path) -> None:
    """AzCopy sends Shared Key (AZCOPY_CRED_TYPE=SharedKey) only to trusted host suffixes, so it
    addresses a virtual-host name and reaches the app through it as its HTTP proxy."""
    from harness.tools import azcopy_path

    source = tmp_path / "f.bin"
    source.write_bytes(b"x" * 1000)
    env = {
        **os.environ,
        "AZCOPY_CRED_TYPE": "SharedKey",
        "ACCOUNT_NAME": DEV_ACCOUNT,
        "ACCOUNT_KEY": DEV_KEY,
        "AZCOPY_LOG_LOCATION": str(tmp_path / "logs"),
        "AZCOPY_JOB_PLAN_LOCATION": str(tmp_path / "plans"),
        "HTTP_PROXY": f"http://127.0.0.1:{auth_app.port}",
        "NO_PROXY": "",
    }
    destination = f"http://{DEV_ACCOUNT}.blob.lab.test/ct/dir/f x.bin"
    subprocess.run(
        [str(azcopy_path()), "copy", str(source), destination, "--metadata=a1=x;a_1=y",
         "--trusted-microsoft-suffixes=lab.test", "--output-type=json"],
        env=env, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    # the app answers too little for the job to finish; what matters is every signature
    assert ("PUT", "sharedkey") in auth_app.outcomes
    assert {scheme for _, scheme in auth_app.outcomes} == {"sharedkey"}
    assert auth_app.paths[0] == "/ct/dir%2Ff%20x.bin"

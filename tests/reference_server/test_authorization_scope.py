"""Every route × every kind of SAS: the status and code Azure's SAS tables give, and nothing
touched when the SAS is refused.

The expectations are written here from Azure's tables ("Create an account SAS", "Create a
service SAS"), not read from ``reference_server.routing``, so a wrong row in the routing table
fails a case; and every route must have a row here, so a new route cannot skip the table.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from facade_raw import Raw

from harness.http import Response, block_list_xml
from reference_server import routing
from reference_server.auth.sas import generate_account_sas, generate_service_sas

FULL = "racwdl"
BLOB = "keep.txt"
BODY = b"keep me"
BLOCK_ID = base64.b64encode(b"block-0001").decode()


@dataclass
class Fixture:
    """A container with metadata, the blob under test and a copy source; what they looked like."""

    raw: Raw
    container: str
    new_container: str  # a name that must stay free unless Create Container is allowed
    source_url: str  # a copy source readable with its own SAS
    service_props: bytes
    container_etag: str = ""
    blob_etag: str = ""


Send = Callable[[Fixture, str], Response]


def _ct(method: str, **extra: str) -> Send:
    def send(fx: Fixture, sas: str) -> Response:
        headers = {"x-ms-meta-owner": "mallory"} if extra.get("comp") == "metadata" else {}
        query = {"restype": "container", **extra}
        return fx.raw.request(method, fx.container, query=query, headers=headers, sas=sas)

    return send


def _blob(
    method: str, body: bytes = b"", headers: dict[str, str] | None = None, **query: str
) -> Send:
    def send(fx: Fixture, sas: str) -> Response:
        hdrs = dict(headers or {})
        if "x-ms-copy-source" in hdrs:
            hdrs["x-ms-copy-source"] = fx.source_url
        return fx.raw.request(
            method, fx.container, BLOB, body=body, query=query or None, headers=hdrs, sas=sas
        )

    return send


def _service(method: str, **query: str) -> Send:
    def send(fx: Fixture, sas: str) -> Response:
        body = fx.service_props if method == "PUT" else b""
        return fx.raw.request(method, query=query, body=body, sas=sas)

    return send


def _create_container(fx: Fixture, sas: str) -> Response:
    return fx.raw.request("PUT", fx.new_container, query={"restype": "container"}, sas=sas)


def _account_info(method: str) -> Send:
    def send(fx: Fixture, sas: str) -> Response:
        query = {"restype": "account", "comp": "properties"}
        return fx.raw.request(method, fx.container, query=query, sas=sas)

    return send


@dataclass(frozen=True)
class Op:
    level: str  # "service", "container", "blob": the resource the request addresses
    srt: str  # account SAS resource types Azure accepts (any one)
    sp: str  # SAS permissions Azure accepts (any one); "" = any
    sr: tuple[str, ...]  # service SAS signed resources Azure accepts
    send: Send
    new_container: bool = False  # addresses Fixture.new_container (service SAS signed for it)
    bearer_only: bool = False  # OAuth only (Get User Delegation Key): no SAS is ever enough


COPY = {"x-ms-copy-source": "<source>"}
BLOCK_BLOB = {"x-ms-blob-type": "BlockBlob"}
OBJ = ("c", "b")
# (method, restype, comp, handler) -> what Azure's tables say; the blob operations act on BLOB.
TABLE: dict[tuple[str, str | None, str | None, str], Op] = {
    ("GET", "account", "properties", "get_account_info"): Op(
        "container", "sco", "", OBJ, _account_info("GET")
    ),
    ("HEAD", "account", "properties", "get_account_info"): Op(
        "container", "sco", "", OBJ, _account_info("HEAD")
    ),
    ("GET", None, "list", "list_containers"): Op(
        "service", "s", "l", (), _service("GET", comp="list")
    ),
    ("GET", "service", "properties", "get_service_properties"): Op(
        "service", "s", "r", (), _service("GET", restype="service", comp="properties")
    ),
    ("PUT", "service", "properties", "set_service_properties"): Op(
        "service", "s", "w", (), _service("PUT", restype="service", comp="properties")
    ),
    ("POST", "service", "userdelegationkey", "get_user_delegation_key"): Op(
        "service",
        "s",
        "",
        (),
        _service("POST", restype="service", comp="userdelegationkey"),
        bearer_only=True,
    ),
    ("PUT", "container", None, "create_container"): Op(
        "container", "c", "cw", (), _create_container, True
    ),
    ("DELETE", "container", None, "delete_container"): Op("container", "c", "d", (), _ct("DELETE")),
    ("GET", "container", None, "get_container_properties"): Op(
        "container", "c", "r", (), _ct("GET")
    ),
    ("HEAD", "container", None, "get_container_properties"): Op(
        "container", "c", "r", (), _ct("HEAD")
    ),
    ("GET", "container", "metadata", "get_container_properties"): Op(
        "container", "c", "r", (), _ct("GET", comp="metadata")
    ),
    ("HEAD", "container", "metadata", "get_container_properties"): Op(
        "container", "c", "r", (), _ct("HEAD", comp="metadata")
    ),
    ("PUT", "container", "metadata", "set_container_metadata"): Op(
        "container", "c", "w", (), _ct("PUT", comp="metadata")
    ),
    ("GET", "container", "list", "list_blobs"): Op(
        "container", "c", "l", ("c",), _ct("GET", comp="list")
    ),
    ("PUT", None, "block", "put_block_from_url"): Op(
        "blob", "o", "w", OBJ, _blob("PUT", headers=COPY, comp="block", blockid=BLOCK_ID)
    ),
    ("PUT", None, None, "put_blob_from_url"): Op(
        "blob", "o", "cw", OBJ, _blob("PUT", headers={**COPY, **BLOCK_BLOB})
    ),
    ("PUT", None, None, "copy_blob"): Op(
        "blob", "o", "cw", OBJ, _blob("PUT", headers={**COPY, "x-ms-requires-sync": "true"})
    ),
    ("PUT", None, "copy", "abort_copy"): Op(
        "blob",
        "o",
        "w",
        OBJ,
        _blob("PUT", headers={"x-ms-copy-action": "abort"}, comp="copy", copyid=str(uuid.uuid4())),
    ),
    ("PUT", None, None, "put_blob"): Op(
        "blob", "o", "cw", OBJ, _blob("PUT", b"overwritten", BLOCK_BLOB)
    ),
    ("GET", None, None, "get_blob"): Op("blob", "o", "r", OBJ, _blob("GET")),
    ("HEAD", None, None, "get_blob_properties"): Op("blob", "o", "r", OBJ, _blob("HEAD")),
    ("PUT", None, "properties", "set_blob_properties"): Op(
        "blob",
        "o",
        "w",
        OBJ,
        _blob("PUT", headers={"x-ms-blob-content-type": "text/x-evil"}, comp="properties"),
    ),
    ("GET", None, "metadata", "get_blob_metadata"): Op(
        "blob", "o", "r", OBJ, _blob("GET", comp="metadata")
    ),
    ("HEAD", None, "metadata", "get_blob_metadata"): Op(
        "blob", "o", "r", OBJ, _blob("HEAD", comp="metadata")
    ),
    ("PUT", None, "metadata", "set_blob_metadata"): Op(
        "blob", "o", "w", OBJ, _blob("PUT", headers={"x-ms-meta-evil": "1"}, comp="metadata")
    ),
    ("DELETE", None, None, "delete_blob"): Op("blob", "o", "d", OBJ, _blob("DELETE")),
    ("PUT", None, "block", "put_block"): Op(
        "blob", "o", "w", OBJ, _blob("PUT", b"staged", comp="block", blockid=BLOCK_ID)
    ),
    # c commits a new blob only (Put Block List creating a blob); overwriting needs w
    ("PUT", None, "blocklist", "put_block_list"): Op(
        "blob", "o", "cw", OBJ, _blob("PUT", block_list_xml(["bm90LXN0YWdlZA=="]), comp="blocklist")
    ),
    ("GET", None, "blocklist", "get_block_list"): Op(
        "blob", "o", "r", OBJ, _blob("GET", comp="blocklist")
    ),
}


def _route_key(route: routing.Route) -> tuple[str, str | None, str | None, str]:
    return (route.method, route.restype, route.comp, route.handler.__name__)


def test_every_route_has_a_row() -> None:
    assert {_route_key(r) for r in routing.ROUTES} == set(TABLE)


def _expiry() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


def _account_sas(raw: Raw, srt: str, sp: str) -> str:
    return generate_account_sas(
        raw.account, raw.key, resource_types=srt, permissions=sp, expiry=_expiry()
    )


def _without(letters: str, removed: str) -> str:
    return "".join(c for c in letters if c not in removed)


# SAS kind -> (make the SAS, expected outcome: "ok" or the 403 code), or None: not applicable
Kind = Callable[[Op, Fixture], tuple[str, str] | None]


def _account_full(op: Op, fx: Fixture) -> tuple[str, str]:
    return _account_sas(fx.raw, "sco", FULL), "ok"


def _account_wrong_srt(op: Op, fx: Fixture) -> tuple[str, str] | None:
    srt = _without("sco", op.srt)
    return (_account_sas(fx.raw, srt, FULL), "AuthorizationResourceTypeMismatch") if srt else None


def _account_wrong_sp(op: Op, fx: Fixture) -> tuple[str, str] | None:
    if not op.sp:
        return None
    return _account_sas(fx.raw, "sco", _without(FULL, op.sp)), "AuthorizationPermissionMismatch"


def _service_sas(op: Op, fx: Fixture, blob: str | None, sp: str) -> str:
    container = fx.new_container if op.new_container else fx.container
    return generate_service_sas(
        fx.raw.account, fx.raw.key, container=container, blob=blob, permissions=sp,
        expiry=_expiry(),
    )  # fmt: skip


def _container_sas(op: Op, fx: Fixture) -> tuple[str, str]:
    if "c" in op.sr:
        expected = "ok"
    elif op.level == "service":
        expected = "AuthenticationFailed"  # signed resource not allowed for this resource level
    else:
        expected = "AuthorizationFailure"  # the container itself: account SAS only
    return _service_sas(op, fx, None, FULL), expected


def _container_sas_wrong_sp(op: Op, fx: Fixture) -> tuple[str, str] | None:
    if "c" not in op.sr or not op.sp:
        return None
    return _service_sas(op, fx, None, _without(FULL, op.sp)), "AuthorizationPermissionMismatch"


def _blob_sas(op: Op, fx: Fixture) -> tuple[str, str]:
    expected = "ok" if op.level == "blob" and "b" in op.sr else "AuthenticationFailed"
    return _service_sas(op, fx, BLOB, FULL), expected


KINDS: dict[str, Kind] = {
    "account": _account_full,
    "account-wrong-srt": _account_wrong_srt,
    "account-wrong-sp": _account_wrong_sp,
    "container-sas": _container_sas,
    "container-sas-wrong-sp": _container_sas_wrong_sp,
    "blob-sas": _blob_sas,
}


@pytest.fixture
def fx(raw: Raw) -> Fixture:
    ct = raw.create_container()
    r = raw.request("PUT", ct, query={"restype": "container", "comp": "metadata"},
                    headers={"x-ms-meta-owner": "lab"})  # fmt: skip
    assert r.status == 200, r.body
    assert raw.put_blob(ct, BLOB, BODY).status == 201
    assert raw.put_blob(ct, "src.txt", b"source bytes").status == 201
    props = raw.request("GET", query={"restype": "service", "comp": "properties"})
    assert props.status == 200, props.body
    source_sas = _account_sas(raw, "o", "r")
    source_url = f"{raw.url(raw.path(ct, 'src.txt'))}?{source_sas}"
    fixture = Fixture(raw, ct, f"new-{uuid.uuid4().hex[:12]}", source_url, props.body)
    fixture.container_etag = raw.request("HEAD", ct, query={"restype": "container"}).header("etag")
    fixture.blob_etag = raw.request("HEAD", ct, BLOB).header("etag") or ""
    return fixture


def assert_untouched(fx: Fixture) -> None:
    raw, ct = fx.raw, fx.container
    head = raw.request("HEAD", ct, query={"restype": "container"})
    assert head.status == 200, "container gone"
    assert head.header("x-ms-meta-owner") == "lab"
    assert head.header("etag") == fx.container_etag
    blob = raw.request("GET", ct, BLOB)
    assert (blob.status, blob.body, blob.header("etag")) == (200, BODY, fx.blob_etag)
    assert blob.header("content-type") != "text/x-evil"
    assert blob.header("x-ms-meta-evil") is None
    blocks = raw.request("GET", ct, BLOB, query={"comp": "blocklist", "blocklisttype": "all"})
    assert blocks.status == 200
    uncommitted = blocks.xml().find("UncommittedBlocks")
    assert uncommitted is None or len(uncommitted) == 0, "a block was staged"
    assert raw.request("HEAD", fx.new_container, query={"restype": "container"}).status == 404


# the SAS kinds that exist for an operation (no srt to leave out when any one will do, ...)
APPLIES: dict[str, Callable[[Op], bool]] = {
    "account-wrong-srt": lambda op: bool(_without("sco", op.srt)),
    "account-wrong-sp": lambda op: bool(op.sp),
    "container-sas-wrong-sp": lambda op: "c" in op.sr and bool(op.sp),
}
CASES = [(key, kind) for key in TABLE for kind in KINDS if APPLIES.get(kind, bool)(TABLE[key])]


@pytest.mark.parametrize(
    ("key", "kind"), CASES, ids=[f"{k[0]}-{k[3]}-{k[2] or k[1] or ''}-{kind}" for k, kind in CASES]
)
def test_sas_scope(fx: Fixture, key: tuple, kind: str) -> None:
    op = TABLE[key]
    made = KINDS[kind](op, fx)
    assert made is not None
    sas, expected = made
    if op.bearer_only and expected == "ok":
        expected = "AuthenticationFailed"  # a SAS that passes still is not a bearer token
    resp = op.send(fx, sas)
    if expected == "ok":
        assert resp.status not in (401, 403), (resp.status, resp.error_code, resp.body)
    else:
        assert (resp.status, resp.error_code) == (403, expected), resp.body
        assert_untouched(fx)
    fx.raw.request("DELETE", fx.new_container, query={"restype": "container"})


def test_account_info_answers_any_account_sas(fx: Fixture) -> None:
    """Azure answers Get Account Information on a container URL to srt=co&sp=wd (it reveals only
    the SKU and kind); AzCopy calls it before a service-to-service copy."""
    sas = _account_sas(fx.raw, "co", "wd")
    resp = _account_info("HEAD")(fx, sas)
    assert resp.status == 200, resp.error_code
    assert resp.header("x-ms-account-kind") and resp.header("x-ms-sku-name")


def test_account_sas_with_write_creates_a_container(fx: Fixture) -> None:
    """Azure's table: Create Container takes Create or Write on the container resource type."""
    resp = _create_container(fx, _account_sas(fx.raw, "c", "w"))
    assert resp.status == 201, resp.error_code
    fx.raw.request("DELETE", fx.new_container, query={"restype": "container"})

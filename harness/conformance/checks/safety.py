"""Data safety: no request may act on more than its credentials name, or on a feature the façade
does not have. A service SAS never acts on its container itself; a snapshot, version or lease in
a request is honoured or refused, never ignored; a Shared Key signature names one resource.

Each check ends by looking at what the refused request could have destroyed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from harness.conformance.framework import CheckContext, body_evidence, check, register_cases
from harness.http import Response
from harness.signing import generate_account_sas, generate_service_sas

SAS_SCOPE = "SAS scope"
UNSUPPORTED = "Snapshots, versions, leases"
SK_RESOURCE = "Shared Key resource"

BODY = b"must survive"
BLOB = "keep.txt"
SNAPSHOT = "2026-01-01T00:00:00.0000000Z"
LEASE_ID = "11111111-2222-3333-4444-555555555555"
# the codes Azure uses to refuse an authenticated SAS that does not reach an operation
AUTHORIZATION_CODES = (
    "AuthorizationFailure",
    "AuthorizationPermissionMismatch",
    "AuthorizationResourceTypeMismatch",
    "AuthenticationFailed",
)


def _expiry() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


def _fixture(ctx: CheckContext) -> str:
    ct = ctx.container("safe", **{"x-ms-meta-owner": "lab"})
    ctx.put_blob(ct, BLOB, BODY)
    return ct


def _container_sas(ctx: CheckContext, container: str, permissions: str = "racwdl") -> str:
    return generate_service_sas(
        ctx.account, ctx.key, container=container, blob=None, permissions=permissions,
        expiry=_expiry(),
    )  # fmt: skip


def _expect_refused_403(ctx: CheckContext, resp: Response) -> None:
    ctx.expect_true(
        "refused",
        resp.status == 403 and resp.error_code in AUTHORIZATION_CODES,
        f"403 {' | '.join(AUTHORIZATION_CODES)}",
        f"{resp.status} {resp.error_code}",
    )


def _expect_4xx(ctx: CheckContext, resp: Response) -> None:
    ctx.expect_true(
        "refused with a code",
        400 <= resp.status < 500 and bool(resp.error_code),
        "4xx + x-ms-error-code",
        f"{resp.status} {resp.error_code}",
    )


def _expect_intact(ctx: CheckContext, ct: str, metadata: bool = True) -> None:
    head = ctx.head(ct)
    ctx.expect("container still there", 200, head.status)
    if metadata:
        ctx.expect("container metadata", "lab", head.header("x-ms-meta-owner"))
    got = ctx.get(ct, BLOB)
    ctx.expect("blob still there", (200, BODY), (got.status, got.body))


# ---- a service SAS and the container it is scoped to -----------------------------------------


def _sas_delete_container(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    resp = ctx.http.request(
        "DELETE", ct, query={"restype": "container"}, sas=_container_sas(ctx, ct)
    )
    _expect_refused_403(ctx, resp)
    _expect_intact(ctx, ct)


def _sas_create_container(ctx: CheckContext) -> None:
    name = ctx.name("sas-new")
    resp = ctx.http.request(
        "PUT", name, query={"restype": "container"}, sas=_container_sas(ctx, name, "c")
    )
    if resp.status == 201:
        ctx.containers.append(name)  # cleaned up even though it should not exist
    _expect_refused_403(ctx, resp)
    ctx.expect("container not created", 404, ctx.head(name).status)


def _sas_set_metadata(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    resp = ctx.http.request(
        "PUT",
        ct,
        query={"restype": "container", "comp": "metadata"},
        headers={"x-ms-meta-owner": "mallory"},
        sas=_container_sas(ctx, ct),
    )
    _expect_refused_403(ctx, resp)
    _expect_intact(ctx, ct)


def _sas_container_properties(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    resp = ctx.http.request("GET", ct, query={"restype": "container"}, sas=_container_sas(ctx, ct))
    _expect_refused_403(ctx, resp)


def _sas_list_containers(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    resp = ctx.http.request("GET", query={"comp": "list"}, sas=_container_sas(ctx, ct))
    _expect_refused_403(ctx, resp)
    ctx.expect_true(
        "no listing",
        ct.encode() not in resp.body,
        "no container names",
        body_evidence(resp, ct.encode()),
    )


def _sas_blob_lists(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    sas = generate_service_sas(
        ctx.account, ctx.key, container=ct, blob=BLOB, permissions="racwdl", expiry=_expiry()
    )
    resp = ctx.http.request("GET", ct, query={"restype": "container", "comp": "list"}, sas=sas)
    _expect_refused_403(ctx, resp)


def _sas_still_deletes_blobs(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    resp = ctx.http.request("DELETE", ct, BLOB, sas=_container_sas(ctx, ct, "d"))
    ctx.expect_status(resp, 202)
    ctx.expect("blob deleted", 404, ctx.head(ct, BLOB).status)


def _account_sas_deletes_container(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    sas = generate_account_sas(
        ctx.account, ctx.key, resource_types="c", permissions="d", expiry=_expiry()
    )
    resp = ctx.http.request("DELETE", ct, query={"restype": "container"}, sas=sas)
    ctx.expect_status(resp, 202)


register_cases(
    "sas-scope",
    SAS_SCOPE,
    [
        (
            "container-sas.delete-container",
            "a container SAS (sr=c, sp=racwdl) cannot delete its container -> 403, all intact",
            _sas_delete_container,
        ),
        (
            "container-sas.create-container",
            "a container SAS (sr=c, sp=c) cannot create its container -> 403, none created",
            _sas_create_container,
        ),
        (
            "container-sas.set-metadata",
            "a container SAS cannot set its container's metadata -> 403, metadata unchanged",
            _sas_set_metadata,
        ),
        (
            "container-sas.get-properties",
            "a container SAS cannot read its container's properties -> 403",
            _sas_container_properties,
        ),
        (
            "container-sas.list-containers",
            "a container SAS cannot list the account's containers -> 403",
            _sas_list_containers,
        ),
        (
            "blob-sas.list-blobs",
            "a blob SAS (sr=b) cannot list its container -> 403",
            _sas_blob_lists,
        ),
        (
            "container-sas.delete-blob",
            "a container SAS with d still deletes a blob in it -> 202",
            _sas_still_deletes_blobs,
        ),
        (
            "account-sas.delete-container",
            "an account SAS (srt=c, sp=d) deletes a container -> 202",
            _account_sas_deletes_container,
        ),
    ],
)


# ---- snapshots and versions ------------------------------------------------------------------


def _versioned(
    method: str, param: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> Callable[[CheckContext], None]:
    """A request naming a snapshot or version that does not exist: a 4xx with a code (refused,
    or not found), never an answer from or a change to the base blob."""

    def run(ctx: CheckContext) -> None:
        ct = _fixture(ctx)
        resp = ctx.http.request(
            method, ct, BLOB, query={param: SNAPSHOT}, headers=headers or {}, body=body
        )
        _expect_4xx(ctx, resp)
        ctx.expect_true(
            "base blob not served",
            BODY not in resp.body,
            "no blob bytes",
            body_evidence(resp, BODY),
        )
        _expect_intact(ctx, ct)

    return run


def _snapshot_sas_delete(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    sas = generate_service_sas(
        ctx.account, ctx.key, container=ct, blob=BLOB, permissions="rd", expiry=_expiry(),
        snapshot=SNAPSHOT,
    )  # fmt: skip
    for query in ({"snapshot": SNAPSHOT}, None):  # as clients send it, then on the base blob
        resp = ctx.http.request("DELETE", ct, BLOB, query=query, sas=sas)
        _expect_4xx(ctx, resp)
    _expect_intact(ctx, ct)


def _delete_snapshots_only(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    resp = ctx.http.request("DELETE", ct, BLOB, headers={"x-ms-delete-snapshots": "only"})
    ctx.expect_true(
        "answered", resp.status < 300 or bool(resp.error_code), "2xx or a code", resp.status
    )
    _expect_intact(ctx, ct)


BLOCK = {"x-ms-blob-type": "BlockBlob"}
register_cases(
    "unsupported",
    UNSUPPORTED,
    [
        (
            "snapshot.get",
            "GET ?snapshot=T -> 4xx, not the base blob",
            _versioned("GET", "snapshot"),
        ),
        (
            "snapshot.delete",
            "DELETE ?snapshot=T -> 4xx, the base blob survives",
            _versioned("DELETE", "snapshot"),
        ),
        (
            "snapshot.put",
            "Put Blob ?snapshot=T -> 4xx, the base blob unchanged",
            _versioned("PUT", "snapshot", b"overwritten", BLOCK),
        ),
        (
            "versionid.get",
            "GET ?versionid=V -> 4xx, not the base blob",
            _versioned("GET", "versionid"),
        ),
        (
            "versionid.delete",
            "DELETE ?versionid=V -> 4xx, the base blob survives",
            _versioned("DELETE", "versionid"),
        ),
        (
            "snapshot-sas.delete",
            "a snapshot SAS (sr=bs) cannot delete the base blob -> 4xx",
            _snapshot_sas_delete,
        ),
        (
            "delete-snapshots-only",
            "DELETE with x-ms-delete-snapshots: only keeps the base blob",
            _delete_snapshots_only,
        ),
    ],
)


# ---- leases ----------------------------------------------------------------------------------


def _lease_id(method: str, body: bytes = b"", headers: dict[str, str] | None = None):
    """x-ms-lease-id on a blob that has no lease: 412 LeaseNotPresentWithBlobOperation."""

    def run(ctx: CheckContext) -> None:
        ct = _fixture(ctx)
        hdrs = {**(headers or {}), "x-ms-lease-id": LEASE_ID}
        resp = ctx.http.request(method, ct, BLOB, headers=hdrs, body=body)
        ctx.expect_error(resp, 412, "LeaseNotPresentWithBlobOperation")
        _expect_intact(ctx, ct)

    return run


@check(
    "unsupported.lease.acquire",
    UNSUPPORTED,
    "Lease Blob acquire is refused with a 4xx code, or the lease is real (a write without it 412)",
)
def _lease_acquire(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    lease = {"x-ms-lease-action": "acquire", "x-ms-lease-duration": "15"}
    resp = ctx.http.request("PUT", ct, BLOB, query={"comp": "lease"}, headers=lease)
    if resp.status >= 400:
        _expect_4xx(ctx, resp)
        _expect_intact(ctx, ct)
        return
    ctx.expect_status(resp, 201, "lease acquired")
    try:
        write = ctx.http.request("PUT", ct, BLOB, body=b"no lease id", headers=BLOCK)
        ctx.expect_status(write, 412, "write without the lease id")
        _expect_intact(ctx, ct)
    finally:
        brk = {"x-ms-lease-action": "break", "x-ms-lease-break-period": "0"}
        ctx.http.request("PUT", ct, BLOB, query={"comp": "lease"}, headers=brk)


register_cases(
    "unsupported.lease-id",
    UNSUPPORTED,
    [
        (
            "put-blob",
            "Put Blob with x-ms-lease-id on an unleased blob -> 412, unchanged",
            _lease_id("PUT", b"overwritten", BLOCK),
        ),
        (
            "delete",
            "Delete Blob with x-ms-lease-id on an unleased blob -> 412, it survives",
            _lease_id("DELETE"),
        ),
    ],
)


# ---- Shared Key names one resource -------------------------------------------------------------


def _twins(ctx: CheckContext) -> tuple[str, str]:
    """Blob ``x/y.txt`` of a fresh container, and ``<that container>/x/y.txt`` of a container
    named like the account: what one path-style path could name in two addressing styles."""
    if not ctx.http.base_path:
        ctx.skip("the endpoint is virtual-host style")
    ct = ctx.container("sk")
    ctx.put_blob(ct, "x/y.txt", BODY)
    resp = ctx.http.request("PUT", ctx.account, query={"restype": "container"})
    if resp.status == 201:
        ctx.containers.append(ctx.account)
    elif resp.error_code != "ContainerAlreadyExists":
        ctx.skip(f"cannot create a container named {ctx.account}: {resp.status}")
    twin = f"{ct}/x/y.txt"
    ctx.put_blob(ctx.account, twin, BODY)
    return ct, twin


def _both_intact(ctx: CheckContext, ct: str, twin: str) -> None:
    ctx.expect("signed blob intact", BODY, ctx.get(ct, "x/y.txt").body)
    ctx.expect("twin blob intact", BODY, ctx.get(ctx.account, twin).body)


def _cleanup_twin(ctx: CheckContext, twin: str) -> None:
    ctx.http.request("DELETE", ctx.account, twin)


@check(
    "shared-key.doubled-account-path",
    SK_RESOURCE,
    "a Delete signed for /acct/ct/x replayed on /acct/acct/ct/x -> 403, nothing deleted",
)
def _sk_doubled(ctx: CheckContext) -> None:
    ct, twin = _twins(ctx)
    try:
        signed = ctx.http.prepare("DELETE", ct, "x/y.txt")
        doubled = f"/{ctx.account}{signed.target}"
        resp = ctx.http.request("DELETE", raw_path=doubled, headers=signed.headers, sign=False)
        ctx.expect_error(resp, 403, "AuthenticationFailed")
        _both_intact(ctx, ct, twin)
    finally:
        _cleanup_twin(ctx, twin)


@check(
    "shared-key.virtual-host-replay",
    SK_RESOURCE,
    "a path-style Delete replayed with Host: <acct>.blob.localhost never deletes the other blob",
)
def _sk_vhost(ctx: CheckContext) -> None:
    ct, twin = _twins(ctx)
    try:
        signed = ctx.http.prepare("DELETE", ct, "x/y.txt")
        port = ctx.http.netloc.rpartition(":")[2]
        host = f"{ctx.account}.blob.localhost:{port}"
        resp = ctx.http.request(
            "DELETE", raw_path=signed.target, headers=signed.headers, host=host, sign=False
        )
        ctx.expect("twin blob intact", BODY, ctx.get(ctx.account, twin).body)
        if resp.status == 403:
            ctx.expect_error(resp, 403, "AuthenticationFailed")
            ctx.expect("signed blob intact", BODY, ctx.get(ct, "x/y.txt").body)
        else:  # the Host was ignored: the path-style request was served as signed
            ctx.expect_status(resp, 202, "403, or 202 on the signed blob")
            ctx.expect("signed blob deleted", 404, ctx.head(ct, "x/y.txt").status)
    finally:
        _cleanup_twin(ctx, twin)

"""Authentication and authorization: Shared Key failures, clock skew, account and service SAS."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from harness.conformance.framework import CheckContext, check, http_date, register_cases
from harness.http import Response
from harness.signing import generate_account_sas, generate_service_sas

SHARED_KEY = "Auth Shared Key"
ACCOUNT_SAS = "Auth Account SAS"
SERVICE_SAS = "Auth Service SAS"

WRONG_KEY = base64.b64encode(b"not the account key, 64 bytes long.............................")


def _now() -> datetime:
    return datetime.now(UTC)


def _fixture(ctx: CheckContext) -> str:
    ct = ctx.container()
    ctx.put_blob(ct, "secret", b"payload")
    return ct


def _expect_denied(ctx: CheckContext, resp, code: str | None = None) -> None:
    if code:
        ctx.expect_error(resp, 403, code)
    else:
        ctx.expect_status(resp, 403)
    ctx.expect_no_leak(resp, b"payload")


# ---- Shared Key ----------------------------------------------------------------------------


@check("shared-key.valid", SHARED_KEY, "a correctly signed request -> 200")
def _sk_valid(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    ctx.expect(
        "status / body",
        (200, b"payload"),
        (ctx.get(ct, "secret").status, ctx.get(ct, "secret").body),
    )


@check(
    "shared-key.bad-signature", SHARED_KEY, "signed with a wrong key -> 403 AuthenticationFailed"
)
def _sk_bad(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    headers = ctx.http.prepare("GET", ct, "secret", key=WRONG_KEY.decode()).headers
    resp = ctx.http.request("GET", ct, "secret", headers=headers, sign=False)
    _expect_denied(ctx, resp, "AuthenticationFailed")


@check(
    "shared-key.tampered-header",
    SHARED_KEY,
    "a signed x-ms- header changed after signing -> 403 AuthenticationFailed",
)
def _sk_tampered(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    signed = ctx.http.prepare("GET", ct, "secret", headers={"x-ms-client-request-id": "one"})
    headers = {**signed.headers, "x-ms-client-request-id": "two"}
    resp = ctx.http.request("GET", ct, "secret", headers=headers, sign=False)
    _expect_denied(ctx, resp, "AuthenticationFailed")


@check(
    "shared-key.tampered-path",
    SHARED_KEY,
    "a signature for another blob -> 403 AuthenticationFailed",
)
def _sk_path(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    headers = ctx.http.prepare("GET", ct, "other").headers
    resp = ctx.http.request("GET", ct, "secret", headers=headers, sign=False)
    _expect_denied(ctx, resp, "AuthenticationFailed")


@check("shared-key.malformed", SHARED_KEY, "a malformed Authorization header -> 403")
def _sk_malformed(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    resp = ctx.http.request(
        "GET", ct, "secret", sign=False, headers={"Authorization": "SharedKey garbage"}
    )
    _expect_denied(ctx, resp)


@check(
    "shared-key.anonymous",
    SHARED_KEY,
    "no credentials on a private container -> 401, 403 or 404 with a code, never the bytes",
)
def _sk_anon(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    resp = ctx.http.request("GET", ct, "secret", sign=False)
    ctx.expect_true("status", resp.status in (401, 403, 404), "401, 403 or 404", resp.status)
    ctx.expect_no_leak(resp, b"payload")


def _skewed(offset_s: float) -> Callable[[CheckContext], None]:
    def run(ctx: CheckContext) -> None:
        ct = _fixture(ctx)
        resp = ctx.http.request("GET", ct, "secret", date=http_date(offset_s))
        _expect_denied(ctx, resp, "AuthenticationFailed")

    return run


register_cases(
    "shared-key.clock-skew",
    SHARED_KEY,
    [
        ("past", "x-ms-date 20 minutes in the past -> 403 AuthenticationFailed", _skewed(-1200)),
        ("future", "x-ms-date 20 minutes in the future -> 403 AuthenticationFailed", _skewed(1200)),
    ],
)


@check("shared-key.small-skew", SHARED_KEY, "x-ms-date 5 minutes off is accepted")
def _sk_small_skew(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    ctx.expect_status(ctx.http.request("GET", ct, "secret", date=http_date(-300)), 200)


@check(
    "shared-key.date-header", SHARED_KEY, "a standard Date header instead of x-ms-date is accepted"
)
def _sk_date(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    resp = ctx.http.request("GET", ct, "secret", headers={"x-ms-date": None, "Date": http_date()})
    ctx.expect_status(resp, 200)


@check(
    "shared-key.query-canonicalisation",
    SHARED_KEY,
    "a signed listing with several encoded query parameters -> 200",
)
def _sk_query(ctx: CheckContext) -> None:
    ct = ctx.container()
    ctx.put_blob(ct, "a b/c+d%", b"x")
    resp = ctx.list_blobs(ct, prefix="a b/c+d%", include="metadata", delimiter="/", maxresults="5")
    ctx.expect_status(resp, 200)
    ctx.expect("names", ["a b/c+d%"], [b.findtext("Name") for b in resp.xml().iter("Blob")])


@check(
    "shared-key.header-canonicalisation",
    SHARED_KEY,
    "mixed-case x-ms-meta headers and values with spaces sign correctly -> 201",
)
def _sk_headers(ctx: CheckContext) -> None:
    ct = ctx.container()
    resp = ctx.http.request(
        "PUT",
        ct,
        "b",
        body=b"x",
        headers={
            "x-ms-blob-type": "BlockBlob",
            "X-Ms-Meta-Upper": "Some  Value",
            "x-ms-meta-a": "b",
        },
    )
    ctx.expect_status(resp, 201)


# ---- SAS: one table per kind, each row a check ----------------------------------------------

LIST = {"restype": "container", "comp": "list"}
BLOCK_BLOB = {"x-ms-blob-type": "BlockBlob"}

MakeSas = Callable[[CheckContext, str], str]  # (ctx, container) -> SAS query string
UseSas = Callable[[CheckContext, str, str], Response]  # (ctx, container, sas) -> response


def _sas_get(ctx: CheckContext, ct: str, sas: str, blob: str = "secret") -> Response:
    return ctx.http.request("GET", ct, blob, sas=sas)


def _sas_list(ctx: CheckContext, ct: str, sas: str) -> Response:
    return ctx.http.request("GET", ct, query=LIST, sas=sas)


def _sas_delete(ctx: CheckContext, ct: str, sas: str) -> Response:
    return ctx.http.request("DELETE", ct, "secret", sas=sas)


def _sas_put(blob: str) -> UseSas:
    def use(ctx: CheckContext, ct: str, sas: str) -> Response:
        return ctx.http.request("PUT", ct, blob, body=b"x", headers=BLOCK_BLOB, sas=sas)

    return use


def _sas_case(use: UseSas, make_sas: MakeSas, expect: int | str) -> Callable[[CheckContext], None]:
    """Use a SAS on the fixture container; ``expect`` is a status, or the code of a 403."""

    def run(ctx: CheckContext) -> None:
        ct = _fixture(ctx)
        resp = use(ctx, ct, make_sas(ctx, ct))
        if isinstance(expect, int):
            ctx.expect_status(resp, expect)
        else:
            _expect_denied(ctx, resp, expect)

    return run


def _account_sas(ctx: CheckContext, **overrides: Any) -> str:
    args = {
        "services": "b",
        "resource_types": "sco",
        "permissions": "rwdlac",
        "expiry": _now() + timedelta(hours=1),
    }
    args.update(overrides)
    return generate_account_sas(ctx.account, ctx.key, **args)


def _acct(**overrides: Any) -> MakeSas:
    return lambda ctx, ct: _account_sas(ctx, **overrides)


def _expired(make: Callable[..., MakeSas], *args: Any) -> MakeSas:
    """A SAS that expired five minutes ago (times taken when the check runs)."""
    return lambda ctx, ct: make(
        *args, expiry=_now() - timedelta(minutes=5), start=_now() - timedelta(hours=1)
    )(ctx, ct)


def _as_read(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    resp = _sas_get(ctx, ct, _account_sas(ctx))
    ctx.expect("status / body", (200, b"payload"), (resp.status, resp.body))


def _as_future(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    sas = _account_sas(ctx, start=_now() + timedelta(hours=1), expiry=_now() + timedelta(hours=2))
    _expect_denied(ctx, _sas_get(ctx, ct, sas), "AuthenticationFailed")


def _as_delete(ctx: CheckContext) -> None:
    _sas_case(_sas_delete, _acct(permissions="rwl"), "AuthorizationPermissionMismatch")(ctx)
    ctx.expect_status(ctx.head(ctx.containers[-1], "secret"), 200, "blob still there")


def _as_tampered(ctx: CheckContext, ct: str) -> str:
    return _account_sas(ctx, permissions="r").replace("sp=r", "sp=rwd")


def _as_proto(ctx: CheckContext) -> None:
    if ctx.http.scheme != "http":
        ctx.skip("the endpoint speaks https")
    _sas_case(_sas_get, _acct(protocol="https"), "AuthorizationProtocolMismatch")(ctx)


register_cases(
    "account-sas",
    ACCOUNT_SAS,
    [
        ("read", "a valid account SAS reads a blob -> 200", _as_read),
        (
            "list",
            "a valid account SAS lists a container -> 200",
            _sas_case(_sas_list, _acct(), 200),
        ),
        (
            "write",
            "a valid account SAS with w uploads -> 201",
            _sas_case(_sas_put("new"), _acct(), 201),
        ),
        (
            "expired",
            "an expired account SAS -> 403 AuthenticationFailed",
            _sas_case(_sas_get, _expired(_acct), "AuthenticationFailed"),
        ),
        ("not-yet-valid", "a start time in the future -> 403 AuthenticationFailed", _as_future),
        (
            "missing-permission",
            "a read-only SAS used to write -> 403 AuthorizationPermissionMismatch",
            _sas_case(_sas_put("new"), _acct(permissions="rl"), "AuthorizationPermissionMismatch"),
        ),
        (
            "missing-delete",
            "a SAS without d used to delete -> 403 AuthorizationPermissionMismatch",
            _as_delete,
        ),
        (
            "wrong-resource-type",
            "srt=s (service only) used on a blob -> 403 AuthorizationResourceTypeMismatch",
            _sas_case(_sas_get, _acct(resource_types="s"), "AuthorizationResourceTypeMismatch"),
        ),
        (
            "wrong-resource-type-container",
            "srt=o (objects only) used to list a container -> 403 "
            "AuthorizationResourceTypeMismatch",
            _sas_case(_sas_list, _acct(resource_types="o"), "AuthorizationResourceTypeMismatch"),
        ),
        (
            "wrong-service",
            "ss=q (queue only) on the blob service -> 403 AuthorizationServiceMismatch",
            _sas_case(_sas_get, _acct(services="q"), "AuthorizationServiceMismatch"),
        ),
        (
            "tampered",
            "a SAS with a changed sp -> 403 AuthenticationFailed",
            _sas_case(_sas_delete, _as_tampered, "AuthenticationFailed"),
        ),
        (
            "protocol",
            "spr=https over plain http -> 403 AuthorizationProtocolMismatch",
            _as_proto,
        ),
        (
            "source-ip",
            "sip=203.0.113.7 from loopback -> 403 AuthorizationSourceIPMismatch",
            _sas_case(_sas_get, _acct(ip="203.0.113.7"), "AuthorizationSourceIPMismatch"),
        ),
    ],
)


def _svc(blob: str | None, permissions: str, **overrides: Any) -> MakeSas:
    """A service SAS for the check's container: ``blob`` None for a container SAS (sr=c)."""
    args = {"expiry": _now() + timedelta(hours=1), **overrides}
    return lambda ctx, ct: generate_service_sas(
        ctx.account, ctx.key, container=ct, blob=blob, permissions=permissions, **args
    )


def _ss_blob(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    resp = _sas_get(ctx, ct, _svc("secret", "r")(ctx, ct))
    ctx.expect("status / body", (200, b"payload"), (resp.status, resp.body))


def _ss_other(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    ctx.put_blob(ct, "other", b"payload")
    resp = _sas_get(ctx, ct, _svc("secret", "r")(ctx, ct), blob="other")
    _expect_denied(ctx, resp, "AuthenticationFailed")


def _ss_other_ct(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    other = ctx.container()
    ctx.put_blob(other, "secret", b"payload")
    resp = _sas_get(ctx, other, _svc(None, "r")(ctx, ct))
    _expect_denied(ctx, resp, "AuthenticationFailed")


def _ss_perm(ctx: CheckContext) -> None:
    deny = "AuthorizationPermissionMismatch"
    _sas_case(_sas_put("secret"), _svc("secret", "r"), deny)(ctx)
    ctx.expect("blob unchanged", b"payload", ctx.get(ctx.containers[-1], "secret").body)


def _ss_rsct(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    resp = _sas_get(ctx, ct, _svc("secret", "r", content_type="text/x-override")(ctx, ct))
    ctx.expect_header(resp, "content-type", "text/x-override")


register_cases(
    "service-sas",
    SERVICE_SAS,
    [
        ("blob-read", "a blob SAS (sr=b, sp=r) reads its blob -> 200", _ss_blob),
        ("blob-other", "a blob SAS used on another blob -> 403 AuthenticationFailed", _ss_other),
        (
            "container-read",
            "a container SAS (sr=c, sp=r) reads any blob",
            _sas_case(_sas_get, _svc(None, "r"), 200),
        ),
        (
            "container-list",
            "a container SAS with l lists -> 200",
            _sas_case(_sas_list, _svc(None, "rl"), 200),
        ),
        (
            "container-list-denied",
            "a container SAS without l used to list -> 403 AuthorizationPermissionMismatch",
            _sas_case(_sas_list, _svc(None, "r"), "AuthorizationPermissionMismatch"),
        ),
        (
            "other-container",
            "a container SAS used on another container -> 403 AuthenticationFailed",
            _ss_other_ct,
        ),
        (
            "write",
            "a blob SAS with cw uploads that blob -> 201",
            _sas_case(_sas_put("up"), _svc("up", "cw"), 201),
        ),
        (
            "missing-permission",
            "a read-only blob SAS used to write -> 403 AuthorizationPermissionMismatch",
            _ss_perm,
        ),
        (
            "expired",
            "an expired service SAS -> 403 AuthenticationFailed",
            _sas_case(_sas_get, _expired(_svc, "secret", "r"), "AuthenticationFailed"),
        ),
        (
            "response-override",
            "rsct on a blob SAS overrides the response Content-Type",
            _ss_rsct,
        ),
    ],
)

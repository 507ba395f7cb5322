"""Authentication and authorization: Shared Key failures, clock skew, account and service SAS."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from harness.conformance.framework import CheckContext, check, http_date, register_cases
from reference_server.auth.sas import generate_account_sas, generate_service_sas

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
    ctx.expect_true("no data leaked", b"payload" not in resp.body, "no blob bytes", "bytes")


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
    from reference_server.auth.shared_key import sign_request

    url = ctx.http.url(ctx.http.path(ct, "secret"))
    headers = sign_request(
        "GET",
        url,
        {"x-ms-version": ctx.http.api_version, "x-ms-date": http_date()},
        ctx.account,
        WRONG_KEY.decode(),
    )
    resp = ctx.http.request("GET", ct, "secret", headers=headers, sign=False)
    _expect_denied(ctx, resp, "AuthenticationFailed")


@check(
    "shared-key.tampered-header",
    SHARED_KEY,
    "a signed x-ms- header changed after signing -> 403 AuthenticationFailed",
)
def _sk_tampered(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    from reference_server.auth.shared_key import sign_request

    url = ctx.http.url(ctx.http.path(ct, "secret"))
    headers = dict(
        sign_request(
            "GET",
            url,
            {
                "x-ms-version": ctx.http.api_version,
                "x-ms-date": http_date(),
                "x-ms-client-request-id": "one",
            },
            ctx.account,
            ctx.key,
        )
    )
    headers["x-ms-client-request-id"] = "two"
    resp = ctx.http.request("GET", ct, "secret", headers=headers, sign=False)
    _expect_denied(ctx, resp, "AuthenticationFailed")


@check(
    "shared-key.tampered-path",
    SHARED_KEY,
    "a signature for another blob -> 403 AuthenticationFailed",
)
def _sk_path(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    from reference_server.auth.shared_key import sign_request

    url = ctx.http.url(ctx.http.path(ct, "other"))
    headers = sign_request(
        "GET",
        url,
        {"x-ms-version": ctx.http.api_version, "x-ms-date": http_date()},
        ctx.account,
        ctx.key,
    )
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
    ctx.expect_true("no data leaked", b"payload" not in resp.body, "no blob bytes", "bytes")


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


# ---- Account SAS ----------------------------------------------------------------------------


def _account_sas(ctx: CheckContext, **overrides) -> str:
    args = {
        "services": "b",
        "resource_types": "sco",
        "permissions": "rwdlac",
        "expiry": _now() + timedelta(hours=1),
    }
    args.update(overrides)
    return generate_account_sas(ctx.account, ctx.key, **args)


def _sas_get(ctx: CheckContext, ct: str, sas: str, blob: str = "secret"):
    return ctx.http.request("GET", ct, blob, sas=sas)


@check("account-sas.read", ACCOUNT_SAS, "a valid account SAS reads a blob -> 200")
def _as_read(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    resp = _sas_get(ctx, ct, _account_sas(ctx))
    ctx.expect("status / body", (200, b"payload"), (resp.status, resp.body))


@check("account-sas.list", ACCOUNT_SAS, "a valid account SAS lists a container -> 200")
def _as_list(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    resp = ctx.http.request(
        "GET", ct, query={"restype": "container", "comp": "list"}, sas=_account_sas(ctx)
    )
    ctx.expect_status(resp, 200)


@check("account-sas.write", ACCOUNT_SAS, "a valid account SAS with w uploads -> 201")
def _as_write(ctx: CheckContext) -> None:
    ct = ctx.container()
    resp = ctx.http.request(
        "PUT", ct, "new", body=b"x", headers={"x-ms-blob-type": "BlockBlob"}, sas=_account_sas(ctx)
    )
    ctx.expect_status(resp, 201)


@check("account-sas.expired", ACCOUNT_SAS, "an expired account SAS -> 403 AuthenticationFailed")
def _as_expired(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    sas = _account_sas(ctx, expiry=_now() - timedelta(minutes=5), start=_now() - timedelta(hours=1))
    _expect_denied(ctx, _sas_get(ctx, ct, sas), "AuthenticationFailed")


@check(
    "account-sas.not-yet-valid",
    ACCOUNT_SAS,
    "a start time in the future -> 403 AuthenticationFailed",
)
def _as_future(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    sas = _account_sas(ctx, start=_now() + timedelta(hours=1), expiry=_now() + timedelta(hours=2))
    _expect_denied(ctx, _sas_get(ctx, ct, sas), "AuthenticationFailed")


@check(
    "account-sas.missing-permission",
    ACCOUNT_SAS,
    "a read-only SAS used to write -> 403 AuthorizationPermissionMismatch",
)
def _as_perm(ctx: CheckContext) -> None:
    ct = ctx.container()
    resp = ctx.http.request(
        "PUT",
        ct,
        "new",
        body=b"x",
        headers={"x-ms-blob-type": "BlockBlob"},
        sas=_account_sas(ctx, permissions="rl"),
    )
    _expect_denied(ctx, resp, "AuthorizationPermissionMismatch")


@check(
    "account-sas.missing-delete",
    ACCOUNT_SAS,
    "a SAS without d used to delete -> 403 AuthorizationPermissionMismatch",
)
def _as_delete(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    resp = ctx.http.request("DELETE", ct, "secret", sas=_account_sas(ctx, permissions="rwl"))
    _expect_denied(ctx, resp, "AuthorizationPermissionMismatch")
    ctx.expect_status(ctx.head(ct, "secret"), 200, "blob still there")


@check(
    "account-sas.wrong-resource-type",
    ACCOUNT_SAS,
    "srt=s (service only) used on a blob -> 403 AuthorizationResourceTypeMismatch",
)
def _as_srt(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    sas = _account_sas(ctx, resource_types="s")
    _expect_denied(ctx, _sas_get(ctx, ct, sas), "AuthorizationResourceTypeMismatch")


@check(
    "account-sas.wrong-resource-type-container",
    ACCOUNT_SAS,
    "srt=o (objects only) used to list a container -> 403 AuthorizationResourceTypeMismatch",
)
def _as_srt_c(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    resp = ctx.http.request(
        "GET",
        ct,
        query={"restype": "container", "comp": "list"},
        sas=_account_sas(ctx, resource_types="o"),
    )
    _expect_denied(ctx, resp, "AuthorizationResourceTypeMismatch")


@check(
    "account-sas.wrong-service",
    ACCOUNT_SAS,
    "ss=q (queue only) on the blob service -> 403 AuthorizationServiceMismatch",
)
def _as_ss(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    sas = _account_sas(ctx, services="q")
    _expect_denied(ctx, _sas_get(ctx, ct, sas), "AuthorizationServiceMismatch")


@check("account-sas.tampered", ACCOUNT_SAS, "a SAS with a changed sp -> 403 AuthenticationFailed")
def _as_tampered(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    sas = _account_sas(ctx, permissions="r").replace("sp=r", "sp=rwd")
    resp = ctx.http.request("DELETE", ct, "secret", sas=sas)
    _expect_denied(ctx, resp, "AuthenticationFailed")


@check(
    "account-sas.protocol",
    ACCOUNT_SAS,
    "spr=https over plain http -> 403 AuthorizationProtocolMismatch",
)
def _as_proto(ctx: CheckContext) -> None:
    if ctx.http.scheme != "http":
        ctx.skip("the endpoint speaks https")
    ct = _fixture(ctx)
    sas = _account_sas(ctx, protocol="https")
    _expect_denied(ctx, _sas_get(ctx, ct, sas), "AuthorizationProtocolMismatch")


@check(
    "account-sas.source-ip",
    ACCOUNT_SAS,
    "sip=203.0.113.7 from loopback -> 403 AuthorizationSourceIPMismatch",
)
def _as_ip(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    sas = _account_sas(ctx, ip="203.0.113.7")
    _expect_denied(ctx, _sas_get(ctx, ct, sas), "AuthorizationSourceIPMismatch")


# ---- Service SAS ----------------------------------------------------------------------------


def _service_sas(
    ctx: CheckContext, ct: str, blob: str | None, permissions: str, **overrides
) -> str:
    args = {"expiry": _now() + timedelta(hours=1)}
    args.update(overrides)
    return generate_service_sas(
        ctx.account, ctx.key, container=ct, blob=blob, permissions=permissions, **args
    )


@check("service-sas.blob-read", SERVICE_SAS, "a blob SAS (sr=b, sp=r) reads its blob -> 200")
def _ss_blob(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    resp = _sas_get(ctx, ct, _service_sas(ctx, ct, "secret", "r"))
    ctx.expect("status / body", (200, b"payload"), (resp.status, resp.body))


@check(
    "service-sas.blob-other",
    SERVICE_SAS,
    "a blob SAS used on another blob -> 403 AuthenticationFailed",
)
def _ss_other(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    ctx.put_blob(ct, "other", b"payload")
    resp = _sas_get(ctx, ct, _service_sas(ctx, ct, "secret", "r"), blob="other")
    _expect_denied(ctx, resp, "AuthenticationFailed")


@check("service-sas.container-read", SERVICE_SAS, "a container SAS (sr=c, sp=r) reads any blob")
def _ss_container(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    ctx.expect_status(_sas_get(ctx, ct, _service_sas(ctx, ct, None, "r")), 200)


@check("service-sas.container-list", SERVICE_SAS, "a container SAS with l lists -> 200")
def _ss_list(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    resp = ctx.http.request(
        "GET",
        ct,
        query={"restype": "container", "comp": "list"},
        sas=_service_sas(ctx, ct, None, "rl"),
    )
    ctx.expect_status(resp, 200)


@check(
    "service-sas.container-list-denied",
    SERVICE_SAS,
    "a container SAS without l used to list -> 403 AuthorizationPermissionMismatch",
)
def _ss_list_denied(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    resp = ctx.http.request(
        "GET",
        ct,
        query={"restype": "container", "comp": "list"},
        sas=_service_sas(ctx, ct, None, "r"),
    )
    _expect_denied(ctx, resp, "AuthorizationPermissionMismatch")


@check(
    "service-sas.other-container",
    SERVICE_SAS,
    "a container SAS used on another container -> 403 AuthenticationFailed",
)
def _ss_other_ct(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    other = ctx.container()
    ctx.put_blob(other, "secret", b"payload")
    resp = _sas_get(ctx, other, _service_sas(ctx, ct, None, "r"))
    _expect_denied(ctx, resp, "AuthenticationFailed")


@check("service-sas.write", SERVICE_SAS, "a blob SAS with cw uploads that blob -> 201")
def _ss_write(ctx: CheckContext) -> None:
    ct = ctx.container()
    resp = ctx.http.request(
        "PUT",
        ct,
        "up",
        body=b"x",
        headers={"x-ms-blob-type": "BlockBlob"},
        sas=_service_sas(ctx, ct, "up", "cw"),
    )
    ctx.expect_status(resp, 201)


@check(
    "service-sas.missing-permission",
    SERVICE_SAS,
    "a read-only blob SAS used to write -> 403 AuthorizationPermissionMismatch",
)
def _ss_perm(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    resp = ctx.http.request(
        "PUT",
        ct,
        "secret",
        body=b"x",
        headers={"x-ms-blob-type": "BlockBlob"},
        sas=_service_sas(ctx, ct, "secret", "r"),
    )
    _expect_denied(ctx, resp, "AuthorizationPermissionMismatch")
    ctx.expect("blob unchanged", b"payload", ctx.get(ct, "secret").body)


@check("service-sas.expired", SERVICE_SAS, "an expired service SAS -> 403 AuthenticationFailed")
def _ss_expired(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    sas = _service_sas(
        ctx,
        ct,
        "secret",
        "r",
        expiry=_now() - timedelta(minutes=5),
        start=_now() - timedelta(hours=1),
    )
    _expect_denied(ctx, _sas_get(ctx, ct, sas), "AuthenticationFailed")


@check(
    "service-sas.response-override",
    SERVICE_SAS,
    "rsct on a blob SAS overrides the response Content-Type",
)
def _ss_rsct(ctx: CheckContext) -> None:
    ct = _fixture(ctx)
    sas = _service_sas(ctx, ct, "secret", "r", content_type="text/x-override")
    resp = _sas_get(ctx, ct, sas)
    ctx.expect_header(resp, "content-type", "text/x-override")

"""Service-level operations: List Containers, Get Account Information, Service Properties,
Get User Delegation Key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web

from reference_server.auth.sas import parse_sas_time, user_delegation_key_value
from reference_server.errors import StorageError
from reference_server.handlers.common import Ctx, blocking, read_xml_body, respond
from reference_server.xmlbody import (
    check_service_properties,
    default_service_properties,
    list_containers_body,
    parse_key_info,
    user_delegation_key_body,
    xml_representable,
)

MAX_RESULTS = 5000
MAX_DELEGATION = timedelta(days=7)  # a user delegation key lives at most 7 days from now


def parse_maxresults(value: str | None) -> int:
    if value is None:
        return MAX_RESULTS
    try:
        n = int(value)
    except ValueError:
        raise StorageError(
            "InvalidQueryParameterValue", details={"QueryParameterName": "maxresults"}
        ) from None
    if n <= 0:
        raise StorageError(
            "OutOfRangeQueryParameterValue", details={"QueryParameterName": "maxresults"}
        )
    return min(n, MAX_RESULTS)


def listing_param(ctx: Ctx, name: str) -> str | None:
    """A listing parameter the answer echoes (prefix, marker, delimiter). One that XML cannot
    carry is refused: Azure's schema has no encoded form for these elements."""
    value = ctx.query.get(name)
    if value is not None and not xml_representable(value):
        raise StorageError(
            "InvalidQueryParameterValue",
            f"The {name} contains characters not allowed in XML.",
            details={"QueryParameterName": name},
        )
    return value


def includes(ctx: Ctx, what: str) -> bool:
    return what in {p.strip().lower() for p in ctx.query.get("include", "").split(",")}


async def list_containers(ctx: Ctx) -> web.StreamResponse:
    prefix = listing_param(ctx, "prefix")
    marker = listing_param(ctx, "marker")
    raw_max = ctx.query.get("maxresults")
    maxresults = parse_maxresults(raw_max)
    containers, next_marker = await blocking(
        ctx.store.list_containers, ctx.account, prefix or "", marker, maxresults
    )
    body = list_containers_body(
        ctx.service_endpoint,
        prefix,
        marker,
        maxresults if raw_max else None,
        containers,
        next_marker,
        includes(ctx, "metadata"),
    )
    return respond(200, body=body)


async def get_account_info(ctx: Ctx) -> web.StreamResponse:
    # AzCopy dereferences both headers, so they must always be present.
    return respond(
        200,
        {
            "x-ms-sku-name": "Standard_LRS",
            "x-ms-account-kind": "StorageV2",
            "x-ms-is-hns-enabled": "false",
        },
    )


async def get_service_properties(ctx: Ctx) -> web.StreamResponse:
    body = await blocking(ctx.store.get_service_properties, ctx.account)
    return respond(200, body=body or default_service_properties())


async def set_service_properties(ctx: Ctx) -> web.StreamResponse:
    body = await read_xml_body(ctx)
    check_service_properties(body)
    await blocking(ctx.store.set_service_properties, ctx.account, body)
    return respond(202)


def _key_time(value: str, name: str) -> datetime:
    try:
        return parse_sas_time(value)
    except ValueError:
        raise StorageError("InvalidXmlNodeValue", f"{name} is not an ISO 8601 time.") from None


async def get_user_delegation_key(ctx: Ctx) -> web.StreamResponse:
    """A key for the bearer caller's oid/tid, valid from Start (default now) to Expiry, at most 7
    days ahead. Its Value is derived from those fields (auth/sas.py), so nothing is stored."""
    principal = ctx.request["principal"]
    if principal.scheme != "bearer":
        raise StorageError(
            "AuthenticationFailed",
            details={"AuthenticationErrorDetail": "Only an OAuth bearer token can request a "
                     "user delegation key."},
        )  # fmt: skip
    start_text, expiry_text = parse_key_info(await read_xml_body(ctx))
    now = datetime.now(UTC).replace(microsecond=0)
    start = _key_time(start_text, "Start") if start_text else now
    expiry = _key_time(expiry_text, "Expiry")
    if expiry <= start or expiry <= now or expiry - now > MAX_DELEGATION:
        raise StorageError(
            "InvalidQueryParameterValue",
            "Expiry must be after Start and now, and at most 7 days from now.",
            details={"QueryParameterName": "Expiry"},
        )
    fields = {
        "skoid": principal.details["oid"],
        "sktid": principal.details["tid"],
        "skt": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ske": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sks": "b",
        "skv": ctx.headers.get("x-ms-version") or ctx.config.api_version,
    }
    account = ctx.config.account(ctx.account)
    assert account is not None  # the request was authorized against it
    return respond(
        200, body=user_delegation_key_body(fields, user_delegation_key_value(account, fields))
    )

"""Container operations: create, delete, properties, metadata, List Blobs."""

from __future__ import annotations

from aiohttp import web

from reference_server.handlers.common import (
    Ctx,
    blocking,
    metadata_headers,
    parse_metadata,
    respond,
)
from reference_server.handlers.service import includes, listing_param, parse_maxresults
from reference_server.store import ContainerProps
from reference_server.store.names import check_container_name, check_creatable_container_name
from reference_server.xmlbody import http_date, list_blobs_body


def _props_headers(props: ContainerProps) -> dict[str, str]:
    return {"ETag": f'"{props.etag}"', "Last-Modified": http_date(props.last_modified)}


async def create_container(ctx: Ctx) -> web.StreamResponse:
    check_creatable_container_name(ctx.container)
    metadata = parse_metadata(ctx.headers)
    props = await blocking(ctx.store.create_container, ctx.account, ctx.container, metadata)
    return respond(201, _props_headers(props))


async def _check_conditions(ctx: Ctx) -> None:
    """The conditional headers of a container write (Delete Container, Set Container Metadata):
    412 ConditionNotMet when they do not hold, as Azure answers ("Specifying conditional headers
    for Blob service operations"; Azurite validates them the same way on every container
    write). Containers have no commit lock: the check and the write are two steps."""
    conditions = ctx.conditions()
    if not conditions.empty:
        props = await blocking(ctx.store.get_container, ctx.account, ctx.container)
        conditions.check_write(props.etag, props.last_modified)


async def delete_container(ctx: Ctx) -> web.StreamResponse:
    await _check_conditions(ctx)
    await blocking(ctx.store.delete_container, ctx.account, ctx.container)
    return respond(202)


async def get_container_properties(ctx: Ctx) -> web.StreamResponse:
    props = await blocking(ctx.store.get_container, ctx.account, ctx.container)
    headers = _props_headers(props) | metadata_headers(props.metadata)
    headers |= {
        "x-ms-lease-status": "unlocked",
        "x-ms-lease-state": "available",
        "x-ms-has-immutability-policy": "false",
        "x-ms-has-legal-hold": "false",
        "x-ms-default-encryption-scope": "$account-encryption-key",
        "x-ms-deny-encryption-scope-override": "false",
    }
    return respond(200, headers)


async def set_container_metadata(ctx: Ctx) -> web.StreamResponse:
    check_container_name(ctx.container)
    metadata = parse_metadata(ctx.headers)
    await _check_conditions(ctx)
    props = await blocking(ctx.store.set_container_metadata, ctx.account, ctx.container, metadata)
    return respond(200, _props_headers(props))


async def list_blobs(ctx: Ctx) -> web.StreamResponse:
    prefix, marker = listing_param(ctx, "prefix"), listing_param(ctx, "marker")
    delimiter = listing_param(ctx, "delimiter") or None
    raw_max = ctx.query.get("maxresults")
    maxresults = parse_maxresults(raw_max)
    page = await blocking(
        ctx.store.list_blobs,
        ctx.account,
        ctx.container,
        prefix or "",
        delimiter,
        marker or None,
        maxresults,
        includes(ctx, "uncommittedblobs"),
    )
    body = list_blobs_body(
        ctx.service_endpoint,
        ctx.container,
        prefix,
        marker,
        maxresults if raw_max else None,
        delimiter,
        page.items,
        page.next_marker,
        includes(ctx, "metadata"),
        includes(ctx, "copy"),
    )
    return respond(200, body=body)

"""Service and container operations: List Containers, account information, service properties,
Create / Delete / Get Properties / Get and Set Metadata of a container."""

from __future__ import annotations

import re

from harness.conformance.framework import CheckContext, check, children

RFC1123 = re.compile(r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$")
QUOTED = re.compile(r'^"[^"]+"$')

LIST_CONTAINERS = "List Containers"
ACCOUNT = "Account"
CREATE = "Create Container"
CPROPS = "Container Properties"
CMETA = "Container Metadata"
CDELETE = "Delete Container"


def list_containers(ctx: CheckContext, **params: str):
    return ctx.http.request("GET", query={"comp": "list", **params})


def _three(ctx: CheckContext) -> tuple[str, list[str]]:
    stem = ctx.name("lc")
    names = [f"{stem}-{s}" for s in ("a", "b", "c")]
    for name in names:
        resp = ctx.http.request("PUT", name, query={"restype": "container"})
        ctx.expect_status(resp, 201, f"create {name}")
        ctx.containers.append(name)
    return stem, names


@check("list-containers.status", LIST_CONTAINERS, "200 with Content-Type application/xml")
def _lc_status(ctx: CheckContext) -> None:
    resp = list_containers(ctx)
    ctx.expect_status(resp, 200)
    ctx.expect_true(
        "content-type",
        "application/xml" in (resp.header("content-type") or ""),
        "application/xml",
        resp.header("content-type"),
    )


@check("list-containers.root", LIST_CONTAINERS, "root <EnumerationResults ServiceEndpoint=...>")
def _lc_root(ctx: CheckContext) -> None:
    root = list_containers(ctx, maxresults="1").xml()
    ctx.expect("root", "EnumerationResults", root.tag)
    ctx.expect_true(
        "ServiceEndpoint", bool(root.get("ServiceEndpoint")), "set", root.get("ServiceEndpoint")
    )


@check(
    "list-containers.element-order",
    LIST_CONTAINERS,
    "children Prefix, Marker, MaxResults, Containers, NextMarker in schema order",
)
def _lc_order(ctx: CheckContext) -> None:
    stem, _ = _three(ctx)
    root = list_containers(ctx, prefix=stem, marker=stem, maxresults="5").xml()
    ctx.expect(
        "children", ["Prefix", "Marker", "MaxResults", "Containers", "NextMarker"], children(root)
    )


@check("list-containers.prefix", LIST_CONTAINERS, "prefix returns exactly the matching names")
def _lc_prefix(ctx: CheckContext) -> None:
    stem, names = _three(ctx)
    root = list_containers(ctx, prefix=stem).xml()
    ctx.expect("names", names, [c.findtext("Name") for c in root.iter("Container")])
    ctx.expect("Prefix echo", stem, root.findtext("Prefix"))


@check(
    "list-containers.pagination",
    LIST_CONTAINERS,
    "maxresults=2 pages with NextMarker; following it lists every name once",
)
def _lc_pages(ctx: CheckContext) -> None:
    stem, names = _three(ctx)
    first = list_containers(ctx, prefix=stem, maxresults="2").xml()
    marker = first.findtext("NextMarker") or ""
    ctx.expect_true("NextMarker", bool(marker), "non-empty", marker)
    second = list_containers(ctx, prefix=stem, maxresults="2", marker=marker).xml()
    got = [c.findtext("Name") for r in (first, second) for c in r.iter("Container")]
    ctx.expect("names across pages", names, got)
    ctx.expect("Marker echo", marker, second.findtext("Marker"))


@check(
    "list-containers.next-marker-empty",
    LIST_CONTAINERS,
    "last page carries an empty <NextMarker/> element",
)
def _lc_next_empty(ctx: CheckContext) -> None:
    stem, _ = _three(ctx)
    root = list_containers(ctx, prefix=stem).xml()
    elem = root.find("NextMarker")
    ctx.expect(
        "NextMarker",
        "present and empty",
        "absent" if elem is None else ("present and empty" if not elem.text else elem.text),
    )


@check(
    "list-containers.properties",
    LIST_CONTAINERS,
    "each <Container> has Name then Properties with Last-Modified and Etag",
)
def _lc_props(ctx: CheckContext) -> None:
    stem, _ = _three(ctx)
    cont = list_containers(ctx, prefix=stem).xml().find("Containers/Container")
    ctx.expect("container children", ["Name", "Properties"], children(cont)[:2])
    props = children(cont.find("Properties"))
    ctx.expect("Properties start", ["Last-Modified", "Etag"], props[:2])
    ctx.expect_true(
        "Last-Modified RFC 1123",
        bool(RFC1123.match(cont.findtext("Properties/Last-Modified") or "")),
        "RFC 1123",
        cont.findtext("Properties/Last-Modified"),
    )


@check(
    "list-containers.include-metadata",
    LIST_CONTAINERS,
    "include=metadata returns <Metadata> with the container's pairs",
)
def _lc_meta(ctx: CheckContext) -> None:
    name = ctx.container("lcm", **{"x-ms-meta-team": "vision"})
    root = list_containers(ctx, prefix=name, include="metadata").xml()
    ctx.expect("metadata", "vision", root.findtext("Containers/Container/Metadata/team"))


@check(
    "list-containers.no-metadata-by-default",
    LIST_CONTAINERS,
    "without include=metadata no <Metadata> element",
)
def _lc_no_meta(ctx: CheckContext) -> None:
    name = ctx.container("lcn", **{"x-ms-meta-team": "vision"})
    root = list_containers(ctx, prefix=name).xml()
    ctx.expect("Metadata element", None, root.find("Containers/Container/Metadata"))


@check("list-containers.maxresults-zero", LIST_CONTAINERS, "maxresults=0 -> 400")
def _lc_max0(ctx: CheckContext) -> None:
    resp = list_containers(ctx, maxresults="0")
    ctx.expect_status(resp, 400)


@check(
    "list-containers.empty-result", LIST_CONTAINERS, "no match -> <Containers/> present and empty"
)
def _lc_empty(ctx: CheckContext) -> None:
    root = list_containers(ctx, prefix=ctx.name("none")).xml()
    elem = root.find("Containers")
    ctx.expect(
        "Containers",
        "present, 0 children",
        "absent" if elem is None else f"present, {len(elem)} children",
    )


@check(
    "account.info",
    ACCOUNT,
    "Get Account Information: 200 with x-ms-sku-name and x-ms-account-kind (AzCopy reads both)",
)
def _acct_info(ctx: CheckContext) -> None:
    resp = ctx.http.request("GET", query={"restype": "account", "comp": "properties"})
    ctx.expect_status(resp, 200)
    ctx.expect_header(resp, "x-ms-sku-name")
    ctx.expect_header(resp, "x-ms-account-kind")


@check("account.info-head", ACCOUNT, "Get Account Information by HEAD: 200 with x-ms-sku-name")
def _acct_info_head(ctx: CheckContext) -> None:
    resp = ctx.http.request("HEAD", query={"restype": "account", "comp": "properties"})
    ctx.expect_status(resp, 200)
    ctx.expect_header(resp, "x-ms-sku-name")


@check(
    "account.service-properties", ACCOUNT, "Get Service Properties: 200 <StorageServiceProperties>"
)
def _svc_props(ctx: CheckContext) -> None:
    resp = ctx.http.request("GET", query={"restype": "service", "comp": "properties"})
    ctx.expect_status(resp, 200)
    ctx.expect("root", "StorageServiceProperties", resp.xml().tag)


@check(
    "account.set-service-properties",
    ACCOUNT,
    "Set Service Properties with the body Get returned: 202",
)
def _svc_props_set(ctx: CheckContext) -> None:
    got = ctx.http.request("GET", query={"restype": "service", "comp": "properties"})
    ctx.expect_status(got, 200, "get")
    resp = ctx.http.request(
        "PUT",
        query={"restype": "service", "comp": "properties"},
        body=got.body,
        headers={"Content-Type": "application/xml"},
    )
    ctx.expect_status(resp, 202)


# ---- Create Container ---------------------------------------------------------------------


def _create(ctx: CheckContext, name: str, **headers: str):
    resp = ctx.http.request("PUT", name, query={"restype": "container"}, headers=headers)
    if resp.status == 201:
        ctx.containers.append(name)
    return resp


@check("create-container.status", CREATE, "201 Created")
def _cc_status(ctx: CheckContext) -> None:
    ctx.expect_status(_create(ctx, ctx.name()), 201)


@check("create-container.etag", CREATE, "201 carries a quoted ETag")
def _cc_etag(ctx: CheckContext) -> None:
    resp = _create(ctx, ctx.name())
    etag = ctx.expect_header(resp, "etag")
    ctx.expect_true("quoted", bool(QUOTED.match(etag)), '"..."', etag)


@check("create-container.last-modified", CREATE, "201 carries Last-Modified in RFC 1123")
def _cc_lm(ctx: CheckContext) -> None:
    lm = ctx.expect_header(_create(ctx, ctx.name()), "last-modified")
    ctx.expect_true("RFC 1123", bool(RFC1123.match(lm)), "RFC 1123", lm)


@check("create-container.exists", CREATE, "second create -> 409 ContainerAlreadyExists")
def _cc_exists(ctx: CheckContext) -> None:
    name = ctx.container()
    ctx.expect_error(_create(ctx, name), 409, "ContainerAlreadyExists")


@check("create-container.uppercase", CREATE, "upper-case name -> 400 InvalidResourceName")
def _cc_upper(ctx: CheckContext) -> None:
    ctx.expect_error(_create(ctx, "Cf" + ctx.name()), 400, "InvalidResourceName")


@check("create-container.underscore", CREATE, "name with '_' -> 400 InvalidResourceName")
def _cc_underscore(ctx: CheckContext) -> None:
    ctx.expect_error(_create(ctx, ctx.name() + "_x"), 400, "InvalidResourceName")


@check("create-container.too-short", CREATE, "2-character name -> 400")
def _cc_short(ctx: CheckContext) -> None:
    ctx.expect_status(_create(ctx, "ab"), 400)


@check("create-container.too-long", CREATE, "64-character name -> 400")
def _cc_long(ctx: CheckContext) -> None:
    base = ctx.name()
    ctx.expect_status(_create(ctx, (base + "x" * 64)[:64]), 400)


@check("create-container.max-length", CREATE, "63-character name -> 201")
def _cc_63(ctx: CheckContext) -> None:
    base = ctx.name()
    ctx.expect_status(_create(ctx, (base + "x" * 63)[:63]), 201)


@check("create-container.metadata", CREATE, "x-ms-meta-* on create is returned by HEAD")
def _cc_meta(ctx: CheckContext) -> None:
    name = ctx.container(**{"x-ms-meta-owner": "lab"})
    ctx.expect_header(ctx.head(name), "x-ms-meta-owner", "lab")


# ---- Get Container Properties -----------------------------------------------------------


@check(
    "container-properties.head", CPROPS, "HEAD ?restype=container -> 200 with ETag, Last-Modified"
)
def _cp_head(ctx: CheckContext) -> None:
    resp = ctx.head(ctx.container())
    ctx.expect_status(resp, 200)
    ctx.expect_header(resp, "etag")
    ctx.expect_header(resp, "last-modified")


@check("container-properties.get", CPROPS, "GET ?restype=container -> 200, empty body")
def _cp_get(ctx: CheckContext) -> None:
    resp = ctx.http.request("GET", ctx.container(), query={"restype": "container"})
    ctx.expect_status(resp, 200)
    ctx.expect("body length", 0, len(resp.body))


@check("container-properties.etag-matches-create", CPROPS, "ETag equals the one Create returned")
def _cp_etag(ctx: CheckContext) -> None:
    name = ctx.name()
    created = _create(ctx, name)
    ctx.expect("ETag", created.header("etag"), ctx.head(name).header("etag"))


@check("container-properties.missing", CPROPS, "missing container -> 404 ContainerNotFound (HEAD)")
def _cp_missing(ctx: CheckContext) -> None:
    ctx.expect_error(ctx.head(ctx.name("missing")), 404, "ContainerNotFound")


@check(
    "container-properties.missing-get", CPROPS, "missing container -> 404 ContainerNotFound (GET)"
)
def _cp_missing_get(ctx: CheckContext) -> None:
    resp = ctx.http.request("GET", ctx.name("missing"), query={"restype": "container"})
    ctx.expect_error(resp, 404, "ContainerNotFound")


# ---- Container metadata -------------------------------------------------------------------


def _set_cmeta(ctx: CheckContext, name: str, **meta: str):
    headers = {f"x-ms-meta-{k}": v for k, v in meta.items()}
    return ctx.http.request(
        "PUT", name, query={"restype": "container", "comp": "metadata"}, headers=headers
    )


@check("container-metadata.set", CMETA, "Set Container Metadata -> 200 with ETag")
def _cm_set(ctx: CheckContext) -> None:
    resp = _set_cmeta(ctx, ctx.container(), a="1")
    ctx.expect_status(resp, 200)
    ctx.expect_header(resp, "etag")


@check("container-metadata.get", CMETA, "Get Container Metadata returns the pairs set")
def _cm_get(ctx: CheckContext) -> None:
    name = ctx.container()
    _set_cmeta(ctx, name, project="alpha", tier="hot")
    resp = ctx.http.request("GET", name, query={"restype": "container", "comp": "metadata"})
    ctx.expect_status(resp, 200)
    ctx.expect(
        "metadata",
        ("alpha", "hot"),
        (resp.header("x-ms-meta-project"), resp.header("x-ms-meta-tier")),
    )


@check("container-metadata.replace", CMETA, "Set replaces all pairs: an old key disappears")
def _cm_replace(ctx: CheckContext) -> None:
    name = ctx.container(**{"x-ms-meta-old": "1"})
    _set_cmeta(ctx, name, new="2")
    resp = ctx.head(name)
    ctx.expect(
        "old / new", (None, "2"), (resp.header("x-ms-meta-old"), resp.header("x-ms-meta-new"))
    )


@check("container-metadata.missing", CMETA, "Set on a missing container -> 404 ContainerNotFound")
def _cm_missing(ctx: CheckContext) -> None:
    ctx.expect_error(_set_cmeta(ctx, ctx.name("missing"), a="1"), 404, "ContainerNotFound")


# ---- Delete Container ----------------------------------------------------------------------


@check("delete-container.status", CDELETE, "202 Accepted")
def _dc_status(ctx: CheckContext) -> None:
    name = ctx.container()
    resp = ctx.http.request("DELETE", name, query={"restype": "container"})
    ctx.expect_status(resp, 202)


@check("delete-container.gone", CDELETE, "after delete, HEAD -> 404 ContainerNotFound")
def _dc_gone(ctx: CheckContext) -> None:
    name = ctx.container()
    ctx.put_blob(name, "x", b"x")
    ctx.http.request("DELETE", name, query={"restype": "container"})
    ctx.expect_error(ctx.head(name), 404, "ContainerNotFound")


@check("delete-container.missing", CDELETE, "delete a missing container -> 404 ContainerNotFound")
def _dc_missing(ctx: CheckContext) -> None:
    resp = ctx.http.request("DELETE", ctx.name("missing"), query={"restype": "container"})
    ctx.expect_error(resp, 404, "ContainerNotFound")

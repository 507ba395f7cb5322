"""List Blobs: exact enumeration XML, order, prefixes, delimiters, pagination across markers."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from harness.conformance.checks.service import RFC1123
from harness.conformance.framework import (
    CheckContext,
    check,
    children,
    is_subsequence,
    md5_b64,
)

LIST = "List Blobs"
DELIM = "List Blobs Delimiter"
PAGES = "List Blobs Pagination"

# Relative order of <Properties> children in Azure's enumeration schema (others may interleave).
PROPERTY_ORDER = [
    "Creation-Time",
    "Last-Modified",
    "Etag",
    "Content-Length",
    "Content-Type",
    "Content-Encoding",
    "Content-Language",
    "Content-MD5",
    "Cache-Control",
    "BlobType",
    "LeaseStatus",
    "LeaseState",
]
TREE = ["a.txt", "d1/x.bin", "d1/d2/y.bin", "d1/d2/z.bin", "d1/d3/w.bin", "e/f", "z"]


def _tree(ctx: CheckContext, names: list[str] = TREE) -> str:
    ct = ctx.container()
    for name in names:
        ctx.put_blob(ct, name, name.encode())
    return ct


def _list(ctx: CheckContext, ct: str, **params: str) -> ET.Element:
    resp = ctx.list_blobs(ct, **params)
    ctx.expect_status(resp, 200, "list status")
    return resp.xml()


def _entries(root: ET.Element) -> list[str]:
    """Blob names and BlobPrefix names ('P:' prefixed) in document order."""
    out = []
    for elem in root.find("Blobs") if root.find("Blobs") is not None else []:
        name = elem.findtext("Name") or ""
        out.append(name if elem.tag == "Blob" else f"P:{name}")
    return out


@check("list-blobs.status", LIST, "200 with Content-Type application/xml")
def _lb_status(ctx: CheckContext) -> None:
    resp = ctx.list_blobs(ctx.container())
    ctx.expect_status(resp, 200)
    ctx.expect_true(
        "content-type",
        "application/xml" in (resp.header("content-type") or ""),
        "application/xml",
        resp.header("content-type"),
    )


@check("list-blobs.root", LIST, "<EnumerationResults ServiceEndpoint=... ContainerName=...>")
def _lb_root(ctx: CheckContext) -> None:
    ct = ctx.container()
    root = _list(ctx, ct)
    ctx.expect("root", "EnumerationResults", root.tag)
    ctx.expect("ContainerName", ct, root.get("ContainerName"))
    ctx.expect_true(
        "ServiceEndpoint", bool(root.get("ServiceEndpoint")), "set", root.get("ServiceEndpoint")
    )


@check(
    "list-blobs.element-order",
    LIST,
    "children Prefix, Marker, MaxResults, Delimiter, Blobs, NextMarker in schema order",
)
def _lb_order(ctx: CheckContext) -> None:
    ct = _tree(ctx)
    root = _list(ctx, ct, prefix="d", marker="", maxresults="10", delimiter="/")
    ctx.expect(
        "children",
        ["Prefix", "Marker", "MaxResults", "Delimiter", "Blobs", "NextMarker"],
        children(root),
    )


@check(
    "list-blobs.minimal-elements", LIST, "without parameters only <Blobs> and <NextMarker> appear"
)
def _lb_minimal(ctx: CheckContext) -> None:
    root = _list(ctx, _tree(ctx))
    ctx.expect("children", ["Blobs", "NextMarker"], children(root))


@check("list-blobs.echo", LIST, "Prefix, MaxResults and Delimiter echo the request")
def _lb_echo(ctx: CheckContext) -> None:
    root = _list(ctx, _tree(ctx), prefix="d1/", maxresults="3", delimiter="/")
    ctx.expect(
        "echo",
        ("d1/", "3", "/"),
        (root.findtext("Prefix"), root.findtext("MaxResults"), root.findtext("Delimiter")),
    )


@check("list-blobs.empty-container", LIST, "an empty container -> <Blobs/> and empty <NextMarker/>")
def _lb_empty(ctx: CheckContext) -> None:
    root = _list(ctx, ctx.container())
    blobs = root.find("Blobs")
    ctx.expect(
        "Blobs",
        "present, 0 children",
        "absent" if blobs is None else f"present, {len(blobs)} children",
    )
    ctx.expect("NextMarker", "", root.findtext("NextMarker"))


@check("list-blobs.blob-children", LIST, "<Blob> children start Name, Properties")
def _lb_blob_children(ctx: CheckContext) -> None:
    root = _list(ctx, _tree(ctx, ["one"]))
    ctx.expect("children", ["Name", "Properties"], children(root.find("Blobs/Blob"))[:2])


@check("list-blobs.properties-order", LIST, "<Properties> children follow the schema order")
def _lb_props_order(ctx: CheckContext) -> None:
    root = _list(ctx, _tree(ctx, ["one"]))
    tags = children(root.find("Blobs/Blob/Properties"))
    ctx.expect_true("order", is_subsequence(PROPERTY_ORDER, tags), PROPERTY_ORDER, tags)


@check(
    "list-blobs.properties-present",
    LIST,
    "Last-Modified, Etag, Content-Length, Content-Type, Content-MD5, BlobType, LeaseStatus, "
    "LeaseState are present",
)
def _lb_props_present(ctx: CheckContext) -> None:
    root = _list(ctx, _tree(ctx, ["one"]))
    tags = children(root.find("Blobs/Blob/Properties"))
    need = [
        "Last-Modified",
        "Etag",
        "Content-Length",
        "Content-Type",
        "Content-MD5",
        "BlobType",
        "LeaseStatus",
        "LeaseState",
    ]
    ctx.expect("missing", [], [t for t in need if t not in tags])


@check(
    "list-blobs.empty-elements",
    LIST,
    "unset Content-Encoding, Content-Language, Cache-Control are empty elements, not absent",
)
def _lb_empty_elems(ctx: CheckContext) -> None:
    root = _list(ctx, _tree(ctx, ["one"]))
    props = root.find("Blobs/Blob/Properties")
    state = {
        t: ("absent" if props.find(t) is None else (props.findtext(t) or ""))
        for t in ("Content-Encoding", "Content-Language", "Cache-Control")
    }
    ctx.expect("elements", {t: "" for t in state}, state)


@check(
    "list-blobs.property-values",
    LIST,
    "Content-Length, Content-MD5, BlobType, LeaseStatus/State values are right",
)
def _lb_values(ctx: CheckContext) -> None:
    root = _list(ctx, _tree(ctx, ["one"]))
    p = root.find("Blobs/Blob/Properties")
    ctx.expect(
        "values",
        ("3", md5_b64(b"one"), "BlockBlob", "unlocked", "available"),
        tuple(
            p.findtext(t)
            for t in ("Content-Length", "Content-MD5", "BlobType", "LeaseStatus", "LeaseState")
        ),
    )


@check("list-blobs.etag-unquoted", LIST, "<Etag> is the blob's ETag without quotes")
def _lb_etag(ctx: CheckContext) -> None:
    ct = ctx.container()
    etag = ctx.put_blob(ct, "one", b"x").header("etag") or ""
    root = _list(ctx, ct)
    ctx.expect("Etag", etag.strip('"'), root.findtext("Blobs/Blob/Properties/Etag"))


@check("list-blobs.last-modified", LIST, "<Last-Modified> is RFC 1123 and equals the header")
def _lb_lm(ctx: CheckContext) -> None:
    ct = ctx.container()
    lm = ctx.put_blob(ct, "one", b"x").header("last-modified")
    value = _list(ctx, ct).findtext("Blobs/Blob/Properties/Last-Modified") or ""
    ctx.expect_true("RFC 1123", bool(RFC1123.match(value)), "RFC 1123", value)
    ctx.expect("value", lm, value)


@check("list-blobs.content-headers", LIST, "stored content headers appear in <Properties>")
def _lb_content_headers(ctx: CheckContext) -> None:
    ct = ctx.container()
    ctx.put_blob(
        ct,
        "one",
        b"x",
        {
            "x-ms-blob-content-type": "text/csv",
            "x-ms-blob-content-encoding": "gzip",
            "x-ms-blob-content-language": "en",
            "x-ms-blob-cache-control": "no-cache",
            "x-ms-blob-content-disposition": "inline",
        },
    )
    p = _list(ctx, ct).find("Blobs/Blob/Properties")
    ctx.expect(
        "values",
        ("text/csv", "gzip", "en", "no-cache", "inline"),
        tuple(
            p.findtext(t)
            for t in (
                "Content-Type",
                "Content-Encoding",
                "Content-Language",
                "Cache-Control",
                "Content-Disposition",
            )
        ),
    )


@check("list-blobs.lexicographic", LIST, "names in lexicographic order of code points")
def _lb_lex(ctx: CheckContext) -> None:
    names = ["b", "B", "a/b", "a-b", "a.txt", "a0", "é", "Z"]
    root = _list(ctx, _tree(ctx, names))
    ctx.expect("order", sorted(names), _entries(root))


@check("list-blobs.prefix", LIST, "prefix keeps exactly the names starting with it")
def _lb_prefix(ctx: CheckContext) -> None:
    root = _list(ctx, _tree(ctx), prefix="d1/d2")
    ctx.expect("names", ["d1/d2/y.bin", "d1/d2/z.bin"], _entries(root))


@check("list-blobs.prefix-no-match", LIST, "a prefix matching nothing -> empty <Blobs/>")
def _lb_prefix_none(ctx: CheckContext) -> None:
    ctx.expect("names", [], _entries(_list(ctx, _tree(ctx), prefix="nothing")))


@check("list-blobs.include-metadata", LIST, "include=metadata returns <Metadata> pairs")
def _lb_meta(ctx: CheckContext) -> None:
    ct = ctx.container()
    ctx.put_blob(ct, "one", b"x", {"x-ms-meta-hdi_isfolder": "true", "x-ms-meta-k": "v"})
    meta = _list(ctx, ct, include="metadata").find("Blobs/Blob/Metadata")
    ctx.expect(
        "metadata",
        {"hdi_isfolder": "true", "k": "v"},
        {m.tag: m.text for m in meta} if meta is not None else None,
    )


@check("list-blobs.metadata-after-properties", LIST, "<Metadata> follows <Properties>")
def _lb_meta_order(ctx: CheckContext) -> None:
    ct = ctx.container()
    ctx.put_blob(ct, "one", b"x", {"x-ms-meta-k": "v"})
    tags = children(_list(ctx, ct, include="metadata").find("Blobs/Blob"))
    ctx.expect_true(
        "order",
        is_subsequence(["Name", "Properties", "Metadata"], tags) and "Metadata" in tags,
        "Name, Properties, Metadata",
        tags,
    )


@check("list-blobs.no-metadata-by-default", LIST, "without include=metadata no <Metadata>")
def _lb_no_meta(ctx: CheckContext) -> None:
    ct = ctx.container()
    ctx.put_blob(ct, "one", b"x", {"x-ms-meta-k": "v"})
    ctx.expect("Metadata", None, _list(ctx, ct).find("Blobs/Blob/Metadata"))


@check("list-blobs.include-multiple", LIST, "include=metadata,copy is accepted")
def _lb_include_multi(ctx: CheckContext) -> None:
    ct = _tree(ctx, ["one"])
    ctx.expect_status(ctx.list_blobs(ct, include="metadata,copy"), 200)


@check("list-blobs.missing-container", LIST, "a missing container -> 404 ContainerNotFound")
def _lb_missing(ctx: CheckContext) -> None:
    ctx.expect_error(ctx.list_blobs(ctx.name("missing")), 404, "ContainerNotFound")


@check("list-blobs.maxresults-zero", LIST, "maxresults=0 -> 400")
def _lb_max0(ctx: CheckContext) -> None:
    ctx.expect_status(ctx.list_blobs(ctx.container(), maxresults="0"), 400)


@check("list-blobs.maxresults-above-limit", LIST, "maxresults=10000 is accepted (capped at 5,000)")
def _lb_max_big(ctx: CheckContext) -> None:
    root = _list(ctx, _tree(ctx, ["one"]), maxresults="10000")
    ctx.expect("names", ["one"], _entries(root))


@check("list-blobs.special-names-xml", LIST, "names with & < > ' \" are XML-escaped correctly")
def _lb_escape(ctx: CheckContext) -> None:
    names = ["a&b", "c<d>", "e'f\"g"]
    root = _list(ctx, _tree(ctx, names))
    ctx.expect("names", sorted(names), _entries(root))


# ---- Delimiter -----------------------------------------------------------------------------------


@check("delimiter.top-level", DELIM, "delimiter=/ at the root: blobs and BlobPrefix entries")
def _d_top(ctx: CheckContext) -> None:
    root = _list(ctx, _tree(ctx), delimiter="/")
    ctx.expect("entries", ["a.txt", "P:d1/", "P:e/", "z"], _entries(root))


@check("delimiter.nested", DELIM, "prefix=d1/ delimiter=/: d1/x.bin plus d1/d2/ and d1/d3/")
def _d_nested(ctx: CheckContext) -> None:
    root = _list(ctx, _tree(ctx), prefix="d1/", delimiter="/")
    ctx.expect("entries", ["P:d1/d2/", "P:d1/d3/", "d1/x.bin"], _entries(root))


@check("delimiter.deepest", DELIM, "prefix=d1/d2/ delimiter=/: only the leaf blobs")
def _d_deep(ctx: CheckContext) -> None:
    root = _list(ctx, _tree(ctx), prefix="d1/d2/", delimiter="/")
    ctx.expect("entries", ["d1/d2/y.bin", "d1/d2/z.bin"], _entries(root))


@check("delimiter.blob-prefix-shape", DELIM, "<BlobPrefix> holds exactly one <Name>")
def _d_shape(ctx: CheckContext) -> None:
    root = _list(ctx, _tree(ctx), delimiter="/")
    ctx.expect("children", ["Name"], children(root.find("Blobs/BlobPrefix")))


@check("delimiter.partial-prefix", DELIM, "prefix=d delimiter=/ groups d1/ (prefix not at a '/')")
def _d_partial(ctx: CheckContext) -> None:
    root = _list(ctx, _tree(ctx), prefix="d", delimiter="/")
    ctx.expect("entries", ["P:d1/"], _entries(root))


@check(
    "delimiter.trailing-slash-blob",
    DELIM,
    "prefix=dir/ lists a blob named 'dir/' itself (object stores) and the blobs under it",
)
def _d_trailing(ctx: CheckContext) -> None:
    # A file-tree target refuses names ending in '/' (names.trailing-slash), so only 'dir/f'.
    names = ["dir/f"] if ctx.capabilities.get("file_tree_names") else ["dir/", "dir/f"]
    root = _list(ctx, _tree(ctx, names), prefix="dir/", delimiter="/")
    ctx.expect("entries", names, _entries(root))


@check("delimiter.other-character", DELIM, "a delimiter other than '/' (here '-') groups names")
def _d_dash(ctx: CheckContext) -> None:
    root = _list(ctx, _tree(ctx, ["x-1", "x-2", "y"]), delimiter="-")
    ctx.expect("entries", ["P:x-", "y"], _entries(root))


@check(
    "delimiter.with-metadata",
    DELIM,
    "delimiter=/&include=metadata (AzCopy's listing) -> blobs carry <Metadata>",
)
def _d_meta(ctx: CheckContext) -> None:
    ct = ctx.container()
    ctx.put_blob(ct, "top", b"x", {"x-ms-meta-k": "v"})
    ctx.put_blob(ct, "sub/f", b"y")
    root = _list(ctx, ct, delimiter="/", include="metadata")
    ctx.expect("entries", ["P:sub/", "top"], _entries(root))
    ctx.expect("metadata", "v", root.findtext("Blobs/Blob/Metadata/k"))


# ---- Pagination ----------------------------------------------------------------------------------


def _all_pages(ctx: CheckContext, ct: str, **params: str) -> tuple[list[list[str]], list[str]]:
    pages: list[list[str]] = []
    markers: list[str] = []
    marker = ""
    for _ in range(50):
        root = _list(ctx, ct, **params, **({"marker": marker} if marker else {}))
        pages.append(_entries(root))
        marker = root.findtext("NextMarker") or ""
        markers.append(marker)
        if not marker:
            break
    return pages, markers


@check("pagination.maxresults", PAGES, "maxresults=3 over 7 blobs -> pages of 3, 3, 1")
def _p_sizes(ctx: CheckContext) -> None:
    pages, _ = _all_pages(ctx, _tree(ctx), maxresults="3")
    ctx.expect("page sizes", [3, 3, 1], [len(p) for p in pages])


@check("pagination.complete", PAGES, "following NextMarker lists every blob exactly once, in order")
def _p_complete(ctx: CheckContext) -> None:
    pages, _ = _all_pages(ctx, _tree(ctx), maxresults="2")
    ctx.expect("names", sorted(TREE), [n for p in pages for n in p])


@check("pagination.next-marker", PAGES, "a full page has a non-empty NextMarker; the last is empty")
def _p_markers(ctx: CheckContext) -> None:
    _, markers = _all_pages(ctx, _tree(ctx), maxresults="3")
    ctx.expect("markers", [True, True, False], [bool(m) for m in markers])


@check("pagination.marker-echo", PAGES, "a request with marker echoes it in <Marker>")
def _p_echo(ctx: CheckContext) -> None:
    ct = _tree(ctx)
    marker = _list(ctx, ct, maxresults="2").findtext("NextMarker") or ""
    root = _list(ctx, ct, maxresults="2", marker=marker)
    ctx.expect("Marker", marker, root.findtext("Marker"))


@check("pagination.exact-fit", PAGES, "maxresults equal to the count -> empty NextMarker")
def _p_exact(ctx: CheckContext) -> None:
    pages, markers = _all_pages(ctx, _tree(ctx), maxresults=str(len(TREE)))
    ctx.expect("pages / last marker", (1, ""), (len(pages), markers[-1]))


@check("pagination.with-prefix", PAGES, "pages stay within the prefix")
def _p_prefix(ctx: CheckContext) -> None:
    pages, _ = _all_pages(ctx, _tree(ctx), prefix="d1/", maxresults="1")
    ctx.expect(
        "names",
        ["d1/d2/y.bin", "d1/d2/z.bin", "d1/d3/w.bin", "d1/x.bin"],
        [n for p in pages for n in p],
    )


@check(
    "pagination.with-delimiter",
    PAGES,
    "delimiter pages: BlobPrefix entries count toward maxresults and are not repeated",
)
def _p_delim(ctx: CheckContext) -> None:
    pages, _ = _all_pages(ctx, _tree(ctx), delimiter="/", maxresults="1")
    ctx.expect("entries", ["a.txt", "P:d1/", "P:e/", "z"], [n for p in pages for n in p])


@check("pagination.nested-delimiter", PAGES, "prefix=d1/ delimiter=/ maxresults=1 across markers")
def _p_nested(ctx: CheckContext) -> None:
    pages, _ = _all_pages(ctx, _tree(ctx), prefix="d1/", delimiter="/", maxresults="1")
    ctx.expect("entries", ["P:d1/d2/", "P:d1/d3/", "d1/x.bin"], [n for p in pages for n in p])


@check("pagination.unicode-names", PAGES, "markers work across non-ASCII names")
def _p_unicode(ctx: CheckContext) -> None:
    names = ["ä", "b", "ö", "z", "日本"]
    pages, _ = _all_pages(ctx, _tree(ctx, names), maxresults="2")
    ctx.expect("names", sorted(names), [n for p in pages for n in p])


@check(
    "pagination.insert-behind-marker",
    PAGES,
    "a blob added after the marker position shows up on a later page",
)
def _p_insert(ctx: CheckContext) -> None:
    ct = _tree(ctx, ["a", "c", "e"])
    root = _list(ctx, ct, maxresults="1")
    marker = root.findtext("NextMarker") or ""
    ctx.put_blob(ct, "d", b"d")
    rest: list[str] = []
    while marker:
        page = _list(ctx, ct, maxresults="1", marker=marker)
        rest += _entries(page)
        marker = page.findtext("NextMarker") or ""
    ctx.expect("names", ["a", "c", "d", "e"], _entries(root) + rest)


@check(
    "list-blobs.include-uncommittedblobs",
    LIST,
    "include=uncommittedblobs also lists a blob with only staged blocks, Content-Length 0; "
    "without it the blob is absent",
)
def _lb_uncommitted(ctx: CheckContext) -> None:
    # Azure's List Blobs reference: uncommittedblobs "specifies that blobs for which blocks have
    # been uploaded, but which have not been committed by using Put Block List, be included".
    # Such a blob has no committed bytes yet: Content-Length 0 (Azurite 3.37 answers the same;
    # it fails only the last expectation, listing every BlobPrefix before the blobs).
    ct = _tree(ctx, ["a", "z"])
    ctx.expect_status(ctx.put_block(ct, "m/staged", "AAAA", b"block"), 201, "put block status")
    ctx.expect("default listing", ["a", "z"], _entries(_list(ctx, ct)))
    root = _list(ctx, ct, include="uncommittedblobs")
    ctx.expect("with uncommittedblobs", ["a", "m/staged", "z"], _entries(root))
    staged = [b for b in root.iterfind("Blobs/Blob") if b.findtext("Name") == "m/staged"]
    ctx.expect(
        "Content-Length",
        "0",
        staged[0].findtext("Properties/Content-Length") if staged else None,
    )
    folded = _list(ctx, ct, include="uncommittedblobs", delimiter="/")
    ctx.expect("with delimiter=/", ["a", "P:m/", "z"], _entries(folded))

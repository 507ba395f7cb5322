"""Fidelity semantics (issue 17): behaviours other SDKs and tools expect of Azure beyond the
lab's first reading of the contract. Each check names where Azure's behaviour is written down."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from harness.conformance.framework import CheckContext, check, http_date

PROPS = "Blob Properties"
CONTAINER = "Container Conditions"
READS = "Conditional Reads"
TYPES = "Blob Types"
SERVICE = "Service Stats"


@check(
    "fidelity.set-blob-properties.clears-unsent",
    PROPS,
    "Set Blob Properties clears every content header not sent, Content-Type included",
)
def _clears_unsent(ctx: CheckContext) -> None:
    # REST "Set Blob Properties": each x-ms-blob-content-* / cache-control "isn't specified with
    # the request, it's cleared for the blob"; the JavaScript SDK's setHTTPHeaders({}) test
    # expects no contentType afterwards.
    ct = ctx.container()
    ctx.put_blob(
        ct,
        "blob",
        b"abc",
        {"Content-Type": "text/plain", "Content-Language": "en", "Content-Encoding": "gzip"},
    )
    resp = ctx.http.request(
        "PUT",
        ct,
        "blob",
        query={"comp": "properties"},
        headers={"x-ms-blob-cache-control": "max-age=5"},
    )
    ctx.expect_status(resp, 200, "set blob properties")
    head = ctx.head(ct, "blob")
    ctx.expect_header(head, "cache-control", "max-age=5")
    for name in ("content-type", "content-language", "content-encoding"):
        ctx.expect(f"{name} after the set", None, head.header(name))
    listed = ET.fromstring(ctx.list_blobs(ct).body)
    ctx.expect("listed Content-Type", "", listed.findtext("Blobs/Blob/Properties/Content-Type"))


# "Specifying conditional headers for Blob service operations" and the REST pages of Set
# Container Metadata (If-Modified-Since) and Delete Container (If-Modified-Since,
# If-Unmodified-Since): a condition that does not hold answers 412 ConditionNotMet.
@check(
    "fidelity.container.set-metadata-if-modified-since",
    CONTAINER,
    "Set Container Metadata with If-Modified-Since after its Last-Modified -> 412, unchanged",
)
def _ct_meta_ims(ctx: CheckContext) -> None:
    ct = ctx.container(**{"x-ms-meta-k": "old"})
    resp = ctx.http.request(
        "PUT",
        ct,
        query={"restype": "container", "comp": "metadata"},
        headers={"If-Modified-Since": http_date(3600), "x-ms-meta-k": "new"},
    )
    ctx.expect_error(resp, 412, "ConditionNotMet")
    meta = ctx.http.request("GET", ct, query={"restype": "container", "comp": "metadata"})
    ctx.expect_header(meta, "x-ms-meta-k", "old")


@check(
    "fidelity.container.delete-if-unmodified-since",
    CONTAINER,
    "Delete Container with If-Unmodified-Since before its Last-Modified -> 412, not deleted",
)
def _ct_delete_ius(ctx: CheckContext) -> None:
    ct = ctx.container()
    resp = ctx.http.request(
        "DELETE",
        ct,
        query={"restype": "container"},
        headers={"If-Unmodified-Since": http_date(-3600)},
    )
    ctx.expect_error(resp, 412, "ConditionNotMet")
    ctx.expect_status(ctx.head(ct), 200, "container still there")
    resp = ctx.http.request(
        "DELETE",
        ct,
        query={"restype": "container"},
        headers={"If-Unmodified-Since": http_date(3600)},
    )
    ctx.expect_status(resp, 202, "deleted when the condition holds")


@check(
    "fidelity.read.if-none-match-star",
    READS,
    "Get Blob / Get Blob Properties with If-None-Match: * -> 400 UnsatisfiableCondition",
)
def _inm_star(ctx: CheckContext) -> None:
    # Azurite's ReadConditionalHeadersValidator ("The request includes an unsatisfiable
    # condition for this operation.") and the JavaScript SDK's tests: 400 for reads, existing
    # blob or not; a write with If-None-Match: * keeps meaning "create only".
    ct = ctx.container()
    ctx.put_blob(ct, "blob", b"x")
    ctx.expect_error(ctx.get(ct, "blob", **{"If-None-Match": "*"}), 400, "UnsatisfiableCondition")
    ctx.expect_error(
        ctx.head(ct, "blob", **{"If-None-Match": "*"}), 400, "UnsatisfiableCondition", "HEAD"
    )


@check(
    "fidelity.blob-type.page-append",
    TYPES,
    "Put Blob of a page or append blob -> 400 BlobTypeNotSupported, nothing created",
)
def _blob_types(ctx: CheckContext) -> None:
    # Azure's answer on an account kind without that blob type: "400 BlobTypeNotSupported: Page
    # blob is not supported for this account type." (Azure/azure-diagnostics-tools#78; block
    # blobs on a premium page-blob account: Azure/azure-sdk-for-java#27282).
    ct = ctx.container()
    for kind in ("PageBlob", "AppendBlob"):
        resp = ctx.http.request(
            "PUT", ct, "blob", headers={"x-ms-blob-type": kind, "x-ms-blob-content-length": "512"}
        )
        ctx.expect_error(resp, 400, "BlobTypeNotSupported", kind)
    ctx.expect_error(ctx.head(ct, "blob"), 404, "BlobNotFound", "nothing created")


@check(
    "fidelity.service-stats.primary",
    SERVICE,
    "Get Blob Service Stats on the primary endpoint -> 400 with an error code, not 501",
)
def _stats_primary(ctx: CheckContext) -> None:
    # REST "Get Blob Service Stats": "available only on the secondary location endpoint";
    # Azurite answers a primary 400 InvalidQueryParameterValue.
    resp = ctx.http.request("GET", query={"restype": "service", "comp": "stats"})
    ctx.expect_error(resp, 400, "InvalidQueryParameterValue")

"""Fidelity semantics: behaviours other SDKs and tools expect of Azure beyond the
lab's first reading of the contract. Each check names where Azure's behaviour is written down."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from harness.conformance.framework import CheckContext, check, http_date
from harness.signing import generate_service_sas

PROPS = "Blob Properties"
CONTAINER = "Container Conditions"
READS = "Conditional Reads"
TYPES = "Blob Types"
SERVICE = "Service Stats"
NAMES = "Blob Names"
SYSTEM = "System Containers"
COPY = "Copy Blob"
LIST = "List Blobs"


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


@check(
    "fidelity.names.backslash-is-slash",
    NAMES,
    "a blob put as a\\b.txt is listed under the prefix a/ and read as a/b.txt",
)
def _backslash(ctx: CheckContext) -> None:
    # Azure treats '\' in a blob name as '/' ("Naming and Referencing Containers, Blobs, and
    # Metadata" warns against it; rclone's author: "Backslash '\' - Azure converts this to
    # forward slash '/'").
    ct = ctx.container()
    ctx.put_blob(ct, "a\\b.txt", b"bytes")
    listed = ET.fromstring(ctx.list_blobs(ct, prefix="a/").body)
    ctx.expect("names under a/", ["a/b.txt"], [n.text for n in listed.iter("Name")])
    ctx.expect("bytes of a/b.txt", b"bytes", ctx.get(ct, "a/b.txt").body)


@check(
    "fidelity.system-containers.logs-absent",
    SYSTEM,
    "$logs (absent) -> 404 ContainerNotFound, not 400 InvalidResourceName",
)
def _logs_absent(ctx: CheckContext) -> None:
    # $logs is Storage Analytics' container (REST "Naming and Referencing Containers ...";
    # Azurite skips name validation for every '$' name): a name the service knows, so a request
    # for it while it does not exist is a 404.
    head = ctx.head("$logs")
    if head.status == 200:
        ctx.skip("the target has a $logs container (Storage Analytics logging is on)")
    ctx.expect_error(head, 404, "ContainerNotFound", "Get Container Properties")
    resp = ctx.http.request("GET", "$logs", query={"restype": "container", "comp": "list"})
    ctx.expect_error(resp, 404, "ContainerNotFound", "List Blobs")


@check(
    "fidelity.system-containers.root-addressing",
    SYSTEM,
    "a blob of $root is addressed at the account root: /<account>/<blob>",
)
def _root_addressing(ctx: CheckContext) -> None:
    # REST "Working with the root container": "A blob stored in the root container may be
    # addressed without referencing the root container name".
    created = ctx.http.request("PUT", "$root", query={"restype": "container"})
    ctx.expect_true(
        "create $root", created.status in (201, 409), "201 (or 409 if it exists)", created.status
    )
    if created.status == 201:
        ctx.containers.append("$root")
    name = f"cf-root-{ctx.run_id}.txt"
    resp = ctx.http.request(
        "PUT", name, body=b"root bytes", headers={"x-ms-blob-type": "BlockBlob"}
    )
    ctx.expect_status(resp, 201, "Put Blob at the account root")
    ctx.expect("bytes via $root", b"root bytes", ctx.get("$root", name).body)
    ctx.expect("bytes at the root", b"root bytes", ctx.http.request("GET", name).body)
    ctx.expect_status(ctx.http.request("DELETE", name), 202, "Delete Blob at the account root")


def _same_account_copy(ctx: CheckContext, data: bytes) -> tuple[str, object]:
    ct = ctx.container()
    ctx.put_blob(ct, "src.bin", data)
    sas = generate_service_sas(
        ctx.account,
        ctx.key,
        container=ct,
        blob="src.bin",
        permissions="r",
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    url = ctx.http.url(ctx.http.path(ct, "src.bin")) + "?" + sas
    return ct, ctx.http.request("PUT", ct, "dst.bin", headers={"x-ms-copy-source": url})


@check(
    "fidelity.copy-blob.same-account-success",
    COPY,
    "a small same-account Copy Blob answers x-ms-copy-status: success at once, with its id",
)
def _copy_success(ctx: CheckContext) -> None:
    # REST "Copy Blob": x-ms-copy-status "success: The copy completed successfully" in the
    # response itself; Azure completes small copies within an account synchronously, and the
    # JavaScript SDK's beginCopyFromURL poller expects it.
    data = b"copy me" * 100
    ct, resp = _same_account_copy(ctx, data)
    ctx.expect_status(resp, 202)
    ctx.expect_header(resp, "x-ms-copy-id")
    ctx.expect_header(resp, "x-ms-copy-status", "success")
    ctx.expect("bytes", data, ctx.get(ct, "dst.bin").body)


@check(
    "fidelity.list-blobs.include-copy",
    LIST,
    "include=copy lists CopyId, CopyStatus, CopySource, CopyProgress, CopyCompletionTime",
)
def _include_copy(ctx: CheckContext) -> None:
    # REST "List Blobs": with include=copy the Properties carry the copy elements of the last
    # Copy Blob into the blob (BlobPropertiesInternal in azure-storage-blob's generated models).
    data = b"x" * 1000
    ct, resp = _same_account_copy(ctx, data)
    copy_id = resp.header("x-ms-copy-id")
    body = ctx.list_blobs(ct, prefix="dst", include="copy").body
    props = ET.fromstring(body).find("Blobs/Blob/Properties")
    ctx.expect_true("Properties", props is not None, "present", body[:160])
    assert props is not None
    ctx.expect("CopyId", copy_id, props.findtext("CopyId"))
    ctx.expect("CopyStatus", "success", props.findtext("CopyStatus"))
    ctx.expect("CopyProgress", "1000/1000", props.findtext("CopyProgress"))
    source = props.findtext("CopySource") or ""
    ctx.expect_true("CopySource", "/src.bin" in source, ".../src.bin", source)
    ctx.expect_true(
        "CopyCompletionTime",
        bool(props.findtext("CopyCompletionTime")),
        "a date",
        props.findtext("CopyCompletionTime"),
    )


@check(
    "fidelity.list-blobs.empty-metadata-element",
    LIST,
    "include=metadata: a blob without metadata has an empty <Metadata />, as Azure sends it",
)
def _empty_metadata(ctx: CheckContext) -> None:
    # Azure sends <Metadata /> for such a blob (responses of a real account in
    # azure-sdk-for-java's azure-xml DeserializeListBlobsTests.metadataListing); Azurite leaves
    # it out. The Python SDK turns the empty element into metadata=None, a missing one into {}.
    ct = ctx.container()
    ctx.put_blob(ct, "bare", b"x")
    blob = ET.fromstring(ctx.list_blobs(ct, include="metadata").body).find("Blobs/Blob")
    meta = blob.find("Metadata") if blob is not None else None
    ctx.expect(
        "Metadata element",
        "empty",
        "missing" if meta is None else ("empty" if len(meta) == 0 else "not empty"),
    )


@check(
    "fidelity.list-blobs.marker-after-changes",
    LIST,
    "a NextMarker continues after adds and deletes: none listed twice, none skipped",
)
def _marker_after_changes(ctx: CheckContext) -> None:
    # REST "List Blobs": NextMarker is opaque and "the marker value ... continues the listing";
    # a continuation lists what sorts after the marker at the time of the next call.
    ct = ctx.container()
    names = [f"d{i % 3}/b{i:02d}" for i in range(9)]
    for name in names:
        ctx.put_blob(ct, name, b"x")
    first = ET.fromstring(ctx.list_blobs(ct, maxresults="4").body)
    page1 = [n.text or "" for n in first.iter("Name")]
    marker = first.findtext("NextMarker") or ""
    ctx.expect("first page", sorted(names)[:4], page1)
    rest = sorted(names)[4:]
    ctx.http.request("DELETE", ct, rest[0])
    ctx.put_blob(ct, "a-before", b"x")
    ctx.put_blob(ct, page1[-1] + "x", b"x")
    seen: list[str] = []
    for _ in range(10):  # 8 names left at most, pages of 4
        if not marker:
            break
        page = ET.fromstring(ctx.list_blobs(ct, maxresults="4", marker=marker).body)
        seen += [n.text or "" for n in page.iter("Name")]
        marker = page.findtext("NextMarker") or ""
    ctx.expect("continued listing", sorted([*rest[1:], page1[-1] + "x"]), seen)

"""Fidelity semantics (issue 17): behaviours other SDKs and tools expect of Azure beyond the
lab's first reading of the contract. Each check names where Azure's behaviour is written down."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from harness.conformance.framework import CheckContext, check

PROPS = "Blob Properties"


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

"""List Blobs / List Containers: exact XML shape, order of full names, delimiter, pagination."""

from __future__ import annotations

import pytest
from facade_raw import Raw

BLOB_PROPERTY_ORDER = [
    "Creation-Time",
    "Last-Modified",
    "Etag",
    "Content-Length",
    "Content-Type",
    "Content-Encoding",
    "Content-Language",
    "Content-CRC64",
    "Content-MD5",
    "Cache-Control",
    "Content-Disposition",
    "BlobType",
    "AccessTier",
    "AccessTierInferred",
    "LeaseStatus",
    "LeaseState",
    "ServerEncrypted",
]


def list_blobs(raw: Raw, container: str, **query: str):
    r = raw.request("GET", container, query={"restype": "container", "comp": "list", **query})
    assert r.status == 200, r.body
    return r.xml()


def names(root) -> list[str]:
    return [el.findtext("Name") for el in root.find("Blobs")]


@pytest.fixture
def tree(raw: Raw, container: str) -> str:
    for name in ["a/b", "a-b", "a.b", "a/c/d", "a/c/e", "b", "z/y/x"]:
        assert raw.put_blob(container, name, name.encode(), **{"x-ms-meta-src": "t"}).status == 201
    return container


def test_flat_listing_is_in_full_name_order(raw: Raw, tree: str) -> None:
    root = list_blobs(raw, tree)
    assert names(root) == ["a-b", "a.b", "a/b", "a/c/d", "a/c/e", "b", "z/y/x"]


def test_list_blobs_xml_shape(raw: Raw, tree: str) -> None:
    root = list_blobs(raw, tree, prefix="a", include="metadata", maxresults="10")
    assert root.tag == "EnumerationResults"
    assert root.get("ContainerName") == tree
    assert root.get("ServiceEndpoint").endswith(f"/{raw.server.account}/")
    assert [c.tag for c in root] == ["Prefix", "MaxResults", "Blobs", "NextMarker"]
    blob = root.find("Blobs")[0]
    assert [c.tag for c in blob] == ["Name", "Properties", "Metadata"]
    props = blob.find("Properties")
    assert [c.tag for c in props] == BLOB_PROPERTY_ORDER
    assert props.findtext("Content-Length") == str(len(blob.findtext("Name")))
    assert props.findtext("BlobType") == "BlockBlob"
    assert props.findtext("Content-MD5")
    assert props.findtext("Last-Modified").endswith(" GMT")
    assert blob.find("Metadata").findtext("src") == "t"
    assert root.findtext("NextMarker") == ""


def test_delimiter_gives_blob_prefixes(raw: Raw, tree: str) -> None:
    root = list_blobs(raw, tree, delimiter="/")
    items = [(el.tag, el.findtext("Name")) for el in root.find("Blobs")]
    assert items == [
        ("Blob", "a-b"),
        ("Blob", "a.b"),
        ("BlobPrefix", "a/"),
        ("Blob", "b"),
        ("BlobPrefix", "z/"),
    ]
    assert root.findtext("Delimiter") == "/"
    nested = list_blobs(raw, tree, delimiter="/", prefix="a/")
    assert [(el.tag, el.findtext("Name")) for el in nested.find("Blobs")] == [
        ("Blob", "a/b"),
        ("BlobPrefix", "a/c/"),
    ]
    other = list_blobs(raw, tree, delimiter="-")
    assert [el.findtext("Name") for el in other.find("Blobs")][:1] == ["a-"]


@pytest.mark.parametrize("delimiter", [None, "/"])
def test_pagination_with_markers(raw: Raw, tree: str, delimiter: str | None) -> None:
    extra = {"delimiter": delimiter} if delimiter else {}
    seen, marker, pages = [], None, 0
    while True:
        query = {"maxresults": "2", **extra, **({"marker": marker} if marker else {})}
        root = list_blobs(raw, tree, **query)
        seen += names(root)
        pages += 1
        marker = root.findtext("NextMarker")
        if not marker:
            break
    full = names(list_blobs(raw, tree, **extra))
    assert seen == full and pages == (len(full) + 1) // 2


def test_bad_maxresults(raw: Raw, container: str) -> None:
    r = raw.request(
        "GET", container, query={"restype": "container", "comp": "list", "maxresults": "0"}
    )
    assert r.status == 400 and r.error_code == "OutOfRangeQueryParameterValue"


def test_list_containers(raw: Raw) -> None:
    made = sorted(raw.create_container(f"lc-{i}-x") for i in range(3))
    raw.request(
        "PUT",
        made[0],
        query={"restype": "container", "comp": "metadata"},
        headers={"x-ms-meta-team": "ml"},
    )
    r = raw.request(
        "GET", query={"comp": "list", "prefix": "lc-", "include": "metadata", "maxresults": "2"}
    )
    root = r.xml()
    assert [c.tag for c in root] == ["Prefix", "MaxResults", "Containers", "NextMarker"]
    first = [c.findtext("Name") for c in root.find("Containers")]
    assert first == made[:2]
    assert root.find("Containers")[0].find("Metadata").findtext("team") == "ml"
    props = root.find("Containers")[0].find("Properties")
    assert [c.tag for c in props][:2] == ["Last-Modified", "Etag"]
    r2 = raw.request(
        "GET", query={"comp": "list", "prefix": "lc-", "marker": root.findtext("NextMarker")}
    )
    assert [c.findtext("Name") for c in r2.xml().find("Containers")] == made[2:]
    assert r2.xml().findtext("NextMarker") == ""


def test_container_lifecycle(raw: Raw) -> None:
    name = raw.create_container("life-cycle")
    again = raw.request("PUT", name, query={"restype": "container"})
    assert again.status == 409 and again.error_code == "ContainerAlreadyExists"
    head = raw.request("HEAD", name, query={"restype": "container"})
    assert head.status == 200 and head.headers["etag"].startswith('"')
    raw.put_blob(name, "x/y", b"1")
    assert raw.request("DELETE", name, query={"restype": "container"}).status == 202
    gone = raw.request("GET", name, query={"restype": "container"})
    assert gone.status == 404 and gone.error_code == "ContainerNotFound"
    bad = raw.request("PUT", "Bad_Name", query={"restype": "container"})
    assert bad.status == 400 and bad.error_code == "InvalidResourceName"


def test_service_properties_and_account_info(raw: Raw, container: str) -> None:
    for path_kwargs in ({}, {"container": container}, {"container": container, "blob": "b"}):
        r = raw.request("GET", **path_kwargs, query={"restype": "account", "comp": "properties"})
        assert r.status == 200
        assert r.headers["x-ms-sku-name"] and r.headers["x-ms-account-kind"] == "StorageV2"
    props = raw.request("GET", query={"restype": "service", "comp": "properties"})
    assert props.status == 200 and props.xml().tag == "StorageServiceProperties"
    body = (
        b'<?xml version="1.0" encoding="utf-8"?><StorageServiceProperties>'
        b"<DefaultServiceVersion>2021-08-06</DefaultServiceVersion></StorageServiceProperties>"
    )
    r = raw.request("PUT", query={"restype": "service", "comp": "properties"}, body=body)
    assert r.status == 202
    back = raw.request("GET", query={"restype": "service", "comp": "properties"})
    assert back.xml().findtext("DefaultServiceVersion") == "2021-08-06"


def test_include_uncommittedblobs_lists_blobs_with_only_staged_blocks(
    raw: Raw, container: str
) -> None:
    raw.put_blob(container, "a", b"committed")
    staged = {"comp": "block", "blockid": "QUFBQQ=="}
    assert raw.request("PUT", container, "m/up", query=staged, body=b"12345").status == 201
    assert raw.request("PUT", container, "a", query=staged, body=b"x").status == 201
    assert names(list_blobs(raw, container)) == ["a"]
    root = list_blobs(raw, container, include="uncommittedblobs,metadata")
    assert names(root) == ["a", "m/up"]  # "a" once: its committed version
    a, up = root.find("Blobs")
    assert a.find("Properties").findtext("Content-Length") == "9"
    props = up.find("Properties")
    assert [c.tag for c in props] == BLOB_PROPERTY_ORDER
    assert props.findtext("Content-Length") == "0" and props.findtext("BlobType") == "BlockBlob"
    assert props.findtext("Etag").startswith("0x") and up.find("Metadata") is not None
    folded = list_blobs(raw, container, include="uncommittedblobs", delimiter="/")
    assert [(el.tag, el.findtext("Name")) for el in folded.find("Blobs")] == [
        ("Blob", "a"),
        ("BlobPrefix", "m/"),
    ]
    first = list_blobs(raw, container, include="uncommittedblobs", maxresults="1")
    rest = list_blobs(
        raw, container, include="uncommittedblobs", marker=first.findtext("NextMarker")
    )
    assert names(first) + names(rest) == ["a", "m/up"]
    body = b"<BlockList><Latest>QUFBQQ==</Latest></BlockList>"
    assert (
        raw.request("PUT", container, "m/up", query={"comp": "blocklist"}, body=body).status == 201
    )
    after = list_blobs(raw, container, include="uncommittedblobs")
    assert names(after) == ["a", "m/up"]
    assert after.find("Blobs")[1].find("Properties").findtext("Content-Length") == "5"


def test_each_listed_blob_gets_its_own_properties() -> None:
    """Properties are copied from one template per blob: one blob's values (or copy state)
    never show up in the next one's, nor in a later listing."""
    from lxml import etree

    from reference_server.store import BlobProps, ContentSettings
    from reference_server.xmlbody import list_blobs_body

    first = BlobProps(
        "a", 3, "0x1", 1.7e9, 1.7e9, ContentSettings(content_type="text/plain"), {}, [],
        {"x-ms-copy-id": "c1", "x-ms-copy-status": "success"},
    )  # fmt: skip
    second = BlobProps("b", 0, "0x2", 1.7e9, 1.7e9, ContentSettings(), {}, [], {})
    for _ in range(2):
        body = list_blobs_body("http://h/acct/", "ct", None, None, None, None, [first, second],
                               None, include_metadata=False, include_copy=True)  # fmt: skip
        a, b = etree.fromstring(body).find("Blobs")
        pa, pb = a.find("Properties"), b.find("Properties")
        assert (pa.findtext("Content-Type"), pb.findtext("Content-Type")) == ("text/plain", "")
        assert pa.findtext("CopyId") == "c1" and pb.find("CopyId") is None
        assert [c.tag for c in pb] == BLOB_PROPERTY_ORDER
        assert [c.tag for c in pa][-1] == "ServerEncrypted"

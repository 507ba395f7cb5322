"""Fidelity semantics: behaviours other SDKs and tools expect of Azure (issue 17), one test per
item, each on the wire: status codes, error codes, headers, XML fields and bytes."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from email.utils import formatdate
from urllib.parse import parse_qs, urlsplit

from facade_raw import Raw


def _props(raw: Raw, container: str, blob: str, **headers: str):
    return raw.request("PUT", container, blob, query={"comp": "properties"}, headers=headers)


def test_set_blob_properties_clears_every_content_header_not_sent(raw: Raw, container: str) -> None:
    put = raw.put_blob(
        container,
        "p",
        b"abc",
        **{
            "Content-Type": "text/plain",
            "Content-Encoding": "gzip",
            "Content-Language": "en",
            "Cache-Control": "no-cache",
            "Content-Disposition": "inline",
        },
    )
    assert put.status == 201
    assert _props(raw, container, "p", **{"x-ms-blob-cache-control": "max-age=5"}).status == 200
    head = raw.request("HEAD", container, "p")
    assert head.status == 200 and head.headers["cache-control"] == "max-age=5"
    for name in ("content-type", "content-encoding", "content-language", "content-disposition"):
        assert name not in head.headers, (name, head.headers.get(name))
    assert "content-md5" not in head.headers  # cleared too: it was not sent
    assert raw.request("GET", container, "p").body == b"abc"
    listed = raw.request("GET", container, query={"restype": "container", "comp": "list"})
    props = ET.fromstring(listed.body).find("Blobs/Blob/Properties")
    assert props is not None and (props.findtext("Content-Type") or "") == ""
    assert props.findtext("Cache-Control") == "max-age=5"


def _date(offset_s: float) -> str:
    return formatdate(time.time() + offset_s, usegmt=True)


def test_container_writes_honour_date_conditions(raw: Raw, container: str) -> None:
    ct = {"restype": "container"}
    future, past = _date(3600), _date(-3600)
    meta = {**ct, "comp": "metadata"}
    r = raw.request("PUT", container, query=meta, headers={"If-Modified-Since": future})
    assert (r.status, r.error_code) == (412, "ConditionNotMet")
    r = raw.request(
        "PUT", container, query=meta, headers={"If-Modified-Since": past, "x-ms-meta-k": "v"}
    )
    assert r.status == 200
    assert raw.request("GET", container, query=meta).headers["x-ms-meta-k"] == "v"
    r = raw.request("DELETE", container, query=ct, headers={"If-Unmodified-Since": past})
    assert (r.status, r.error_code) == (412, "ConditionNotMet")
    assert raw.request("HEAD", container, query=ct).status == 200  # still there
    r = raw.request("DELETE", container, query=ct, headers={"If-Modified-Since": future})
    assert (r.status, r.error_code) == (412, "ConditionNotMet")
    assert (
        raw.request("DELETE", container, query=ct, headers={"If-Unmodified-Since": future}).status
        == 202
    )


def test_if_none_match_star_on_reads_is_unsatisfiable(raw: Raw, container: str) -> None:
    raw.put_blob(container, "b", b"data")
    star = {"If-None-Match": "*"}
    for method, query in (("GET", None), ("HEAD", None), ("GET", {"comp": "metadata"})):
        r = raw.request(method, container, "b", query=query, headers=star)
        assert (r.status, r.error_code) == (400, "UnsatisfiableCondition"), (method, query)
    r = raw.request("GET", container, "absent", headers=star)
    assert (r.status, r.error_code) == (400, "UnsatisfiableCondition")
    assert b"<Code>UnsatisfiableCondition</Code>" in r.body
    # writes keep "only if absent": 409 on an existing blob, 201 on a new name
    assert raw.put_blob(container, "b", b"x", **star).status == 409
    assert raw.put_blob(container, "new", b"x", **star).status == 201
    assert raw.request("GET", container, "b").body == b"data"


def test_page_and_append_blobs_get_azures_account_type_answer(raw: Raw, container: str) -> None:
    for kind, text in (("PageBlob", b"Page blob"), ("AppendBlob", b"Append blob")):
        r = raw.request(
            "PUT",
            container,
            "b",
            headers={"x-ms-blob-type": kind, "x-ms-blob-content-length": "512"},
        )
        assert (r.status, r.error_code) == (400, "BlobTypeNotSupported") and text in r.body
    r = raw.put_blob(container, "b", b"", **{"x-ms-blob-type": "Folder"})
    assert (r.status, r.error_code) == (400, "InvalidHeaderValue")
    assert raw.request("HEAD", container, "b").status == 404


def test_service_stats_on_the_primary_is_refused_as_azure(raw: Raw) -> None:
    r = raw.request("GET", query={"restype": "service", "comp": "stats"})
    assert (r.status, r.error_code) == (400, "InvalidQueryParameterValue")
    root = ET.fromstring(r.body)
    assert (root.findtext("QueryParameterName"), root.findtext("QueryParameterValue")) == (
        "comp",
        "stats",
    )


def _names(raw: Raw, container: str, **params: str) -> list[str]:
    r = raw.request("GET", container, query={"restype": "container", "comp": "list", **params})
    assert r.status == 200, r.body
    return [n.text or "" for n in ET.fromstring(r.body).iter("Name")]


def test_backslash_in_a_blob_name_is_a_slash(raw: Raw, container: str) -> None:
    assert raw.put_blob(container, "a\\b.txt", b"one").status == 201  # sent as a%5Cb.txt
    literal = raw.request(
        "PUT",
        raw_path=raw.path(container) + "/c\\d.txt",
        body=b"two",
        headers={"x-ms-blob-type": "BlockBlob"},
    )
    assert literal.status == 201, literal.body
    assert _names(raw, container, prefix="a/") == ["a/b.txt"]
    assert _names(raw, container, prefix="c/") == ["c/d.txt"]
    assert raw.request("GET", container, "a/b.txt").body == b"one"
    assert raw.request("GET", container, "c/d.txt").body == b"two"
    assert raw.request("GET", container, "a\\b.txt").body == b"one"  # either spelling reads it


def test_system_containers_are_absent_not_invalid(raw: Raw) -> None:
    for name in ("$logs", "$blobchangefeed", "$web"):
        head = raw.request("HEAD", name, query={"restype": "container"})
        assert (head.status, head.error_code) == (404, "ContainerNotFound"), name
        listed = raw.request("GET", name, query={"restype": "container", "comp": "list"})
        assert (listed.status, listed.error_code) == (404, "ContainerNotFound"), name
        blob = raw.request("GET", name, "x.log")
        assert (blob.status, blob.error_code) == (404, "ContainerNotFound"), name
    made = raw.request("PUT", "$logs", query={"restype": "container"})
    assert (made.status, made.error_code) == (400, "InvalidResourceName")
    other = raw.request("HEAD", "$other", query={"restype": "container"})
    assert (other.status, other.error_code) == (400, "InvalidResourceName")


def test_root_container_blobs_are_addressed_at_the_account_root(server) -> None:
    raw = Raw(server)  # a fresh façade: $root is account-wide
    try:
        absent = raw.request("GET", "page.html")
        assert (absent.status, absent.error_code) == (404, "ContainerNotFound")
        assert raw.request("PUT", "$root", query={"restype": "container"}).status == 201
        put = raw.request(
            "PUT", "page.html", body=b"<p>hi</p>", headers={"x-ms-blob-type": "BlockBlob"}
        )
        assert put.status == 201, put.body
        assert raw.request("GET", "$root", "page.html").body == b"<p>hi</p>"
        assert raw.request("GET", "page.html").body == b"<p>hi</p>"
        assert raw.request("HEAD", "page.html").headers["content-length"] == "9"
        assert _names(raw, "$root") == ["page.html"]
        listed = raw.request("GET", query={"comp": "list"})
        assert "$root" in [n.text for n in ET.fromstring(listed.body).iter("Name")]
        nested = raw.put_blob("$root", "a/b", b"x")
        assert (nested.status, nested.error_code) == (400, "InvalidResourceName")
        assert raw.request("DELETE", "page.html").status == 202
        assert raw.request("HEAD", "$root", "page.html").status == 404
        assert (server.data_root / server.account / "$root").is_dir()
    finally:
        raw.close()


def _sas_url(raw: Raw, container: str, blob: str) -> str:
    from datetime import UTC, datetime, timedelta

    from harness.signing import generate_service_sas

    sas = generate_service_sas(
        raw.account,
        raw.key,
        container=container,
        blob=blob,
        permissions="r",
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    return raw.url(raw.path(container, blob)) + "?" + sas


def test_same_account_copy_finishes_at_once_and_lists_its_copy_state(
    raw: Raw, container: str
) -> None:
    data = bytes(range(256)) * 64
    raw.put_blob(container, "src.bin", data)
    url = _sas_url(raw, container, "src.bin")
    signature = parse_qs(urlsplit(url).query)["sig"][0]
    started = raw.request("PUT", container, "dst.bin", headers={"x-ms-copy-source": url})
    assert started.status == 202, started.body
    copy_id = started.headers["x-ms-copy-id"]
    assert started.headers["x-ms-copy-status"] == "success"  # no x-ms-requires-sync sent
    head = raw.request("HEAD", container, "dst.bin")
    assert head.headers["x-ms-copy-status"] == "success" and head.headers["x-ms-copy-id"] == copy_id
    assert raw.request("GET", container, "dst.bin").body == data

    def blob_props(include: str | None) -> ET.Element:
        query = {"restype": "container", "comp": "list", "prefix": "dst"}
        if include:
            query["include"] = include
        body = raw.request("GET", container, query=query).body
        props = ET.fromstring(body).find("Blobs/Blob/Properties")
        assert props is not None
        return props

    props = blob_props("copy,metadata")
    assert props.findtext("CopyId") == copy_id and props.findtext("CopyStatus") == "success"
    assert props.findtext("CopyProgress") == f"{len(data)}/{len(data)}"
    source = props.findtext("CopySource") or ""
    assert "/src.bin" in source and signature not in source  # the signature is not echoed
    assert (props.findtext("CopyCompletionTime") or "").endswith(" GMT")
    tags = [el.tag for el in props]
    assert tags.index("LeaseState") < tags.index("CopyId") < tags.index("ServerEncrypted")
    assert blob_props(None).find("CopyId") is None  # only with include=copy


def test_listing_metadata_of_a_blob_without_metadata_is_an_empty_element(
    raw: Raw, container: str
) -> None:
    raw.put_blob(container, "bare", b"x")
    raw.put_blob(container, "tagged", b"x", **{"x-ms-meta-k": "v"})
    body = raw.request(
        "GET", container, query={"restype": "container", "comp": "list", "include": "metadata"}
    ).body
    blobs = {b.findtext("Name"): b for b in ET.fromstring(body).iter("Blob")}
    bare = blobs["bare"].find("Metadata")
    assert bare is not None and len(bare) == 0  # <Metadata />, as Azure sends it
    assert [(m.tag, m.text) for m in blobs["tagged"].find("Metadata")] == [("k", "v")]
    plain = raw.request("GET", container, query={"restype": "container", "comp": "list"}).body
    assert all(b.find("Metadata") is None for b in ET.fromstring(plain).iter("Blob"))


def test_next_marker_continues_after_blobs_are_added_and_deleted(raw: Raw, container: str) -> None:
    names = [f"d{i % 3}/b{i:02d}" for i in range(12)]
    for name in names:
        raw.put_blob(container, name, b"x")
    first = ET.fromstring(
        raw.request(
            "GET", container, query={"restype": "container", "comp": "list", "maxresults": "5"}
        ).body
    )
    page1 = [n.text for n in first.iter("Name")]
    marker = first.findtext("NextMarker")
    assert page1 == sorted(names)[:5] and marker
    last = page1[-1]
    rest = sorted(names)[5:]
    raw.request("DELETE", container, rest[0])  # a blob after the marker goes away
    raw.put_blob(container, "a-before", b"x")  # sorts before the marker: not listed again
    raw.put_blob(container, last + "x", b"x")  # right after the marker
    raw.put_blob(container, "zz-after", b"x")
    seen: list[str] = []
    while marker:  # bounded: 14 blobs, pages of 5
        page = ET.fromstring(
            raw.request(
                "GET",
                container,
                query={"restype": "container", "comp": "list", "maxresults": "5", "marker": marker},
            ).body
        )
        seen += [n.text or "" for n in page.iter("Name")]
        marker = page.findtext("NextMarker")
        assert len(seen) <= 20
    assert seen == sorted([*rest[1:], last + "x", "zz-after"])
    assert not set(seen) & set(page1)


def test_fidelity_conformance_checks_pass_on_the_reference(tmp_path) -> None:
    from harness.conformance.cli import run_target
    from harness.conformance.framework import PASS

    run = run_target("reference", tmp_path / "reference", only=("fidelity",))
    assert run.results, "no fidelity checks selected"
    failed = [f"{r.id}: {r.expected} | {r.observed}" for r in run.results if r.status != PASS]
    assert not failed, "\n".join(failed)

"""Bad input gets a 4xx with Azure's error shape, never a 500: names and header values XML cannot
carry, bytes that are not UTF-8, absurd ranges, oversized XML bodies, CR/LF in SAS response
overrides, non-canonical block IDs."""

from __future__ import annotations

import base64
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

import pytest
from azure.storage.blob import BlobServiceClient
from facade_raw import Raw, exchange, raw_head

from harness.http import Response, block_list_xml
from reference_server.app import MAX_XML_BODY
from reference_server.auth.sas import generate_service_sas
from reference_server.store.records import PROPS_XATTR

# Names XML 1.0 cannot carry: Azure lists them as <Name Encoded="true">percent-encoded</Name>
XML_INVALID_NAMES = ["a\x01b", "c\x1f", "d\ufffe", "e\uffff", "dir\x02/f.bin"]
FF = "\udcff"  # how the server sees a 0xFF byte of a header (UTF-8 with surrogateescape)
STORED_HEADERS = [
    "x-ms-blob-content-type",
    "x-ms-blob-content-disposition",
    "x-ms-blob-cache-control",
    "x-ms-blob-content-encoding",
    "x-ms-blob-content-language",
    "x-ms-meta-note",
]


def assert_azure_error(r: Response, status: int, code: str) -> None:
    assert r.status == status, (r.status, r.body)
    assert r.error_code == code
    assert r.body_error_code() == code
    assert r.header("content-type") == "application/xml"


def container_sas(raw: Raw, container: str, permissions: str = "racwdl", **overrides: str) -> str:
    return generate_service_sas(
        raw.account,
        raw.key,
        container=container,
        blob=None,
        permissions=permissions,
        expiry=datetime.now(UTC) + timedelta(hours=1),
        **overrides,
    )


def put_named(raw: Raw, container: str, name: str, data: bytes) -> Response:
    path = f"/{raw.account}/{container}/{quote(name.encode('utf-8', 'surrogateescape'))}"
    return raw.request(
        "PUT", container, raw_path=path, body=data, headers={"x-ms-blob-type": "BlockBlob"}
    )


def listed_names(raw: Raw, container: str, **query: str) -> list[tuple[str, str, bool]]:
    r = raw.request("GET", container, query={"restype": "container", "comp": "list", **query})
    assert r.status == 200, r.body
    out = []
    for item in r.xml().find("Blobs"):
        name = item.find("Name")
        out.append((item.tag, name.text, name.get("Encoded") == "true"))
    return out


def test_xml_invalid_names_are_stored_and_listed_encoded(raw: Raw, container: str) -> None:
    for i, name in enumerate(XML_INVALID_NAMES):
        assert put_named(raw, container, name, f"body {i}".encode()).status == 201
    assert raw.put_blob(container, "plain", b"p").status == 201

    flat = listed_names(raw, container)
    expected = sorted([*XML_INVALID_NAMES, "plain"])
    assert [unquote(text) if enc else text for _, text, enc in flat] == expected
    # only the names XML cannot carry are encoded
    assert {unquote(text) for _, text, enc in flat if enc} == set(XML_INVALID_NAMES)

    prefixes = listed_names(raw, container, delimiter="/")
    assert ("BlobPrefix", "dir%02/", True) in prefixes

    # the SDK decodes them back to the names written, and reads each blob's bytes
    svc = BlobServiceClient(account_url=raw.account_url, credential=raw.key)
    ct = svc.get_container_client(container)
    assert sorted(b.name for b in ct.list_blobs()) == expected
    assert "dir\x02/" in {p.name for p in ct.walk_blobs(delimiter="/")}
    for i, name in enumerate(XML_INVALID_NAMES):
        assert ct.get_blob_client(name).download_blob().readall() == f"body {i}".encode()


def test_file_with_non_utf8_name_written_beside_the_facade_lists(
    raw: Raw, container: str, shared_server
) -> None:
    ct_dir = os.path.join(
        os.fsencode(shared_server.data_root), raw.account.encode(), container.encode()
    )
    with open(os.path.join(ct_dir, b"raw-\xff-name"), "wb") as f:
        f.write(b"written by another program")
    os.mkdir(os.path.join(ct_dir, b"d\xfe"))
    with open(os.path.join(ct_dir, b"d\xfe", b"x"), "wb") as f:
        f.write(b"x")
    assert listed_names(raw, container) == [
        ("Blob", "d%FE/x", True),
        ("Blob", "raw-%FF-name", True),
    ]
    assert listed_names(raw, container, delimiter="/") == [
        ("BlobPrefix", "d%FE/", True),
        ("Blob", "raw-%FF-name", True),
    ]


@pytest.mark.parametrize("header", STORED_HEADERS)
def test_header_value_that_is_not_utf8_is_refused_at_write(
    raw: Raw, container: str, header: str
) -> None:
    """A SAS signs no headers, so a 0xFF byte reaches the handlers: refused before any write,
    rather than stored where it would break every later listing."""
    sas = container_sas(raw, container)
    blob = f"b-{uuid.uuid4().hex[:8]}"
    prepared = raw.prepare(
        "PUT",
        container,
        blob,
        sas=sas,
        headers={"x-ms-blob-type": "BlockBlob", header: f"x{FF}y"},
        content_length=3,
    )
    r = exchange(raw.server.port, raw_head(prepared) + b"abc")
    assert_azure_error(r, 400, "InvalidHeaderValue")
    assert r.xml().findtext("HeaderName") == header
    assert raw.request("HEAD", container, blob).status == 404

    # the same on Set Blob Properties / Set Blob Metadata: the blob keeps what it had
    assert raw.put_blob(container, blob, b"abc", **{header: "kept"}).status == 201
    comp = "metadata" if header.startswith("x-ms-meta-") else "properties"
    prepared = raw.prepare(
        "PUT", container, blob, sas=sas, query={"comp": comp}, headers={header: FF}
    )
    r = exchange(raw.server.port, raw_head(prepared))
    assert_azure_error(r, 400, "InvalidHeaderValue")
    listing = listed_names(raw, container, include="metadata")
    assert ("Blob", blob, False) in listing
    props = raw.request("HEAD", container, blob)
    plain = header.replace("x-ms-blob-", "")
    assert props.header(plain if comp == "properties" else header) == "kept"


def test_signed_container_metadata_that_is_not_utf8_is_refused(raw: Raw) -> None:
    """Shared Key signs the bytes as sent, so the request authenticates; the value is still
    refused and no container is made."""
    name = f"ct-{uuid.uuid4().hex[:12]}"
    prepared = raw.prepare("PUT", name, query={"restype": "container"}, headers={"x-ms-meta-a": FF})
    r = exchange(raw.server.port, raw_head(prepared))
    assert_azure_error(r, 400, "InvalidHeaderValue")
    assert r.xml().findtext("HeaderName") == "x-ms-meta-a"
    assert raw.request("GET", name, query={"restype": "container"}).status == 404


def test_non_utf8_header_with_bogus_shared_key_is_403(raw: Raw, container: str) -> None:
    prepared = raw.prepare(
        "GET",
        container,
        "any",
        headers={"x-ms-foo": FF, "Authorization": f"SharedKey {raw.account}:AAAA"},
        sign=False,
    )
    r = exchange(raw.server.port, raw_head(prepared))
    assert_azure_error(r, 403, "AuthenticationFailed")


def test_range_offsets_beyond_any_int_limit(raw: Raw, container: str) -> None:
    assert raw.put_blob(container, "r", b"0123456789").status == 201
    huge = "9" * 4301
    r = raw.request("GET", container, "r", headers={"x-ms-range": f"bytes={huge}-"})
    assert_azure_error(r, 416, "InvalidRange")
    assert r.header("content-range") == "bytes */10"
    r = raw.request("GET", container, "r", headers={"x-ms-range": f"bytes=2-{huge}"})
    assert r.status == 206 and r.body == b"23456789"
    r = raw.request("GET", container, "r", headers={"x-ms-range": f"bytes={'0' * 5000}3-4"})
    assert r.status == 206 and r.body == b"34"


def test_block_list_body_over_64_mib_is_413(raw: Raw, container: str) -> None:
    prepared = raw.prepare(
        "PUT", container, "big", query={"comp": "blocklist"}, content_length=MAX_XML_BODY + 1
    )
    # answered from Content-Length, before the body is read
    r = exchange(raw.server.port, prepared.head())
    assert_azure_error(r, 413, "RequestBodyTooLarge")
    root = r.xml()
    assert [c.tag for c in root] == ["Code", "Message", "MaxLimit"]
    assert root.findtext("MaxLimit") == str(MAX_XML_BODY)


def test_sas_response_override_with_crlf_is_refused(raw: Raw, container: str) -> None:
    assert raw.put_blob(container, "o", b"data").status == 201
    for value in ("text/plain\r\nX-Injected: 1", "a\nb"):
        sas = container_sas(raw, container, "r", content_type=value)
        for method in ("GET", "HEAD"):
            r = raw.request(method, container, "o", sas=sas)
            assert r.status == 400 and r.error_code == "InvalidQueryParameterValue"
            assert "x-injected" not in r.headers
            if method == "GET":
                assert r.xml().findtext("QueryParameterName") == "rsct"
    ok = raw.request(
        "GET", container, "o", sas=container_sas(raw, container, "r", content_type="x/y")
    )
    assert ok.status == 200 and ok.header("content-type") == "x/y"


def test_non_canonical_block_id_is_refused(raw: Raw, container: str) -> None:
    # QR== and QQ== both decode to b"A"; only the canonical form can be committed by its string
    r = raw.request("PUT", container, "bl", query={"comp": "block", "blockid": "QR=="}, body=b"x")
    assert_azure_error(r, 400, "InvalidQueryParameterValue")
    assert r.xml().findtext("QueryParameterName") == "blockid"
    ok = raw.request("PUT", container, "bl", query={"comp": "block", "blockid": "QQ=="}, body=b"x")
    assert ok.status == 201
    r = raw.request(
        "PUT", container, "bl", query={"comp": "blocklist"}, body=block_list_xml(["QQ=="])
    )
    assert r.status == 201
    assert raw.request("GET", container, "bl").body == b"x"
    assert base64.b64decode("QR==") == base64.b64decode("QQ==")


def test_listing_parameters_xml_cannot_carry_are_refused(raw: Raw, container: str) -> None:
    for param in ("prefix", "delimiter", "marker"):
        r = raw.request(
            "GET", container, query={"restype": "container", "comp": "list", param: "a\x01"}
        )
        assert_azure_error(r, 400, "InvalidQueryParameterValue")
        assert r.xml().findtext("QueryParameterName") == param
    r = raw.request("GET", query={"comp": "list", "prefix": "\uffff"})
    assert_azure_error(r, 400, "InvalidQueryParameterValue")


def test_list_containers_skips_directories_no_request_can_address(raw: Raw, shared_server) -> None:
    acct_dir = os.path.join(os.fsencode(shared_server.data_root), raw.account.encode())
    odd = [b"zzUpper", b"zz\x01ctl", b"zz\xffbytes", b"zz--double", b"zz"]
    for name in odd:
        os.mkdir(os.path.join(acct_dir, name))
    r = raw.request("GET", query={"comp": "list", "prefix": "zz"})
    assert r.status == 200, r.body
    assert r.xml().find("Containers").findall("Container") == []
    assert raw.request("GET", query={"comp": "list"}).status == 200


def test_copy_source_that_cannot_parse_is_400(raw: Raw, container: str) -> None:
    assert raw.put_blob(container, "src", b"0123456789").status == 201
    src = f"{raw.account_url}/{container}/src"
    r = raw.request(
        "PUT",
        container,
        "dst",
        query={"comp": "block", "blockid": "QQ=="},
        headers={"x-ms-copy-source": src, "x-ms-source-range": "bytes=" + "9" * 4301 + "-"},
    )
    assert_azure_error(r, 400, "InvalidHeaderValue")
    assert r.xml().findtext("HeaderName") == "x-ms-source-range"
    r = raw.request(
        "PUT",
        container,
        "dst",
        headers={"x-ms-copy-source": "http://[::1/x", "x-ms-blob-type": "BlockBlob"},
    )
    assert_azure_error(r, 400, "InvalidHeaderValue")
    assert r.xml().findtext("HeaderName") == "x-ms-copy-source"
    assert raw.request("HEAD", container, "dst").status == 404


def test_chunked_block_list_body_over_64_mib_is_413(raw: Raw, container: str) -> None:
    """No Content-Length to judge by: refused once the body crosses the limit."""
    prepared = raw.prepare(
        "PUT",
        container,
        "big",
        query={"comp": "blocklist"},
        headers={"Content-Length": None, "Transfer-Encoding": "chunked"},
    )
    chunk = b" " * (8 * 1024 * 1024)
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(9)) + b"0\r\n\r\n"
    r = exchange(raw.server.port, raw_head(prepared) + body)
    assert r is not None
    assert_azure_error(r, 413, "RequestBodyTooLarge")
    assert r.xml().findtext("MaxLimit") == str(MAX_XML_BODY)


def test_record_with_values_xml_cannot_carry_still_lists(
    raw: Raw, container: str, shared_server
) -> None:
    """A property record written before writes were checked (or by another program) holds a
    value XML cannot carry: the listing shows U+FFFD for it instead of failing."""
    assert raw.put_blob(container, "old", b"x", **{"x-ms-meta-a": "1"}).status == 201
    path = os.path.join(shared_server.data_root, raw.account, container, "old")
    record = json.loads(os.getxattr(path, PROPS_XATTR))
    record["content"]["content_type"] = "text/\udcff\x01"
    record["metadata"] = {"a": "v\uffff", "not a name": "x"}
    os.setxattr(path, PROPS_XATTR, json.dumps(record).encode())
    r = raw.request(
        "GET", container, query={"restype": "container", "comp": "list", "include": "metadata"}
    )
    assert r.status == 200, r.body
    blob = r.xml().find("Blobs/Blob")
    assert blob.findtext("Properties/Content-Type") == "text/\ufffd\ufffd"
    assert [(m.tag, m.text) for m in blob.find("Metadata")] == [("a", "v\ufffd")]

"""Issue 17, checksums and SAS: CRC64 and MD5 headers as Azure checks, stores and echoes them;
SAS create permission, duplicated SAS fields, local copy sources (sip, private containers).

Every refusal is also checked to have stored nothing: the blob stays absent or unchanged and no
block is staged. Azure's behaviour and its sources are in reference_server/checksums.py,
reference_server/auth/sas.py and harness/conformance/checks/fidelity_integrity.py.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from azure.storage.blob._shared.validation import calculate_crc64_bytes
from facade_raw import Raw

from harness.http import Response, block_list_xml
from reference_server import checksums
from reference_server.auth.sas import generate_account_sas, generate_service_sas

BODY = b"the body Azure checks" * 100
OTHER = b"another body"
BID = base64.b64encode(b"block-0001").decode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def md5(data: bytes) -> str:
    return b64(hashlib.md5(data).digest())


def crc(data: bytes) -> str:
    """The CRC64 as azure-storage-blob sends it for validate_content="crc64"."""
    return b64(calculate_crc64_bytes(data))


def expiry() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


def account_sas(raw: Raw, sp: str, srt: str = "sco", ip: str | None = None) -> str:
    return generate_account_sas(
        raw.account, raw.key, resource_types=srt, permissions=sp, expiry=expiry(), ip=ip
    )


def blob_sas(raw: Raw, ct: str, blob: str, sp: str, ip: str | None = None) -> str:
    return generate_service_sas(
        raw.account, raw.key, container=ct, blob=blob, permissions=sp, expiry=expiry(), ip=ip
    )


def absent(raw: Raw, ct: str, blob: str) -> None:
    r = raw.request("GET", ct, blob)
    assert (r.status, r.error_code) == (404, "BlobNotFound")


def body_of(raw: Raw, ct: str, blob: str) -> bytes:
    r = raw.request("GET", ct, blob)
    assert r.status == 200, r.body
    return r.body


def uncommitted(raw: Raw, ct: str, blob: str) -> list[str]:
    r = raw.request("GET", ct, blob, query={"comp": "blocklist", "blocklisttype": "uncommitted"})
    if (r.status, r.error_code) == (404, "BlobNotFound"):  # no blob and no staged block
        return []
    assert r.status == 200, r.body
    return [n.text or "" for n in r.xml().iter("Name")]


def error(r: Response, status: int, code: str) -> None:
    assert (r.status, r.error_code) == (status, code), r.body


def put_block(raw: Raw, ct: str, blob: str, data: bytes, **headers: str) -> Response:
    query = {"comp": "block", "blockid": BID}
    return raw.request("PUT", ct, blob, query=query, body=data, headers=headers)


# ---- CRC64 ---------------------------------------------------------------------------------


def test_crc64_is_the_crc_azure_storage_and_its_sdk_use() -> None:
    # CRC-64/NVME's check value (RevEng catalogue), and the SDK's own computation
    assert checksums.crc64(b"123456789") == 0xAE8B14860A799888
    assert checksums.crc64_bytes(checksums.crc64(BODY)) == calculate_crc64_bytes(BODY)
    half = len(BODY) // 2
    assert checksums.crc64(BODY[half:], checksums.crc64(BODY[:half])) == checksums.crc64(BODY)


def test_put_blob_crc64_checked_and_echoed(raw: Raw, container: str) -> None:
    ok = raw.put_blob(container, "ok.bin", BODY, **{"x-ms-content-crc64": crc(BODY)})
    assert ok.status == 201, ok.body
    assert ok.header("x-ms-content-crc64") == crc(BODY)
    assert ok.header("content-md5") == md5(BODY)
    assert raw.request("HEAD", container, "ok.bin").header("content-md5") == md5(BODY)

    error(
        raw.put_blob(container, "bad.bin", BODY, **{"x-ms-content-crc64": crc(OTHER)}),
        400,
        "Crc64Mismatch",
    )
    absent(raw, container, "bad.bin")
    # a failed overwrite leaves the blob as it was
    error(
        raw.put_blob(container, "ok.bin", OTHER, **{"x-ms-content-crc64": crc(BODY)}),
        400,
        "Crc64Mismatch",
    )
    assert body_of(raw, container, "ok.bin") == BODY
    # without the header no CRC64 is computed, none answered
    assert raw.put_blob(container, "plain.bin", BODY).header("x-ms-content-crc64") is None


def test_put_block_crc64_checked_and_echoed_without_md5(raw: Raw, container: str) -> None:
    ok = put_block(raw, container, "b.bin", BODY, **{"x-ms-content-crc64": crc(BODY)})
    assert ok.status == 201, ok.body
    assert ok.header("x-ms-content-crc64") == crc(BODY)
    assert ok.header("content-md5") is None  # Azure: Content-MD5 only when it was sent
    assert uncommitted(raw, container, "b.bin") == [BID]

    error(
        put_block(raw, container, "c.bin", BODY, **{"x-ms-content-crc64": crc(OTHER)}),
        400,
        "Crc64Mismatch",
    )
    assert uncommitted(raw, container, "c.bin") == []
    plain = put_block(raw, container, "d.bin", BODY)
    assert plain.header("content-md5") == md5(BODY)
    assert plain.header("x-ms-content-crc64") is None


@pytest.mark.parametrize("op", ["put-blob", "put-block"])
def test_both_md5_and_crc64_refused_before_the_body(raw: Raw, container: str, op: str) -> None:
    headers = {"Content-MD5": md5(BODY), "x-ms-content-crc64": crc(BODY)}
    if op == "put-blob":
        error(
            raw.put_blob(container, "x.bin", BODY, **headers), 400, "BothCrc64AndMd5HeaderPresent"
        )
        absent(raw, container, "x.bin")
    else:
        r = put_block(raw, container, "x.bin", BODY, **headers)
        error(r, 400, "BothCrc64AndMd5HeaderPresent")
        assert uncommitted(raw, container, "x.bin") == []


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("not base64!", "InvalidHeaderValue"),
        (b64(b"1234"), "InvalidHeaderValue"),  # fewer than 8 bytes
        (b64(calculate_crc64_bytes(BODY) + b"\0"), "Crc64Mismatch"),  # longer: compared
    ],
)
def test_malformed_crc64(raw: Raw, container: str, value: str, code: str) -> None:
    r = raw.put_blob(container, "m.bin", BODY, **{"x-ms-content-crc64": value})
    error(r, 400, code)
    if code == "InvalidHeaderValue":
        assert r.xml().findtext("HeaderName") == "x-ms-content-crc64"
    absent(raw, container, "m.bin")
    error(put_block(raw, container, "m.bin", BODY, **{"x-ms-content-crc64": value}), 400, code)
    assert uncommitted(raw, container, "m.bin") == []


def test_put_block_list_body_crc64(raw: Raw, container: str) -> None:
    assert put_block(raw, container, "l.bin", BODY).status == 201
    xml = block_list_xml([BID])
    query = {"comp": "blocklist"}
    wrong = raw.request(
        "PUT",
        container,
        "l.bin",
        query=query,
        body=xml,
        headers={"x-ms-content-crc64": crc(xml + b" ")},
    )
    error(wrong, 400, "Crc64Mismatch")
    absent(raw, container, "l.bin")
    ok = raw.request(
        "PUT", container, "l.bin", query=query, body=xml, headers={"x-ms-content-crc64": crc(xml)}
    )
    assert ok.status == 201, ok.body
    assert body_of(raw, container, "l.bin") == BODY


def _source(raw: Raw, ct: str) -> str:
    assert raw.put_blob(ct, "src.bin", BODY).status == 201
    return raw.url(raw.path(ct, "src.bin")) + "?" + blob_sas(raw, ct, "src.bin", "r")


def test_from_url_source_crc64(raw: Raw, container: str) -> None:
    url = _source(raw, container)
    pfu = {"x-ms-blob-type": "BlockBlob", "x-ms-copy-source": url}
    ok = raw.request(
        "PUT", container, "pfu.bin", headers={**pfu, "x-ms-source-content-crc64": crc(BODY)}
    )
    assert ok.status == 201, ok.body
    assert ok.header("x-ms-content-crc64") == crc(BODY)
    assert body_of(raw, container, "pfu.bin") == BODY

    bad = raw.request(
        "PUT", container, "bad.bin", headers={**pfu, "x-ms-source-content-crc64": crc(OTHER)}
    )
    error(bad, 400, "Crc64Mismatch")
    absent(raw, container, "bad.bin")
    both = {"x-ms-source-content-crc64": crc(BODY), "x-ms-source-content-md5": md5(BODY)}
    error(
        raw.request("PUT", container, "both.bin", headers={**pfu, **both}),
        400,
        "BothCrc64AndMd5HeaderPresent",
    )
    absent(raw, container, "both.bin")

    block = raw.request(
        "PUT",
        container,
        "blk.bin",
        query={"comp": "block", "blockid": BID},
        headers={"x-ms-copy-source": url, "x-ms-source-content-crc64": crc(OTHER)},
    )
    error(block, 400, "Crc64Mismatch")
    assert uncommitted(raw, container, "blk.bin") == []


def test_copy_blob_from_url_echoes_the_source_md5(raw: Raw, container: str) -> None:
    url = _source(raw, container)
    sync = {"x-ms-copy-source": url, "x-ms-requires-sync": "true"}
    ok = raw.request(
        "PUT", container, "c.bin", headers={**sync, "x-ms-source-content-md5": md5(BODY)}
    )
    assert ok.status == 202, ok.body
    assert ok.header("x-ms-copy-status") == "success"
    assert ok.header("content-md5") == md5(BODY)
    bad = raw.request(
        "PUT", container, "d.bin", headers={**sync, "x-ms-source-content-md5": md5(OTHER)}
    )
    error(bad, 400, "Md5Mismatch")
    absent(raw, container, "d.bin")


# ---- MD5 -----------------------------------------------------------------------------------


def test_put_blob_checks_and_stores_x_ms_blob_content_md5(raw: Raw, container: str) -> None:
    # the stored MD5 is the one checked; a wrong transactional Content-MD5 beside it is not
    r = raw.put_blob(
        container, "a.bin", BODY, **{"Content-MD5": md5(OTHER), "x-ms-blob-content-md5": md5(BODY)}
    )
    assert r.status == 201, r.body
    assert raw.request("HEAD", container, "a.bin").header("content-md5") == md5(BODY)
    swapped = {"Content-MD5": md5(BODY), "x-ms-blob-content-md5": md5(OTHER)}
    wrong = raw.put_blob(container, "b.bin", BODY, **swapped)
    error(wrong, 400, "Md5Mismatch")
    absent(raw, container, "b.bin")
    error(raw.put_blob(container, "c.bin", BODY, **{"Content-MD5": md5(OTHER)}), 400, "Md5Mismatch")
    absent(raw, container, "c.bin")


def test_set_blob_properties_stores_an_md5_of_any_length(raw: Raw, container: str) -> None:
    assert raw.put_blob(container, "p.bin", BODY).status == 201
    hex_md5 = b64(hashlib.md5(BODY).hexdigest().encode())  # 32 bytes, as JS SDK users send
    props = {"comp": "properties"}
    r = raw.request(
        "PUT", container, "p.bin", query=props, headers={"x-ms-blob-content-md5": hex_md5}
    )
    assert r.status == 200, r.body
    assert raw.request("HEAD", container, "p.bin").header("content-md5") == hex_md5
    bad = raw.request(
        "PUT", container, "p.bin", query=props, headers={"x-ms-blob-content-md5": "not base64!"}
    )
    error(bad, 400, "InvalidMd5")
    assert raw.request("HEAD", container, "p.bin").header("content-md5") == hex_md5


# ---- SAS -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["account", "container", "blob"])
def test_create_permission_writes_only_new_blobs(raw: Raw, container: str, kind: str) -> None:
    def sas(blob: str) -> str:
        if kind == "account":
            return account_sas(raw, "c", "o")
        if kind == "container":
            return generate_service_sas(
                raw.account,
                raw.key,
                container=container,
                blob=None,
                permissions="c",
                expiry=expiry(),
            )
        return blob_sas(raw, container, blob, "c")

    new = raw.request(
        "PUT",
        container,
        "new.bin",
        body=BODY,
        sas=sas("new.bin"),
        headers={"x-ms-blob-type": "BlockBlob"},
    )
    assert new.status == 201, new.body
    over = raw.request(
        "PUT",
        container,
        "new.bin",
        body=OTHER,
        sas=sas("new.bin"),
        headers={"x-ms-blob-type": "BlockBlob"},
    )
    error(over, 403, "AuthorizationPermissionMismatch")
    assert body_of(raw, container, "new.bin") == BODY

    # Put Block List creating a blob (blocks staged with w), not replacing one
    assert put_block(raw, container, "list.bin", BODY).status == 201
    xml = block_list_xml([BID])
    commit = raw.request(
        "PUT", container, "list.bin", query={"comp": "blocklist"}, body=xml, sas=sas("list.bin")
    )
    assert commit.status == 201, commit.body
    assert put_block(raw, container, "list.bin", OTHER).status == 201
    again = raw.request(
        "PUT", container, "list.bin", query={"comp": "blocklist"}, body=xml, sas=sas("list.bin")
    )
    error(again, 403, "AuthorizationPermissionMismatch")
    assert body_of(raw, container, "list.bin") == BODY

    # the copies: a new destination yes, an existing one no
    url = _source(raw, container)
    for name, headers, status in [
        ("sync.bin", {"x-ms-copy-source": url, "x-ms-requires-sync": "true"}, 202),
        ("pfu.bin", {"x-ms-copy-source": url, "x-ms-blob-type": "BlockBlob"}, 201),
        ("async.bin", {"x-ms-copy-source": url}, 202),
    ]:
        first = raw.request("PUT", container, name, headers=headers, sas=sas(name))
        assert first.status == status, (name, first.body)
        second = raw.request("PUT", container, "new.bin", headers=headers, sas=sas("new.bin"))
        error(second, 403, "AuthorizationPermissionMismatch")
        assert body_of(raw, container, "new.bin") == BODY


def test_create_with_w_still_overwrites(raw: Raw, container: str) -> None:
    assert raw.put_blob(container, "x.bin", BODY).status == 201
    r = raw.request(
        "PUT",
        container,
        "x.bin",
        body=OTHER,
        sas=account_sas(raw, "cw", "o"),
        headers={"x-ms-blob-type": "BlockBlob"},
    )
    assert r.status == 201, r.body
    assert body_of(raw, container, "x.bin") == OTHER


def test_account_sas_w_alone_creates_a_container(raw: Raw) -> None:
    name = f"ct-w-{hashlib.md5(BODY).hexdigest()[:8]}-{datetime.now(UTC).strftime('%H%M%S%f')}"
    r = raw.request("PUT", name, query={"restype": "container"}, sas=account_sas(raw, "w", "c"))
    assert r.status == 201, r.body


def test_container_sas_cannot_read_its_container(raw: Raw, container: str) -> None:
    sas = generate_service_sas(
        raw.account, raw.key, container=container, blob=None, permissions="racwdl", expiry=expiry()
    )
    for method in ("GET", "HEAD"):
        r = raw.request(method, container, query={"restype": "container"}, sas=sas)
        error(r, 403, "AuthorizationFailure")
    listing = raw.request("GET", container, query={"restype": "container", "comp": "list"}, sas=sas)
    assert listing.status == 200


@pytest.mark.parametrize("second", ["AAAA", "first"])
def test_a_second_sig_is_refused(raw: Raw, container: str, second: str) -> None:
    assert raw.put_blob(container, "s.bin", BODY).status == 201
    sas = account_sas(raw, "rwd", "sco")
    sig = next(v for k, _, v in (p.partition("=") for p in sas.split("&")) if k == "sig")
    doubled = f"{sas}&sig={sig if second == 'first' else second}"
    for method in ("GET", "DELETE"):
        r = raw.request(method, container, "s.bin", sas=doubled)
        error(r, 403, "AuthenticationFailed")
        assert b"sig given more than once" in r.body
    assert body_of(raw, container, "s.bin") == BODY
    assert raw.request("GET", container, "s.bin", sas=sas).status == 200


@pytest.mark.parametrize(("sip", "ok"), [("127.0.0.1", True), ("10.213.99.1", False)])
def test_local_copy_source_sip_is_the_clients(raw: Raw, container: str, sip: str, ok: bool) -> None:
    assert raw.put_blob(container, "src.bin", BODY).status == 201
    src_sas = blob_sas(raw, container, "src.bin", "r", ip=sip)
    url = raw.url(raw.path(container, "src.bin")) + "?" + src_sas
    dst_sas = blob_sas(raw, container, "dst.bin", "cw")
    r = raw.request(
        "PUT",
        container,
        "dst.bin",
        sas=dst_sas,
        headers={"x-ms-copy-source": url, "x-ms-requires-sync": "true"},
    )
    if ok:
        assert r.status == 202, r.body
        assert body_of(raw, container, "dst.bin") == BODY
    else:
        error(r, 403, "CannotVerifyCopySource")
        assert r.header("x-ms-copy-source-error-code") == "AuthorizationSourceIPMismatch"
        absent(raw, container, "dst.bin")


def test_private_source_without_credentials(raw: Raw, container: str) -> None:
    assert raw.put_blob(container, "src.bin", BODY).status == 201
    url = raw.url(raw.path(container, "src.bin"))  # no SAS: the container is private
    dst_sas = blob_sas(raw, container, "dst.bin", "cw")
    for headers in (
        {"x-ms-copy-source": url, "x-ms-requires-sync": "true"},
        {"x-ms-copy-source": url, "x-ms-blob-type": "BlockBlob"},
    ):
        r = raw.request("PUT", container, "dst.bin", headers=headers, sas=dst_sas)
        error(r, 401, "CannotVerifyCopySource")
        assert r.xml().findtext("Message") == (
            "Server failed to authenticate the request. Please refer to the information in the "
            "www-authenticate header."
        )
        assert r.header("x-ms-copy-source-status-code") == "401"
        assert r.header("x-ms-copy-source-error-code") == "NoAuthenticationInformation"
        absent(raw, container, "dst.bin")


def test_shared_key_reads_a_private_same_account_source_only_for_async_copy(
    raw: Raw, container: str
) -> None:
    """Signed with the account's Shared Key and naming a private source of the same account
    without credentials: the synchronous copies are refused as Azure refuses them (the source
    must be public or carry a SAS / x-ms-copy-source-authorization), the asynchronous Copy Blob
    copies it; with a source SAS every kind copies."""
    assert raw.put_blob(container, "src.bin", BODY).status == 201
    url = raw.url(raw.path(container, "src.bin"))
    block = {"comp": "block", "blockid": BID}
    sync_kinds = [
        ({}, {"x-ms-blob-type": "BlockBlob"}),  # Put Blob From URL
        ({}, {"x-ms-requires-sync": "true"}),  # Copy Blob From URL
        (block, {"x-ms-source-range": "bytes=0-99"}),  # Put Block From URL
    ]
    for query, extra in sync_kinds:
        r = raw.request(
            "PUT", container, "dst.bin", query=query, headers={"x-ms-copy-source": url, **extra}
        )
        error(r, 401, "CannotVerifyCopySource")
        assert r.header("x-ms-copy-source-error-code") == "NoAuthenticationInformation"
        absent(raw, container, "dst.bin")
        assert uncommitted(raw, container, "dst.bin") == []
    started = raw.request("PUT", container, "dst.bin", headers={"x-ms-copy-source": url})
    assert started.status == 202, started.body
    assert started.header("x-ms-copy-status") == "success"  # small and local: done at once
    assert body_of(raw, container, "dst.bin") == BODY

    signed = f"{url}?{blob_sas(raw, container, 'src.bin', 'r')}"
    for i, (query, extra) in enumerate(sync_kinds):
        name = f"ok{i}.bin"
        r = raw.request(
            "PUT", container, name, query=query, headers={"x-ms-copy-source": signed, **extra}
        )
        assert r.status in (201, 202), r.body
    assert body_of(raw, container, "ok0.bin") == BODY
    assert body_of(raw, container, "ok1.bin") == BODY
    assert uncommitted(raw, container, "ok2.bin") == [BID]


def test_a_structured_message_body_is_refused_not_stored(raw: Raw, container: str) -> None:
    # what azure-storage-blob sends for validate_content="crc64" on a stream: framing the
    # façade does not decode, so it must not become the blob's bytes
    sm = {
        "x-ms-structured-body": "XSM/1.0; properties=crc64",
        "x-ms-structured-content-length": "3",
    }
    r = raw.put_blob(container, "sm.bin", b"framed", **sm)
    error(r, 400, "UnsupportedHeader")
    assert r.xml().findtext("HeaderName") == "x-ms-structured-body"
    absent(raw, container, "sm.bin")
    error(put_block(raw, container, "sm.bin", b"framed", **sm), 400, "UnsupportedHeader")
    assert uncommitted(raw, container, "sm.bin") == []


def test_sdk_validate_content_crc64_uploads(shared_server) -> None:
    # what the SDK sends for validate_content="crc64": the header on Put Blob and on each
    # Put Block (its chunks are bytes), which the façade now checks and answers
    from azure.storage.blob import BlobServiceClient

    svc = BlobServiceClient.from_connection_string(
        shared_server.connection_string, max_single_put_size=1 << 20, max_block_size=1 << 20
    )
    ct = svc.create_container(f"crc-{datetime.now(UTC).strftime('%H%M%S%f')}")
    for size in (1000, 3 * (1 << 20) + 5):
        data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
        blob = ct.get_blob_client(f"b{size}")
        blob.upload_blob(data, validate_content="crc64")
        assert blob.download_blob().readall() == data
    ct.delete_container()

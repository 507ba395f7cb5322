"""Fidelity: transactional checksums (CRC64, MD5) and SAS details as Azure has them.

Where each expectation comes from:

- CRC64 is Azure Storage's CRC-64 (CRC-64/NVME), computed here with the C extension the
  Python SDK uses for ``validate_content="crc64"`` (``azure.storage.extensions.checksums``, see
  azure-storage-blob's ``_shared/validation.py``): 8 bytes little-endian, base64.
- Put Block / Put Blob / Put Block From URL REST reference: a CRC64 that does not match is 400
  ``Crc64Mismatch``; ``Content-MD5`` and ``x-ms-content-crc64`` together are 400
  ``BothCrc64AndMd5HeaderPresent``; Put Block answers ``x-ms-content-crc64`` when the request had
  no Content-MD5 (versions 2019-02-02 and later). A CRC64 shorter than 8 bytes is 400
  ``InvalidHeaderValue`` (Azurite 3.37 ``src/blob/utils/utils.ts``, recorded as verified on Azure).
- Put Blob with both MD5 headers: x-ms-blob-content-md5 is the one checked and stored (Microsoft
  in azure-storage-ruby issue 64: for a block blob the two are interchangeable; Azurite 3.37's
  ``BlockBlobHandler.upload``: x-ms-blob-content-md5 takes precedence, "verified live").
- Set Blob Properties stores an x-ms-blob-content-md5 that is not 16 bytes (azure-sdk-for-js
  issue 9507: refused by Put Blob with InvalidMd5, accepted by setHTTPHeaders).
- SAS ``c``: "Create (c): users can create new blobs ... but may not overwrite existing blobs"
  (Create an account SAS; the service SAS table: "Write a new blob, snapshot a blob, or copy a
  blob to a new blob"). Create Container takes ``c`` or ``w`` (Azurite's account SAS table).
- A copy source read without credentials from a private container: 401 ``CannotVerifyCopySource``
  "Server failed to authenticate the request. ..." (azure-sdk-for-java issue 37625, 2023).
- Under the destination account's Shared Key, only the asynchronous Copy Blob reads a private
  source of the same account without source credentials (Copy Blob REST reference: a source in
  the same account can be authorized with Shared Key). The synchronous copies need the source
  public or authorized by a SAS or x-ms-copy-source-authorization: Copy Blob From URL's REST
  reference ("any committed block blob in any Azure storage account that's either public or
  authorized with a shared access signature"), and the x-ms-copy-source rows of Put Blob From URL
  and Put Block From URL (learn.microsoft.com/rest/api/storageservices/copy-blob-from-url,
  put-blob-from-url, put-block-from-url).
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta

from harness.conformance.framework import (
    CheckContext,
    b64,
    block_id,
    check,
    crc64_b64,
    md5_b64,
)
from harness.http import Response, block_list_xml
from harness.signing import generate_account_sas, generate_service_sas

PUT = "Put Blob"
PUT_BLOCK = "Put Block"
BLOCK_LIST = "Put Block List"
PUT_FROM_URL = "Put Blob From URL"
BLOCK_FROM_URL = "Put Block From URL"
COPY = "Copy Blob"
PROPS = "Blob Properties"
ACCOUNT_SAS = "Auth Account SAS"
SERVICE_SAS = "Auth Service SAS"

BODY = b"integrity " * 300
OTHER = b"some other bytes"
BLOCK_BLOB = {"x-ms-blob-type": "BlockBlob"}


def _expiry() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


def _absent(ctx: CheckContext, ct: str, blob: str) -> None:
    ctx.expect_error(ctx.head(ct, blob), 404, "BlobNotFound", "nothing stored")


def _no_block(ctx: CheckContext, ct: str, blob: str) -> None:
    resp = ctx.http.request(
        "GET", ct, blob, query={"comp": "blocklist", "blocklisttype": "uncommitted"}
    )
    staged = resp.xml().findall(".//Block") if resp.status == 200 else []
    ctx.expect("blocks staged", "none", f"{len(staged)} block(s)" if staged else "none")


def _block(ctx: CheckContext, ct: str, blob: str, data: bytes, **headers: str) -> Response:
    return ctx.http.request(
        "PUT",
        ct,
        blob,
        query={"comp": "block", "blockid": block_id(1)},
        body=data,
        headers=headers,
    )


def _source_url(ctx: CheckContext, ct: str, sas: bool = True, **sas_args: str) -> str:
    ctx.put_blob(ct, "src.bin", BODY)
    url = ctx.http.url(ctx.http.path(ct, "src.bin"))
    if not sas:
        return url
    token = generate_service_sas(
        ctx.account,
        ctx.key,
        container=ct,
        blob="src.bin",
        permissions="r",
        expiry=_expiry(),
        **sas_args,
    )
    return f"{url}?{token}"


def _container_sas(ctx: CheckContext, ct: str, permissions: str) -> str:
    return generate_service_sas(
        ctx.account, ctx.key, container=ct, blob=None, permissions=permissions, expiry=_expiry()
    )


# ---- CRC64 ---------------------------------------------------------------------------------


@check("put-blob.crc64-mismatch", PUT, "a wrong x-ms-content-crc64 -> 400 Crc64Mismatch, no blob")
def _put_crc_bad(ctx: CheckContext) -> None:
    ct = ctx.container("crc")
    resp = ctx.http.request(
        "PUT",
        ct,
        "b.bin",
        body=BODY,
        headers={**BLOCK_BLOB, "x-ms-content-crc64": crc64_b64(OTHER)},
    )
    ctx.expect_error(resp, 400, "Crc64Mismatch")
    _absent(ctx, ct, "b.bin")


@check("put-blob.crc64-echo", PUT, "a matching x-ms-content-crc64 -> 201 echoing the CRC64")
def _put_crc_ok(ctx: CheckContext) -> None:
    ct = ctx.container("crc")
    resp = ctx.put_blob(ct, "b.bin", BODY, {"x-ms-content-crc64": crc64_b64(BODY)})
    ctx.expect_header(resp, "x-ms-content-crc64", crc64_b64(BODY))
    ctx.expect("bytes", BODY, ctx.get(ct, "b.bin").body)


@check(
    "put-blob.crc64-and-md5",
    PUT,
    "Content-MD5 with x-ms-content-crc64 -> 400 BothCrc64AndMd5HeaderPresent, no blob",
)
def _put_both(ctx: CheckContext) -> None:
    ct = ctx.container("crc")
    both = {"Content-MD5": md5_b64(BODY), "x-ms-content-crc64": crc64_b64(BODY)}
    resp = ctx.http.request("PUT", ct, "b.bin", body=BODY, headers={**BLOCK_BLOB, **both})
    ctx.expect_error(resp, 400, "BothCrc64AndMd5HeaderPresent")
    _absent(ctx, ct, "b.bin")


@check(
    "put-blob.crc64-malformed",
    PUT,
    "an x-ms-content-crc64 of 4 bytes -> 400 InvalidHeaderValue, no blob",
)
def _put_crc_malformed(ctx: CheckContext) -> None:
    ct = ctx.container("crc")
    resp = ctx.http.request(
        "PUT", ct, "b.bin", body=BODY, headers={**BLOCK_BLOB, "x-ms-content-crc64": b64(b"1234")}
    )
    ctx.expect_error(resp, 400, "InvalidHeaderValue")
    _absent(ctx, ct, "b.bin")


@check("put-block.crc64-mismatch", PUT_BLOCK, "a wrong x-ms-content-crc64 -> 400, nothing staged")
def _block_crc_bad(ctx: CheckContext) -> None:
    ct = ctx.container("crc")
    resp = _block(ctx, ct, "b.bin", BODY, **{"x-ms-content-crc64": crc64_b64(OTHER)})
    ctx.expect_error(resp, 400, "Crc64Mismatch")
    _no_block(ctx, ct, "b.bin")


@check("put-block.crc64-echo", PUT_BLOCK, "a matching x-ms-content-crc64 -> 201 echoing it")
def _block_crc_ok(ctx: CheckContext) -> None:
    ct = ctx.container("crc")
    resp = _block(ctx, ct, "b.bin", BODY, **{"x-ms-content-crc64": crc64_b64(BODY)})
    ctx.expect_status(resp, 201)
    ctx.expect_header(resp, "x-ms-content-crc64", crc64_b64(BODY))


@check(
    "put-block.crc64-and-md5",
    PUT_BLOCK,
    "Content-MD5 with x-ms-content-crc64 -> 400 BothCrc64AndMd5HeaderPresent, nothing staged",
)
def _block_both(ctx: CheckContext) -> None:
    ct = ctx.container("crc")
    both = {"Content-MD5": md5_b64(BODY), "x-ms-content-crc64": crc64_b64(BODY)}
    ctx.expect_error(_block(ctx, ct, "b.bin", BODY, **both), 400, "BothCrc64AndMd5HeaderPresent")
    _no_block(ctx, ct, "b.bin")


@check("block-list.crc64-mismatch", BLOCK_LIST, "a wrong body CRC64 -> 400 Crc64Mismatch")
def _list_crc(ctx: CheckContext) -> None:
    ct = ctx.container("crc")
    ctx.expect_status(_block(ctx, ct, "b.bin", BODY), 201, "stage")
    resp = ctx.put_block_list(
        ct, "b.bin", [("Latest", block_id(1))], headers={"x-ms-content-crc64": crc64_b64(OTHER)}
    )
    ctx.expect_error(resp, 400, "Crc64Mismatch")
    _absent(ctx, ct, "b.bin")


@check(
    "put-blob-from-url.source-crc64-mismatch",
    PUT_FROM_URL,
    "a wrong x-ms-source-content-crc64 -> 400 Crc64Mismatch, no blob",
)
def _pfu_crc(ctx: CheckContext) -> None:
    ct = ctx.container("crc")
    headers = {
        **BLOCK_BLOB,
        "x-ms-copy-source": _source_url(ctx, ct),
        "x-ms-source-content-crc64": crc64_b64(OTHER),
    }
    ctx.expect_error(ctx.http.request("PUT", ct, "b.bin", headers=headers), 400, "Crc64Mismatch")
    _absent(ctx, ct, "b.bin")


@check(
    "put-block-from-url.source-crc64",
    BLOCK_FROM_URL,
    "a matching x-ms-source-content-crc64 -> 201 echoing x-ms-content-crc64",
)
def _pbfu_crc(ctx: CheckContext) -> None:
    ct = ctx.container("crc")
    headers = {
        "x-ms-copy-source": _source_url(ctx, ct),
        "Content-Length": "0",
        "x-ms-source-content-crc64": crc64_b64(BODY),
    }
    resp = ctx.http.request(
        "PUT", ct, "b.bin", query={"comp": "block", "blockid": block_id(1)}, headers=headers
    )
    ctx.expect_status(resp, 201)
    ctx.expect_header(resp, "x-ms-content-crc64", crc64_b64(BODY))


# ---- MD5 -----------------------------------------------------------------------------------


@check(
    "put-blob.blob-md5-precedence",
    PUT,
    "a wrong Content-MD5 beside a right x-ms-blob-content-md5 -> 201, that MD5 stored",
)
def _put_md5_precedence(ctx: CheckContext) -> None:
    ct = ctx.container("md5")
    md5s = {"Content-MD5": md5_b64(OTHER), "x-ms-blob-content-md5": md5_b64(BODY)}
    resp = ctx.http.request("PUT", ct, "b.bin", body=BODY, headers={**BLOCK_BLOB, **md5s})
    ctx.expect_status(resp, 201)
    ctx.expect_header(ctx.head(ct, "b.bin"), "content-md5", md5_b64(BODY))


@check(
    "put-blob.blob-md5-checked",
    PUT,
    "a wrong x-ms-blob-content-md5 beside a right Content-MD5 -> 400 Md5Mismatch, no blob",
)
def _put_md5_checked(ctx: CheckContext) -> None:
    ct = ctx.container("md5")
    md5s = {"Content-MD5": md5_b64(BODY), "x-ms-blob-content-md5": md5_b64(OTHER)}
    resp = ctx.http.request("PUT", ct, "b.bin", body=BODY, headers={**BLOCK_BLOB, **md5s})
    ctx.expect_error(resp, 400, "Md5Mismatch")
    _absent(ctx, ct, "b.bin")


@check(
    "set-blob-properties.md5-any-length",
    PROPS,
    "Set Blob Properties stores a 32-byte x-ms-blob-content-md5 as sent",
)
def _props_md5(ctx: CheckContext) -> None:
    ct = ctx.container("md5")
    ctx.put_blob(ct, "b.bin", BODY)
    hex_md5 = b64(hashlib.md5(BODY).hexdigest().encode())  # 32 bytes
    resp = ctx.http.request(
        "PUT", ct, "b.bin", query={"comp": "properties"}, headers={"x-ms-blob-content-md5": hex_md5}
    )
    ctx.expect_status(resp, 200)
    ctx.expect_header(ctx.head(ct, "b.bin"), "content-md5", hex_md5)


@check(
    "copy-blob.sync-source-md5",
    COPY,
    "Copy Blob From URL with x-ms-source-content-md5 -> 202 echoing Content-MD5",
)
def _copy_md5(ctx: CheckContext) -> None:
    ct = ctx.container("md5")
    headers = {
        "x-ms-copy-source": _source_url(ctx, ct),
        "x-ms-requires-sync": "true",
        "x-ms-source-content-md5": md5_b64(BODY),
    }
    resp = ctx.http.request("PUT", ct, "c.bin", headers=headers)
    ctx.expect_status(resp, 202)
    ctx.expect_header(resp, "content-md5", md5_b64(BODY))


# ---- SAS -----------------------------------------------------------------------------------


@check(
    "account-sas.create-new-blob",
    ACCOUNT_SAS,
    "sp=c writes a new blob (201) but not over one (403 AuthorizationPermissionMismatch)",
)
def _create_put(ctx: CheckContext) -> None:
    ct = ctx.container("create")
    sas = generate_account_sas(
        ctx.account, ctx.key, resource_types="o", permissions="c", expiry=_expiry()
    )
    new = ctx.http.request("PUT", ct, "n.bin", body=BODY, headers=BLOCK_BLOB, sas=sas)
    ctx.expect_status(new, 201, "new blob")
    over = ctx.http.request("PUT", ct, "n.bin", body=OTHER, headers=BLOCK_BLOB, sas=sas)
    ctx.expect_error(over, 403, "AuthorizationPermissionMismatch", "overwrite")
    ctx.expect("bytes kept", BODY, ctx.get(ct, "n.bin").body)


@check(
    "service-sas.create-block-list",
    SERVICE_SAS,
    "sp=c commits a block list creating a blob (201), not over one (403)",
)
def _create_list(ctx: CheckContext) -> None:
    ct = ctx.container("create")
    sas = _container_sas(ctx, ct, "c")
    ctx.expect_status(_block(ctx, ct, "n.bin", BODY), 201, "stage")
    xml = block_list_xml([block_id(1)])
    query = {"comp": "blocklist"}
    ctx.expect_status(ctx.http.request("PUT", ct, "n.bin", query=query, body=xml, sas=sas), 201)
    ctx.expect_status(_block(ctx, ct, "n.bin", OTHER), 201, "stage again")
    again = ctx.http.request("PUT", ct, "n.bin", query=query, body=xml, sas=sas)
    ctx.expect_error(again, 403, "AuthorizationPermissionMismatch", "over an existing blob")
    ctx.expect("bytes kept", BODY, ctx.get(ct, "n.bin").body)


@check(
    "service-sas.create-copy",
    SERVICE_SAS,
    "sp=c copies to a new blob (Copy Blob From URL 202), not over one (403)",
)
def _create_copy(ctx: CheckContext) -> None:
    ct = ctx.container("create")
    sas = _container_sas(ctx, ct, "c")
    headers = {"x-ms-copy-source": _source_url(ctx, ct), "x-ms-requires-sync": "true"}
    ctx.expect_status(ctx.http.request("PUT", ct, "n.bin", headers=headers, sas=sas), 202)
    over = ctx.http.request("PUT", ct, "src.bin", headers=headers, sas=sas)
    ctx.expect_error(over, 403, "AuthorizationPermissionMismatch", "over an existing blob")


@check("account-sas.write-creates-container", ACCOUNT_SAS, "sp=w srt=c creates a container")
def _w_container(ctx: CheckContext) -> None:
    name = ctx.name("wct")
    sas = generate_account_sas(
        ctx.account, ctx.key, resource_types="c", permissions="w", expiry=_expiry()
    )
    resp = ctx.http.request("PUT", name, query={"restype": "container"}, sas=sas)
    if resp.status == 201:
        ctx.containers.append(name)
    ctx.expect_status(resp, 201)


@check("account-sas.second-sig", ACCOUNT_SAS, "a second sig parameter -> 403, blob kept")
def _second_sig(ctx: CheckContext) -> None:
    ct = ctx.container("sig")
    ctx.put_blob(ct, "b.bin", BODY)
    sas = generate_account_sas(
        ctx.account, ctx.key, resource_types="o", permissions="rd", expiry=_expiry()
    )
    resp = ctx.http.request("DELETE", ct, "b.bin", sas=f"{sas}&sig=AAAA")
    ctx.expect_error(resp, 403, "AuthenticationFailed")
    ctx.expect("bytes kept", BODY, ctx.get(ct, "b.bin").body)


@check(
    "service-sas.container-properties-head",
    SERVICE_SAS,
    "HEAD container properties with a container SAS (sr=c) -> 403",
)
def _sr_c_head(ctx: CheckContext) -> None:
    ct = ctx.container("src")
    resp = ctx.http.request(
        "HEAD", ct, query={"restype": "container"}, sas=_container_sas(ctx, ct, "racwdl")
    )
    ctx.expect_true("status", resp.status == 403, "403", f"{resp.status} {resp.error_code}")


@check(
    "copy-blob.source-sip",
    COPY,
    "a source SAS with sip covering every IPv4 address -> 202 success, no IP mismatch",
)
def _copy_sip(ctx: CheckContext) -> None:
    ct = ctx.container("sip")
    url = _source_url(ctx, ct, ip="0.0.0.0-255.255.255.255")
    sas = _container_sas(ctx, ct, "cw")
    headers = {"x-ms-copy-source": url, "x-ms-requires-sync": "true"}
    resp = ctx.http.request("PUT", ct, "c.bin", headers=headers, sas=sas)
    ctx.expect_status(resp, 202)
    ctx.expect("bytes", BODY, ctx.get(ct, "c.bin").body)


@check(
    "copy-blob.private-source",
    COPY,
    "a private source without credentials -> 401 CannotVerifyCopySource, nothing copied",
)
def _copy_private(ctx: CheckContext) -> None:
    ct = ctx.container("priv")
    url = _source_url(ctx, ct, sas=False)
    headers = {"x-ms-copy-source": url, "x-ms-requires-sync": "true"}
    resp = ctx.http.request("PUT", ct, "c.bin", headers=headers, sas=_container_sas(ctx, ct, "cw"))
    ctx.expect_error(resp, 401, "CannotVerifyCopySource")
    message = (resp.xml().findtext("Message") or "") if resp.body else ""
    ctx.expect_true(
        "message",
        message.startswith("Server failed to authenticate the request."),
        "Server failed to authenticate the request. ...",
        message[:120],
    )
    _absent(ctx, ct, "c.bin")


# Shared Key, a same-account private source named without credentials: the synchronous copies
# refuse it, the asynchronous Copy Blob reads it.


def _refused_without_source_credentials(ctx: CheckContext, resp: Response) -> None:
    """Refused as a source that would not authenticate; the status itself (401 as Azure has
    it, 403 in Azurite) is asked by copy-blob.private-source: this asks only for a refusal."""
    observed = f"{resp.status} {resp.error_code}"
    ok = resp.status in (401, 403) and resp.error_code == "CannotVerifyCopySource"
    ctx.expect_true("error", ok, "401|403 CannotVerifyCopySource", observed)


@check(
    "put-blob-from-url.private-source-shared-key",
    PUT_FROM_URL,
    "Shared Key, same-account private source without credentials -> CannotVerifyCopySource",
)
def _pfu_private_key(ctx: CheckContext) -> None:
    ct = ctx.container("priv")
    url = _source_url(ctx, ct, sas=False)
    resp = ctx.http.request("PUT", ct, "c.bin", headers={"x-ms-copy-source": url, **BLOCK_BLOB})
    _refused_without_source_credentials(ctx, resp)
    _absent(ctx, ct, "c.bin")


@check(
    "put-block-from-url.private-source-shared-key",
    BLOCK_FROM_URL,
    "Shared Key, same-account private source without credentials -> refused, nothing staged",
)
def _pbfu_private_key(ctx: CheckContext) -> None:
    ct = ctx.container("priv")
    url = _source_url(ctx, ct, sas=False)
    resp = ctx.http.request(
        "PUT",
        ct,
        "c.bin",
        query={"comp": "block", "blockid": block_id(1)},
        headers={"x-ms-copy-source": url, "x-ms-source-range": "bytes=0-99"},
    )
    _refused_without_source_credentials(ctx, resp)
    _no_block(ctx, ct, "c.bin")


@check(
    "copy-blob.sync-private-source-shared-key",
    COPY,
    "Shared Key, x-ms-requires-sync, same-account private source without credentials -> refused",
)
def _copy_sync_private_key(ctx: CheckContext) -> None:
    ct = ctx.container("priv")
    url = _source_url(ctx, ct, sas=False)
    headers = {"x-ms-copy-source": url, "x-ms-requires-sync": "true"}
    _refused_without_source_credentials(ctx, ctx.http.request("PUT", ct, "c.bin", headers=headers))
    _absent(ctx, ct, "c.bin")


@check(
    "copy-blob.async-private-source-shared-key",
    COPY,
    "Shared Key, asynchronous Copy Blob of a same-account private source -> 202, bytes copied",
)
def _copy_async_private_key(ctx: CheckContext) -> None:
    ct = ctx.container("priv")
    url = _source_url(ctx, ct, sas=False)
    resp = ctx.http.request("PUT", ct, "c.bin", headers={"x-ms-copy-source": url})
    ctx.expect_status(resp, 202)
    status = resp.header("x-ms-copy-status")
    deadline = time.monotonic() + 10  # a pending copy of 3,000 bytes is followed, bounded
    while status == "pending" and time.monotonic() < deadline:
        time.sleep(0.05)
        status = ctx.head(ct, "c.bin").header("x-ms-copy-status")
    ctx.expect("copy status", "success", status)
    ctx.expect("bytes", BODY, ctx.get(ct, "c.bin").body)

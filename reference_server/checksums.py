"""Transactional checksums of a request body: MD5 and Azure Storage's CRC64, as headers.

Azure Storage's CRC64 is the CRC-64/NVME of the body (reflected polynomial 0x9A6C9329AC4BC9B5,
initial value and final XOR all ones), sent as the base64 of its 8 little-endian bytes. It is
computed with the C extension azure-storage-blob itself uses for ``validate_content="crc64"``
(``azure.storage.extensions.checksums.crc64``, called with an initial CRC of 0; see the SDK's
``_shared/validation.py``), and only when a request carries a CRC64: it holds the GIL at about
the speed of MD5, so the bulk path (which never sends one) does not pay for it.

The header rules follow Azure's REST reference (Put Block, Put Blob, Put Block From URL: "If both
the Content-MD5 and x-ms-content-crc64 headers are present, the request fails with a 400") and
the answers Azurite 3.37 records as verified against Azure (its ``src/blob/utils/utils.ts``,
``computeAndValidateTransactionalChecksums``): a CRC64 value that is not base64 or decodes to
fewer than 8 bytes is 400 ``InvalidHeaderValue`` naming the header; a longer one is taken and
can only end in ``Crc64Mismatch``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from azure.storage.extensions import checksums as _ext

from reference_server.errors import StorageError

CRC64_LENGTH = 8
STRUCTURED_BODY = "x-ms-structured-body"


def crc64(data: bytes, crc: int = 0) -> int:
    """The CRC64 of ``data``, continuing from ``crc`` (0 for the start of a body)."""
    return _ext.crc64.compute(data, crc)


def crc64_bytes(crc: int) -> bytes:
    """The wire form of a CRC64: 8 bytes, little-endian."""
    return crc.to_bytes(CRC64_LENGTH, "little")


def _b64decode(value: str) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def crc64_header(headers: Mapping[str, str], name: str) -> bytes | None:
    """A base64 CRC64 header decoded (None when absent); 400 InvalidHeaderValue when malformed."""
    value = headers.get(name)
    if not value:
        return None
    raw = _b64decode(value)
    if raw is None or len(raw) < CRC64_LENGTH:
        raise StorageError(
            "InvalidHeaderValue",
            f"The value of {name} is not a base64-encoded 64-bit CRC.",
            details={"HeaderName": name, "HeaderValue": value},
        )
    return raw


def md5_header(headers: Mapping[str, str], name: str) -> bytes | None:
    """A base64 MD5 header decoded to 16 bytes (None when absent), or 400 InvalidMd5."""
    value = headers.get(name)
    if not value:
        return None
    raw = _b64decode(value)
    if raw is None or len(raw) != 16:
        raise StorageError("InvalidMd5", details={"HeaderName": name})
    return raw


def transactional(
    headers: Mapping[str, str], md5_name: str, crc64_name: str
) -> tuple[bytes | None, bytes | None]:
    """The (MD5, CRC64) a request asks its body to be checked against; both at once is 400
    BothCrc64AndMd5HeaderPresent, before the body is read. A body framed as a structured
    message (``x-ms-structured-body``: what azure-storage-blob sends for
    ``validate_content="crc64"`` on a stream) is refused, 400 UnsupportedHeader: the façade does
    not decode the framing, and storing it as the blob's bytes would corrupt the blob."""
    if headers.get(STRUCTURED_BODY):
        raise StorageError(
            "UnsupportedHeader",
            "Structured message bodies are not supported; send x-ms-content-crc64 instead.",
            details={"HeaderName": STRUCTURED_BODY},
        )
    if headers.get(md5_name) and headers.get(crc64_name):
        raise StorageError("BothCrc64AndMd5HeaderPresent")
    return md5_header(headers, md5_name), crc64_header(headers, crc64_name)


def stored_md5(headers: Mapping[str, str], name: str) -> str | None:
    """A Content-MD5 property to store as sent (Set Blob Properties): Azure keeps a value that is
    not 16 bytes (the JavaScript SDK's issue 9507: a 32-byte value is refused by Put Blob with
    InvalidMd5 and accepted by Set Blob Properties), so only base64 itself is required here."""
    value = headers.get(name)
    if value and _b64decode(value) is None:
        raise StorageError("InvalidMd5", details={"HeaderName": name})
    return value or None

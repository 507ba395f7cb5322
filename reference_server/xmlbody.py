"""Every XML body the façade sends or reads, built and parsed with lxml (its serialiser is C:
a listing of 5,000 blobs is ~90,000 elements).

Element order follows Azure's REST reference and its published schema (the SDK deserialisers and
AzCopy's Go structs read these documents).
"""

from __future__ import annotations

import copy
import functools
import re
import time
from collections.abc import Iterable
from urllib.parse import quote

from lxml import etree

from reference_server.errors import StorageError
from reference_server.store import BlobProps, BlockInfo, ContainerProps

_SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)

# Anything outside XML 1.0's Char production (C0 controls but tab/LF/CR, U+FFFE, U+FFFF, and the
# lone surrogates a file name that is not UTF-8 decodes to) cannot appear in a document at all,
# not even as a character reference.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_representable(text: str) -> bool:
    """True when ``text`` can be the text of an XML element or attribute as it is."""
    return _NOT_XML_CHAR.search(text) is None


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(ts: float) -> str:
    """RFC 1123 in GMT, as in Last-Modified headers and listing elements (whole seconds)."""
    return _http_date(int(ts))


@functools.lru_cache(maxsize=8192)  # listings repeat the same few seconds many times
def _http_date(seconds: int) -> str:
    t = time.gmtime(seconds)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


_DECLARATION = b'<?xml version="1.0" encoding="utf-8"?>'


def _doc(root: etree._Element) -> bytes:
    return _DECLARATION + etree.tostring(root, encoding="utf-8")


def _sub(parent: etree._Element, tag: str, text: str | int | None = None) -> etree._Element:
    el = etree.SubElement(parent, tag)
    if text is not None:
        el.text = str(text)
    return el


def error_body(code: str, message: str, details: dict[str, str]) -> bytes:
    """The <Error> document. Messages and details may quote what the client sent (a name, a
    header): characters XML cannot carry become U+FFFD, so an error is always renderable."""
    root = etree.Element("Error")
    _sub(root, "Code", code)
    _sub(root, "Message", _NOT_XML_CHAR.sub("\ufffd", message))
    for key, value in details.items():
        _sub(root, key, _NOT_XML_CHAR.sub("\ufffd", value))
    return _doc(root)


def _name(parent: etree._Element, name: str) -> None:
    """A listed blob or prefix name. One XML cannot carry (a control character, U+FFFF, bytes
    that are not UTF-8 in a file name written by another program) is sent percent-encoded with
    ``Encoded="true"``, as Azure does since 2021-02-12; the SDKs unquote it (Python ``unquote``,
    Go ``url.QueryUnescape``, so '+' and ' ' are encoded too)."""
    el = etree.SubElement(parent, "Name")
    if xml_representable(name):
        el.text = name
    else:
        el.set("Encoded", "true")
        el.text = quote(name.encode("utf-8", "surrogateescape"), safe="/")


def _stored_text(el: etree._Element, text: str) -> None:
    """A stored value (content header, metadata). Writes refuse what XML cannot carry; a record
    written before that rule, or by another program, gets U+FFFD instead of failing the
    listing (lxml raises ValueError on such text: no cost on the common path)."""
    try:
        el.text = text
    except ValueError:
        el.text = _NOT_XML_CHAR.sub("\ufffd", text)


def _metadata(parent: etree._Element, metadata: dict[str, str]) -> None:
    meta = _sub(parent, "Metadata")
    for key, value in metadata.items():
        try:
            el = etree.SubElement(meta, key)
        except ValueError:
            continue  # not an XML name: writes only take C# identifiers, so a foreign record
        _stored_text(el, value)


def _echo_query(
    root: etree._Element, prefix: str | None, marker: str | None, maxresults: int | None
) -> None:
    """The listing parameters the client sent, echoed in Azure's element order."""
    for tag, value in (("Prefix", prefix), ("Marker", marker), ("MaxResults", maxresults)):
        if value is not None:
            _sub(root, tag, value)


def list_containers_body(
    service_endpoint: str,
    prefix: str | None,
    marker: str | None,
    maxresults: int | None,
    containers: Iterable[ContainerProps],
    next_marker: str | None,
    include_metadata: bool,
) -> bytes:
    root = etree.Element("EnumerationResults", ServiceEndpoint=service_endpoint)
    _echo_query(root, prefix, marker, maxresults)
    items = _sub(root, "Containers")
    for c in containers:
        el = _sub(items, "Container")
        _sub(el, "Name", c.name)
        props = _sub(el, "Properties")
        _sub(props, "Last-Modified", http_date(c.last_modified))
        _sub(props, "Etag", f'"{c.etag}"')
        _sub(props, "LeaseStatus", "unlocked")
        _sub(props, "LeaseState", "available")
        _sub(props, "HasImmutabilityPolicy", "false")
        _sub(props, "HasLegalHold", "false")
        if include_metadata:
            _metadata(el, c.metadata)
    _sub(root, "NextMarker", next_marker or "")
    return _doc(root)


# include=copy: the copy state a blob keeps (its x-ms-copy-* headers), in the schema's element
# order, between the lease and ServerEncrypted elements (REST "List Blobs" response body)
_COPY_ELEMENTS = (
    ("CopyId", "x-ms-copy-id"),
    ("CopyStatus", "x-ms-copy-status"),
    ("CopySource", "x-ms-copy-source"),
    ("CopyProgress", "x-ms-copy-progress"),
    ("CopyCompletionTime", "x-ms-copy-completion-time"),
    ("CopyStatusDescription", "x-ms-copy-status-description"),
)


# A listing builds <Properties> for every blob: each gets a copy of this template (one C call)
# with its constant elements filled in, and only the variable texts are set, in this order.
_VARIABLE_PROPERTIES = (
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
)
_PROPERTIES = etree.Element("Properties")
for _tag in _VARIABLE_PROPERTIES:
    etree.SubElement(_PROPERTIES, _tag)
for _tag, _text in (
    ("BlobType", "BlockBlob"),
    ("AccessTier", "Hot"),
    ("AccessTierInferred", "true"),
    ("LeaseStatus", "unlocked"),
    ("LeaseState", "available"),
    ("ServerEncrypted", "true"),
):
    _sub(_PROPERTIES, _tag, _text)


def _blob_properties(parent: etree._Element, b: BlobProps, include_copy: bool = False) -> None:
    c = b.content
    props = copy.deepcopy(_PROPERTIES)
    parent.append(props)
    texts = (
        http_date(b.creation_time),
        http_date(b.last_modified),
        b.etag,
        str(b.size),
        c.content_type or "",
        c.content_encoding or "",
        c.content_language or "",
        None,  # Content-CRC64: an empty element
        c.content_md5 or "",
        c.cache_control or "",
        c.content_disposition or "",
    )
    for el, text in zip(props, texts, strict=False):  # stops after the variable ones
        _stored_text(el, text)
    if include_copy and b.copy:
        server_encrypted = props[-1]
        for tag, header in _COPY_ELEMENTS:
            if header in b.copy:
                el = etree.Element(tag)
                _stored_text(el, b.copy[header])
                server_encrypted.addprevious(el)


def list_blobs_body(
    service_endpoint: str,
    container: str,
    prefix: str | None,
    marker: str | None,
    maxresults: int | None,
    delimiter: str | None,
    items: Iterable[BlobProps | str],
    next_marker: str | None,
    include_metadata: bool,
    include_copy: bool = False,
) -> bytes:
    """Blobs and BlobPrefixes interleaved in name order, as Azure sends them. With
    ``include_metadata`` a blob without metadata gets an empty ``<Metadata />``, as Azure sends
    it (responses of a real account in azure-sdk-for-java's DeserializeListBlobsTests
    .metadataListing; Azurite leaves the element out)."""
    root = etree.Element(
        "EnumerationResults", ServiceEndpoint=service_endpoint, ContainerName=container
    )
    _echo_query(root, prefix, marker, maxresults)
    if delimiter is not None:
        _sub(root, "Delimiter", delimiter)
    blobs = _sub(root, "Blobs")
    for item in items:
        if isinstance(item, str):
            _name(_sub(blobs, "BlobPrefix"), item)
            continue
        el = _sub(blobs, "Blob")
        _name(el, item.name)
        _blob_properties(el, item, include_copy)
        if include_metadata:
            _metadata(el, item.metadata)
    _sub(root, "NextMarker", next_marker or "")
    return _doc(root)


def block_list_body(
    committed: list[BlockInfo] | None, uncommitted: list[BlockInfo] | None
) -> bytes:
    root = etree.Element("BlockList")
    for tag, blocks in (("CommittedBlocks", committed), ("UncommittedBlocks", uncommitted)):
        if blocks is None:
            continue
        group = _sub(root, tag)
        for b in blocks:
            el = _sub(group, "Block")
            _sub(el, "Name", b.block_id)
            _sub(el, "Size", b.size)
    return _doc(root)


def parse_xml(body: bytes) -> etree._Element:
    try:
        return etree.fromstring(body, _SAFE_PARSER)
    except etree.XMLSyntaxError:
        raise StorageError("InvalidXmlDocument") from None


def parse_block_list(body: bytes) -> list[tuple[str, str]]:
    """``<BlockList><Latest>id</Latest>...`` -> [("Latest", id), ...] in document order."""
    root = parse_xml(body)
    if root.tag != "BlockList":
        raise StorageError("InvalidXmlDocument")
    entries = []
    for el in root:
        if not isinstance(el.tag, str):
            continue  # comments, processing instructions
        if el.tag not in ("Latest", "Committed", "Uncommitted"):
            raise StorageError("InvalidXmlNodeValue", f"Unexpected element {el.tag}.")
        entries.append((el.tag, (el.text or "").strip()))
    return entries


def default_service_properties() -> bytes:
    """What Get Service Properties answers before anything was set."""
    root = etree.Element("StorageServiceProperties")
    logging = _sub(root, "Logging")
    _sub(logging, "Version", "1.0")
    for op in ("Delete", "Read", "Write"):
        _sub(logging, op, "false")
    _sub(_sub(logging, "RetentionPolicy"), "Enabled", "false")
    for tag in ("HourMetrics", "MinuteMetrics"):
        m = _sub(root, tag)
        _sub(m, "Version", "1.0")
        _sub(m, "Enabled", "false")
        _sub(_sub(m, "RetentionPolicy"), "Enabled", "false")
    _sub(root, "Cors")
    _sub(_sub(root, "DeleteRetentionPolicy"), "Enabled", "false")
    _sub(_sub(root, "StaticWebsite"), "Enabled", "false")
    return _doc(root)


def check_service_properties(body: bytes) -> None:
    if parse_xml(body).tag != "StorageServiceProperties":
        raise StorageError("InvalidXmlDocument")


def parse_key_info(body: bytes) -> tuple[str | None, str]:
    """``<KeyInfo><Start/><Expiry/></KeyInfo>`` -> (start or None, expiry) as sent."""
    root = parse_xml(body)
    if root.tag != "KeyInfo":
        raise StorageError("InvalidXmlDocument")
    expiry = (root.findtext("Expiry") or "").strip()
    if not expiry:
        raise StorageError("InvalidXmlNodeValue", "KeyInfo needs an Expiry.")
    start = (root.findtext("Start") or "").strip() or None
    return start, expiry


def user_delegation_key_body(fields: dict[str, str], value: str) -> bytes:
    """The Get User Delegation Key answer, elements in Azure's order."""
    root = etree.Element("UserDelegationKey")
    for tag, name in (
        ("SignedOid", "skoid"),
        ("SignedTid", "sktid"),
        ("SignedStart", "skt"),
        ("SignedExpiry", "ske"),
        ("SignedService", "sks"),
        ("SignedVersion", "skv"),
    ):
        _sub(root, tag, fields[name])
    _sub(root, "Value", value)
    return _doc(root)

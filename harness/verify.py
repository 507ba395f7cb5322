"""Check transfers against a dataset's manifest: what came back byte for byte (md5 and sha256),
what landed in a container by its listing (name, size and, where the tool set it, Content-MD5).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from harness.datasets import Dataset, file_digests
from harness.http import BlobHttp
from harness.targets.base import Endpoint

LIST_PAGE = 5000  # the most List Blobs returns per page


@dataclass
class VerifyResult:
    objects: int = 0  # files that match the manifest
    bytes: int = 0  # bytes of those files
    missing: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)  # wrong size or checksum
    extra: list[str] = field(default_factory=list)  # files not in the manifest
    md5_checked: int = 0  # objects whose Content-MD5 was compared (a listing may lack it)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.mismatched)

    def summary(self) -> str:
        parts = [f"{self.objects} objects / {self.bytes} bytes verified"]
        for label, items in (("missing", self.missing), ("mismatched", self.mismatched)):
            if items:
                parts.append(f"{len(items)} {label} (e.g. {', '.join(items[:3])})")
        if self.extra:
            parts.append(f"{len(self.extra)} extra")
        return "; ".join(parts)


def verify_tree(local_dir: Path, dataset: Dataset) -> VerifyResult:
    """Compare every manifest entry with ``local_dir/<path>``; list files the manifest lacks."""
    local_dir = Path(local_dir)
    result = VerifyResult()
    expected = set()
    for entry in dataset.files:
        expected.add(entry.path)
        path = local_dir / entry.path
        if not path.is_file():
            result.missing.append(entry.path)
            continue
        if path.stat().st_size != entry.size or file_digests(path) != (entry.md5, entry.sha256):
            result.mismatched.append(entry.path)
            continue
        result.objects += 1
        result.bytes += entry.size
    if local_dir.is_dir():
        for path in sorted(local_dir.rglob("*")):
            rel = path.relative_to(local_dir).as_posix()
            if path.is_file() and rel not in expected:
                result.extra.append(rel)
    return result


def verify_remote_md5(
    listing: Iterable[tuple[str, bytes | str | None]], dataset: Dataset, prefix: str = ""
) -> VerifyResult:
    """Compare (blob name, Content-MD5) pairs from a listing with the manifest's md5.

    Content-MD5 may be raw bytes (the SDK's ``content_settings.content_md5``) or base64 text.
    """
    remote: dict[str, str | None] = {}
    for name, md5 in listing:
        if isinstance(md5, str):
            md5 = base64.b64decode(md5) if md5 else None
        remote[name.removeprefix(prefix)] = md5.hex() if md5 else None
    result = VerifyResult()
    for entry in dataset.files:
        if entry.path not in remote:
            result.missing.append(entry.path)
        elif remote.pop(entry.path) != entry.md5:
            result.mismatched.append(entry.path)
        else:
            result.objects += 1
            result.bytes += entry.size
    result.extra = sorted(remote)
    return result


def remote_listing(
    endpoint: Endpoint, container: str, prefix: str = ""
) -> list[tuple[str, int, str | None]]:
    """(name, Content-Length, Content-MD5 base64 or None) of every blob under ``prefix``,
    listed with the harness's own raw requests (all pages)."""
    http = BlobHttp(endpoint.blob_url, endpoint.account, endpoint.key, ca_bundle=endpoint.ca_bundle)
    http.sas = endpoint.sas
    out: list[tuple[str, int, str | None]] = []
    marker = ""
    try:
        for _ in range(100_000):  # bounded: 500 M objects at most
            query = {"restype": "container", "comp": "list", "maxresults": str(LIST_PAGE)}
            if prefix:
                query["prefix"] = prefix
            if marker:
                query["marker"] = marker
            resp = http.request("GET", container, query=query)
            if resp.status != 200:
                raise ValueError(f"List Blobs answered {resp.status} {resp.error_code or ''}")
            root = resp.xml()
            for blob in root.iter("Blob"):
                props = blob.find("Properties")
                size = props.findtext("Content-Length") if props is not None else None
                md5 = props.findtext("Content-MD5") if props is not None else None
                out.append((blob.findtext("Name") or "", int(size or 0), md5 or None))
            marker = root.findtext("NextMarker") or ""
            if not marker:
                break
    finally:
        http.close()
    return out


def verify_listing(
    listing: Iterable[tuple[str, int, str | None]], dataset: Dataset, prefix: str = ""
) -> VerifyResult:
    """Compare a container listing with the manifest: every entry must be there with its size,
    and with its MD5 wherever the listing carries a Content-MD5."""
    remote = {name.removeprefix(prefix): (size, md5) for name, size, md5 in listing}
    result = VerifyResult()
    for entry in dataset.files:
        if entry.path not in remote:
            result.missing.append(entry.path)
            continue
        size, md5 = remote.pop(entry.path)
        if md5:
            result.md5_checked += 1
        if size != entry.size or (md5 and base64.b64decode(md5).hex() != entry.md5):
            result.mismatched.append(entry.path)
            continue
        result.objects += 1
        result.bytes += entry.size
    result.extra = sorted(remote)
    return result

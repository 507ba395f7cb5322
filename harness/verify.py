"""Check what came back against a dataset's manifest, byte for byte (md5 and sha256)."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from harness.datasets import Dataset, file_digests


@dataclass
class VerifyResult:
    objects: int = 0  # files that match the manifest
    bytes: int = 0  # bytes of those files
    missing: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)  # wrong size or checksum
    extra: list[str] = field(default_factory=list)  # files not in the manifest

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

"""Deterministic datasets generated from a seed, with a manifest of checksums (filled in by the harness core)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ManifestEntry:
    path: str  # relative POSIX path inside the dataset root == blob name suffix
    size: int
    md5: str  # hex
    sha256: str  # hex


@dataclass
class Dataset:
    name: str
    root: Path  # directory holding the files
    files: list[ManifestEntry] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def count(self) -> int:
        return len(self.files)

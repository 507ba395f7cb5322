"""Deterministic datasets generated from a seed, with a manifest of checksums.

A dataset spec is plain data (a dict, a dataclass or the harness's pydantic model)::

    {"name": "small-and-large", "seed": 7, "files": [
        {"count": 300, "size_min": 1024, "size_max": 65536, "dir_depth": 2, "prefix": "small/"},
        {"count": 2, "size": "24MiB", "prefix": "large/"},
        {"count": 50, "size_mean": "1MiB", "size_sigma": 0.8},   # lognormal around a median
    ]}

The same (spec, seed) always yields the same names and bytes. Generated trees are cached under
``cache_dir/<name>-<hash of spec and seed>/`` with ``manifest.json`` (md5 + sha256 per file) next
to the ``files/`` directory, so a second run reuses them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CHUNK = 8 * 1024 * 1024  # generate and hash in 8 MiB blocks: bounded memory at disk speed
FANOUT = 4  # sub-directories per level in nested layouts
MANIFEST = "manifest.json"
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 10**6, "mb": 10**6}
_UNITS |= {"mib": 1024**2, "g": 10**9, "gb": 10**9, "gib": 1024**3, "tib": 1024**4}


CACHE_ENV = "HARNESS_CACHE_DIR"  # where generated datasets are kept, when set


def default_cache_dir() -> Path:
    """``$HARNESS_CACHE_DIR``, else ``$XDG_CACHE_HOME/blob-facade-lab/datasets``, else
    ``~/.cache/blob-facade-lab/datasets``: a user cache, never the install folder."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "blob-facade-lab" / "datasets"


class DatasetError(RuntimeError):
    """The dataset cannot be generated (bad spec, not enough disk)."""


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


def parse_size(value: int | float | str) -> int:
    """Bytes from an int or a string such as ``64KiB``, ``1.5 MiB``, ``4096``."""
    if isinstance(value, int | float):
        return int(value)
    match = re.fullmatch(r"\s*([\d.]+)\s*([a-zA-Z]*)\s*", value)
    if not match or match.group(2).lower() not in _UNITS:
        raise DatasetError(f"cannot read size {value!r} (use bytes or e.g. 64KiB, 8MiB, 2GiB)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _plain(spec: Any) -> dict[str, Any]:
    """The spec as a plain dict whatever it came as (dict, dataclass, pydantic model)."""
    if hasattr(spec, "model_dump"):
        return spec.model_dump()
    if dataclasses.is_dataclass(spec) and not isinstance(spec, type):
        return dataclasses.asdict(spec)
    if isinstance(spec, Mapping):
        return {k: (_plain(v) if isinstance(v, Mapping) else v) for k, v in spec.items()}
    raise DatasetError(f"dataset spec must be a mapping, dataclass or model, not {type(spec)!r}")


def _group_sizes(group: Mapping[str, Any], rng: np.random.Generator) -> list[int]:
    count = int(group.get("count") or 1)
    if group.get("size") is not None:
        return [parse_size(group["size"])] * count
    lo = parse_size(group["size_min"]) if group.get("size_min") is not None else None
    hi = parse_size(group["size_max"]) if group.get("size_max") is not None else None
    if group.get("size_mean") is not None:
        # lognormal with the given median; sigma is the shape (0.5 tight .. 2 heavy-tailed)
        median = parse_size(group["size_mean"])
        sigma = float(group.get("size_sigma") or 1.0)
        sizes = rng.lognormal(np.log(max(median, 1)), sigma, count)
        sizes = np.clip(sizes, lo or 0, hi or np.inf)
        return [int(s) for s in sizes]
    if lo is not None and hi is not None:
        if hi < lo:
            raise DatasetError(f"size_max {hi} < size_min {lo}")
        return [int(s) for s in rng.integers(lo, hi, count, endpoint=True)]
    raise DatasetError(f"file group {dict(group)} needs size, size_min+size_max or size_mean")


def plan(spec: Any, seed: int | None = None) -> tuple[str, int, list[tuple[str, int]]]:
    """(name, seed, [(relative path, size)]) of a spec, without writing anything."""
    data = _plain(spec)
    name = str(data.get("name") or "dataset")
    seed = int(seed if seed is not None else data.get("seed") or 0)
    rng = np.random.default_rng(seed)
    files: list[tuple[str, int]] = []
    for gi, group in enumerate(data.get("files") or []):
        group = _plain(group)
        prefix = str(group.get("prefix") or "")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        depth = int(group.get("dir_depth") or 0)
        for fi, size in enumerate(_group_sizes(group, rng)):
            dirs = [f"d{level}-{int(rng.integers(0, FANOUT))}" for level in range(depth)]
            rel = prefix + "".join(d + "/" for d in dirs) + f"g{gi}-{fi:06d}.bin"
            files.append((rel, size))
    if not files:
        raise DatasetError(f"dataset {name!r} has no files")
    return name, seed, files


def _cache_key(data: dict[str, Any], seed: int) -> str:
    blob = json.dumps({"spec": data, "seed": seed, "format": 1}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def write_file(path: Path, size: int, seed: int) -> tuple[str, str]:
    """Write ``size`` deterministic bytes from ``seed``; return (md5, sha256) hex digests."""
    rng = np.random.Generator(np.random.SFC64(seed))
    md5, sha = hashlib.md5(), hashlib.sha256()

    def digest(block: bytes) -> None:
        md5.update(block)  # hashlib releases the GIL: hashing overlaps the next block
        sha.update(block)

    path.parent.mkdir(parents=True, exist_ok=True)
    if size <= CHUNK:  # one block: no pipeline worth a thread
        block = rng.bytes(size)
        digest(block)
        path.write_bytes(block)
        return md5.hexdigest(), sha.hexdigest()
    with open(path, "wb") as fh, ThreadPoolExecutor(1) as hasher:
        pending = None
        left = size
        while left > 0:
            block = rng.bytes(min(CHUNK, left))
            if pending is not None:
                pending.result()
            pending = hasher.submit(digest, block)
            fh.write(block)
            left -= len(block)
        if pending is not None:
            pending.result()
    return md5.hexdigest(), sha.hexdigest()


def file_digests(path: Path) -> tuple[str, str]:
    """(md5, sha256) hex digests of a file, read in large blocks."""
    md5, sha = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            md5.update(block)
            sha.update(block)
    return md5.hexdigest(), sha.hexdigest()


def load_manifest(path: Path, name: str, root: Path) -> Dataset:
    entries = json.loads(path.read_text())["files"]
    return Dataset(name, root, [ManifestEntry(**e) for e in entries])


def generate_dataset(spec: Any, cache_dir: Path, seed: int | None = None) -> Dataset:
    """Generate (or reuse from ``cache_dir``) the dataset described by ``spec``."""
    data = _plain(spec)
    name, seed, files = plan(data, seed)
    base = Path(cache_dir) / f"{name}-{_cache_key(data, seed)}"
    manifest = base / MANIFEST
    if manifest.is_file():
        return load_manifest(manifest, name, base / "files")

    total = sum(size for _, size in files)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(cache_dir).free
    if total + 256 * 1024 * 1024 > free:
        raise DatasetError(
            f"dataset {name!r} needs {total / 2**30:.2f} GiB but {cache_dir} has "
            f"{free / 2**30:.2f} GiB free (keeping 256 MiB spare)"
        )
    staging = base.with_name(base.name + f".tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    entries = []
    for index, (rel, size) in enumerate(files):
        # each file has its own stream, so its bytes do not depend on the files before it
        md5, sha = write_file(staging / "files" / rel, size, seed * 1_000_003 + index)
        entries.append(ManifestEntry(rel, size, md5, sha))
    doc = {
        "name": name,
        "seed": seed,
        "spec": data,
        "files": [dataclasses.asdict(e) for e in entries],
    }
    (staging / MANIFEST).write_text(json.dumps(doc, indent=1, default=str))
    try:
        staging.rename(base)  # atomic: a half-generated tree is never taken from the cache
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # another process won the race
    return load_manifest(base / MANIFEST, name, base / "files")


def dataset_from_dir(root: Path, name: str | None = None) -> Dataset:
    """A Dataset describing the files already under ``root`` (checksums computed now)."""
    root = Path(root)
    entries = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        md5, sha = file_digests(path)
        entries.append(
            ManifestEntry(path.relative_to(root).as_posix(), path.stat().st_size, md5, sha)
        )
    return Dataset(name or root.name, root, entries)

"""The listing walk: blob names of a container directory in lexicographic order of full names.

Siblings are sorted by ``name + "/"`` for directories and ``name`` for files, which orders the
whole tree by full name (``a-b`` < ``a.b`` < ``a/b``) while reading one directory at a time.
Directories that cannot hold a name past the marker or under the prefix are never opened; with
delimiter ``/`` a directory under the prefix becomes one BlobPrefix without being walked.
Markers are opaque to clients: base64 of a kind letter (B blob, P prefix) and the last name.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from reference_server.errors import StorageError
from reference_server.store.model import BlobProps, ListPage


@dataclass(frozen=True)
class Marker:
    value: str
    is_prefix: bool

    def encode(self) -> str:
        raw = ("P" if self.is_prefix else "B") + self.value
        return base64.urlsafe_b64encode(raw.encode("utf-8", "surrogateescape")).decode()

    @classmethod
    def decode(cls, text: str | None) -> Marker | None:
        if not text:
            return None
        try:
            raw = base64.urlsafe_b64decode(text.encode()).decode("utf-8", "surrogateescape")
        except (binascii.Error, ValueError):
            raise StorageError("InvalidQueryParameterValue", "The marker is invalid.") from None
        if not raw or raw[0] not in "BP":
            raise StorageError("InvalidQueryParameterValue", "The marker is invalid.")
        return cls(raw[1:], raw[0] == "P")

    def passed(self, name: str) -> bool:
        """True when ``name`` (a blob or prefix) comes after this marker."""
        return name > self.value and not (self.is_prefix and name.startswith(self.value))

    def prunes_dir(self, key: str) -> bool:
        """True when nothing under the directory ``key`` (ends with /) comes after the marker."""
        if self.value.startswith(key):
            return False
        if self.is_prefix and key.startswith(self.value):
            return True
        return key < self.value


def _has_file(path: str) -> bool:
    try:
        with os.scandir(path) as it:
            for entry in it:
                if entry.is_file(follow_symlinks=False):
                    return True
                if entry.is_dir(follow_symlinks=False) and _has_file(entry.path):
                    return True
    except OSError:
        return False
    return False


def _walk(
    base: str, rel: str, prefix: str, marker: Marker | None, slash_delim: bool
) -> Iterator[tuple[str, os.DirEntry | None]]:
    try:
        with os.scandir(os.path.join(base, rel) if rel else base) as it:
            entries = []
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    entries.append((rel + e.name + "/", e))
                elif e.is_file(follow_symlinks=False):
                    entries.append((rel + e.name, e))
    except (FileNotFoundError, NotADirectoryError):
        return
    entries.sort(key=lambda t: t[0])
    for key, entry in entries:
        if key.endswith("/"):
            if not (key.startswith(prefix) or prefix.startswith(key)):
                continue
            if marker is not None and marker.prunes_dir(key):
                continue
            if slash_delim and key.startswith(prefix) and len(key) > len(prefix):
                if _has_file(entry.path) and (marker is None or marker.passed(key)):
                    yield key, None  # a BlobPrefix
                continue
            yield from _walk(base, key, prefix, marker, slash_delim)
        elif key.startswith(prefix) and (marker is None or marker.passed(key)):
            yield key, entry


def iter_listing(
    container_dir: str, prefix: str, delimiter: str | None, marker: Marker | None
) -> Iterator[tuple[str, os.DirEntry | None]]:
    """Yield (name, entry) for blobs and (prefix, None) for BlobPrefix items, in order."""
    last_group: str | None = None
    for name, entry in _walk(container_dir, "", prefix, marker, delimiter == "/"):
        if entry is not None and delimiter:
            cut = name.find(delimiter, len(prefix))
            if cut >= 0:
                group = name[: cut + len(delimiter)]
                if group != last_group and (marker is None or marker.passed(group)):
                    last_group = group
                    yield group, None
                continue
        yield name, entry


def list_page(
    container_dir: str,
    prefix: str,
    delimiter: str | None,
    marker: str | None,
    maxresults: int,
    describe: Callable[[str, os.stat_result, str], BlobProps],
) -> ListPage:
    """One page of the listing from ``marker``; ``describe(name, stat, path)`` gives a blob's
    properties (its record)."""
    items: list[BlobProps | str] = []
    last: Marker | None = None
    for name, entry in iter_listing(container_dir, prefix, delimiter, Marker.decode(marker)):
        if len(items) == maxresults:
            return ListPage(items, last.encode() if last else None)
        if entry is None:
            items.append(name)
            last = Marker(name, True)
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # deleted while listing
        items.append(describe(name, st, entry.path))
        last = Marker(name, False)
    return ListPage(items, None)

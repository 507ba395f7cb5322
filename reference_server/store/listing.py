"""The listing walk: blob names of a container directory in lexicographic order of full names.

Siblings are ordered by ``name + "/"`` for directories and ``name`` for files, which orders the
whole tree by full name (``a-b`` < ``a.b`` < ``a/b``, code point order, which is UTF-8 byte
order) while reading one directory at a time. A page does no work in proportion to the
container:

- a prefix ``a/b/x`` goes straight to the directory ``a/b`` (no walk above it), and a marker
  ``a/c/d`` straight back into ``a/c``: directories wholly before the marker are never opened;
- each directory is read into a *window*: the smallest entries after the position asked for
  (``FIRST_WINDOW``, then growing up to ``WINDOW``), picked while the entries stream by
  (``smallest``: never the whole directory sorted, never every name held), and kept per worker
  for the next page. A window is trusted only while the directory's identity, mtime and ctime
  are unchanged and that mtime is more than ``RACY_NS`` older than the read, so a file another
  program adds or removes is seen by the next page, even within one tick of the filesystem
  clock;
- with delimiter ``/`` a directory under the prefix becomes one BlobPrefix without being walked.

Records are read by the caller only for the blobs on the page (``describe``). Markers are opaque
to clients: base64 of a kind letter (B blob, P prefix) and the last name; a page resumes after
that name whatever was added or deleted in between.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import heapq
import itertools
import os
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from operator import itemgetter

from reference_server.errors import StorageError
from reference_server.store.model import BlobProps, ListPage
from reference_server.store.names import name_problem

WINDOW = 100_000  # sorted entries read ahead per directory (~8 MiB of names)
# A directory's first window is small (a first page of a huge directory costs the read, not
# the cut of a big window: 0.41 s instead of 0.58 s for 1,000,000 entries); each next one is 8
# times larger.
FIRST_WINDOW = 5_120
GROWTH = 8
MAX_CACHED_KEYS = 400_000  # entries kept across all windows of a worker (~32 MiB)
MAX_CACHED_WINDOWS = 4096
# A directory changed this recently may change again without its mtime moving (timestamps come
# from a coarse clock, or whole seconds on some filesystems): its window is not kept.
RACY_NS = 1_000_000_000

# Item kinds of the walk
BLOB, PREFIX, UNCOMMITTED = 0, 1, 2


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


@dataclass(frozen=True)
class _Window:
    """The sorted entries of one directory (``name/`` for subdirectories) after ``lo``
    (exclusive; None: from the start), up to its last key or, when ``complete``, to the end."""

    stamp: tuple[int, int, int, int]
    lo: str | None
    keys: list[str]
    complete: bool

    def covers(self, after: str | None) -> bool:
        if self.lo is not None and (after is None or after < self.lo):
            return False
        return self.complete or (after is None or after < self.keys[-1])


class DirWindows:
    """Per-worker read-ahead of directory entries in name order (see the module docstring)."""

    def __init__(
        self, window: int = WINDOW, max_keys: int = MAX_CACHED_KEYS, first: int = FIRST_WINDOW
    ) -> None:
        self.window = window
        self.first = min(first, window)
        self.max_keys = max_keys
        self._cache: OrderedDict[tuple[str, str], _Window] = OrderedDict()
        self._keys = 0
        self._lock = threading.Lock()  # the store runs in several threads
        self.scans = 0  # directories read (a counter the tests watch)

    def entries(self, path: str, pr: str, after: str | None) -> Iterator[str]:
        """The keys of directory ``path`` that start with ``pr`` and sort after ``after``,
        in order, read ahead a window at a time."""
        size = self.first
        while True:
            w = self._get(path, pr, after, size)
            if w is None:
                return
            keys = w.keys
            for i in range(0 if after is None else bisect.bisect_right(keys, after), len(keys)):
                yield keys[i]
            if w.complete:
                return
            after = keys[-1]
            size = min(self.window, len(keys) * GROWTH)

    def _get(self, path: str, pr: str, after: str | None, size: int) -> _Window | None:
        started = time.time_ns()
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISDIR(st.st_mode):
            return None
        # ctime too: a program that sets the mtime back (rsync -a, cp -a) still changes it
        stamp = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
        key = (path, pr)
        with self._lock:
            w = self._cache.get(key)
            if w is not None:
                self._cache.move_to_end(key)
        if w is not None:
            if w.stamp == stamp and w.covers(after):
                return w
            if not w.complete:  # a listing going on past its window: the next one is larger
                size = max(size, min(self.window, len(w.keys) * GROWTH))
        w = self._scan(path, pr, after, stamp, size)
        if w is not None and st.st_mtime_ns < started - RACY_NS:
            self._put(key, w)
        return w

    def _scan(
        self, path: str, pr: str, after: str | None, stamp: tuple, size: int
    ) -> _Window | None:
        self.scans += 1

        def keys() -> Iterator[str]:
            with os.scandir(path) as it:
                for e in it:
                    name = e.name
                    if pr and not name.startswith(pr):
                        continue
                    if e.is_file(follow_symlinks=False):
                        k = name
                    elif e.is_dir(follow_symlinks=False):
                        k = name + "/"
                    else:
                        continue  # symlinks, sockets, ...: not blobs
                    if after is None or k > after:
                        yield k

        try:
            best = smallest(keys(), size + 1)
        except (FileNotFoundError, NotADirectoryError):
            return None
        complete = len(best) <= size
        return _Window(stamp, after, best[:size], complete)

    def _put(self, key: tuple[str, str], w: _Window) -> None:
        with self._lock:
            old = self._cache.pop(key, None)
            if old is not None:
                self._keys -= len(old.keys)
            self._cache[key] = w
            self._keys += len(w.keys)
            while self._cache and (
                self._keys > self.max_keys or len(self._cache) > MAX_CACHED_WINDOWS
            ):
                _, evicted = self._cache.popitem(last=False)
                self._keys -= len(evicted.keys)


def smallest(keys: Iterator[str], n: int) -> list[str]:
    """The ``n`` smallest of distinct ``keys``, sorted, holding at most about 2n of them: keys
    come in batches; past 2n candidates they are sorted and cut to n, and from then on only
    keys below the n-th are kept (twice as fast as a heap of 100,000 in CPython)."""
    cand: list[str] = []
    cut: str | None = None
    while batch := list(itertools.islice(keys, 8192)):
        if cut is None:
            cand += batch
        else:
            cand += [k for k in batch if k < cut]
        if len(cand) >= 2 * n:
            cand.sort()
            del cand[n:]
            cut = cand[-1]
    cand.sort()
    del cand[n:]
    return cand


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


class Listing:
    """List Blobs over container directories, with this worker's directory windows."""

    def __init__(self, windows: DirWindows | None = None) -> None:
        self.windows = windows or DirWindows()

    def _walk(
        self,
        ct_dir: str,
        rel: str,
        pr: str,
        after: str | None,
        marker: Marker | None,
        slash_delim: bool,
    ) -> Iterator[tuple[str, int]]:
        """(name, kind) under the directory ``rel`` ('' or ending in '/') for entries starting
        with ``pr``, after ``after`` (the marker relative to ``rel``)."""
        lower = after
        if after is not None and (cut := after.find("/")) >= 0:
            first, rest = after[: cut + 1], after[cut + 1 :]
            lower = first  # the marker's directory is finished once this descent ends
            if rest and not slash_delim and first.startswith(pr):
                yield from self._walk(ct_dir, rel + first, "", rest, marker, False)
        path = os.path.join(ct_dir, rel) if rel else ct_dir
        for key in self.windows.entries(path, pr, lower):
            name = rel + key
            if key[-1] != "/":
                if marker is None or marker.passed(name):
                    yield name, BLOB
            elif slash_delim:
                if marker is not None and not marker.passed(name):
                    continue
                if _has_file(os.path.join(ct_dir, name)):
                    yield name, PREFIX
            elif marker is None or not marker.prunes_dir(name):
                yield from self._walk(ct_dir, name, "", None, marker, False)

    def iter_listing(
        self, ct_dir: str, prefix: str, delimiter: str | None, marker: Marker | None
    ) -> Iterator[tuple[str, int]]:
        """(name, BLOB) for blobs and (prefix, PREFIX) for BlobPrefix items, in order."""
        cut = prefix.rfind("/")
        base, pr = prefix[: cut + 1], prefix[cut + 1 :]
        if base and name_problem(base[:-1]):
            return  # no blob name starts like this ('a//', '../', ...)
        after = None
        if marker is not None:
            if marker.value.startswith(base):
                after = marker.value[len(base) :]
            elif marker.value > base:
                return  # every name under the prefix sorts before the marker
        walk = self._walk(ct_dir, base, pr, after, marker, delimiter == "/")
        if not delimiter or delimiter == "/":
            yield from walk
            return
        yield from group(walk, prefix, delimiter, marker)

    def page(
        self,
        ct_dir: str,
        prefix: str,
        delimiter: str | None,
        marker: str | None,
        maxresults: int,
        describe: Callable[[str, os.stat_result, str], BlobProps],
        uncommitted: Iterable[str] = (),
        describe_uncommitted: Callable[[str], BlobProps | None] | None = None,
    ) -> ListPage:
        """One page of the listing from ``marker``; ``describe(name, stat, path)`` gives a
        committed blob's properties (its record), read only for the blobs on the page.
        ``uncommitted``: names of blobs with only staged blocks, sorted, merged in
        (``describe_uncommitted`` gives their properties, None when they went away)."""
        start = Marker.decode(marker)
        items: list[BlobProps | str] = []
        last, last_is_prefix = None, False
        listing = self.iter_listing(ct_dir, prefix, delimiter, start)
        staged = _staged_items(uncommitted, prefix, delimiter, start)
        if staged is not None:
            listing = _merge(listing, staged)
        root = ct_dir + "/"
        for name, kind in listing:
            if len(items) == maxresults:
                return ListPage(items, Marker(last, last_is_prefix).encode() if last else None)
            if kind == PREFIX:
                items.append(name)
                last, last_is_prefix = name, True
                continue
            if kind == UNCOMMITTED:
                props = describe_uncommitted(name) if describe_uncommitted else None
                if props is None:
                    continue
            else:
                path = root + name
                try:
                    st = os.lstat(path)
                except (FileNotFoundError, NotADirectoryError):
                    continue  # deleted while listing
                if not stat.S_ISREG(st.st_mode):
                    continue
                props = describe(name, st, path)
            items.append(props)
            last, last_is_prefix = name, False
        return ListPage(items, None)


def group(
    walk: Iterable[tuple[str, int]], prefix: str, delimiter: str, marker: Marker | None
) -> Iterator[tuple[str, int]]:
    """Blobs whose name has ``delimiter`` after ``prefix`` folded into one BlobPrefix each."""
    last_group: str | None = None
    for name, kind in walk:
        cut = name.find(delimiter, len(prefix))
        if cut >= 0:
            g = name[: cut + len(delimiter)]
            if g != last_group and (marker is None or marker.passed(g)):
                last_group = g
                yield g, PREFIX
            continue
        yield name, kind


def _staged_items(
    names: Iterable[str], prefix: str, delimiter: str | None, marker: Marker | None
) -> Iterator[tuple[str, int]] | None:
    wanted = [n for n in names if n.startswith(prefix) and (marker is None or marker.passed(n))]
    if not wanted:
        return None
    items = ((n, UNCOMMITTED) for n in wanted)
    return group(items, prefix, delimiter, marker) if delimiter else items


def _merge(
    walk: Iterator[tuple[str, int]], staged: Iterator[tuple[str, int]]
) -> Iterator[tuple[str, int]]:
    """Both streams in name order; a name both give (a committed blob that also has staged
    blocks, or one BlobPrefix) appears once, as the walk gives it."""
    last = None
    for name, kind in heapq.merge(walk, staged, key=itemgetter(0)):
        if name != last:
            last = name
            yield name, kind

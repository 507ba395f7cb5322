"""The List Blobs walk called on the store (no HTTP): order, markers, prefixes and delimiters
against a model listing, files placed by other programs, and the work one page costs."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from reference_server.conditions import Conditions
from reference_server.store import BlobProps, ContentSettings, Store
from reference_server.store import listing as listing_mod
from reference_server.store.listing import DirWindows, Listing

ACCT, CT = "acct", "ctr"
OLD = 1_000_000_000  # an mtime (2001) far outside the racy window: windows are kept


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "data", [ACCT])
    s.create_container(ACCT, CT, {})
    return s


def ct_dir(store: Store) -> Path:
    return Path(store.root) / ACCT / CT


def place(store: Store, names: list[str], *, age: bool = True) -> None:
    """Write files the way another program would, then (``age``) date their directories in the
    past so the workers' windows are kept: later changes must be seen through the mtime."""
    root = ct_dir(store)
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode()[:8])
    if age:
        age_dirs(root)


def age_dirs(root: Path) -> None:
    for d, _, _ in os.walk(root):
        os.utime(d, ns=(OLD, OLD))


def model(names: list[str], prefix: str, delimiter: str | None) -> list[str]:
    """What a listing must give: full names in code point order, grouped by delimiter."""
    out: list[str] = []
    for n in sorted(n for n in names if n.startswith(prefix)):
        cut = n.find(delimiter, len(prefix)) if delimiter else -1
        item = n[: cut + len(delimiter)] if delimiter and cut >= 0 else n
        if not out or out[-1] != item:
            out.append(item)
    return out


def list_all(
    store: Store, prefix: str = "", delimiter: str | None = None, page: int = 1000
) -> tuple[list[str], int]:
    seen: list[str] = []
    marker, pages = None, 0
    while True:
        got = store.list_blobs(ACCT, CT, prefix, delimiter, marker, page)
        seen += [i if isinstance(i, str) else i.name for i in got.items]
        pages += 1
        marker = got.next_marker
        if not marker:
            return seen, pages
        assert len(got.items) == page  # only the last page is short
        assert pages < 100_000


NAMES = [
    "a-b", "a.b", "a/x", "a0", "ab/c", "ab-c", "b/a-", "b/a.x", "b/a/x", "b/a/y/z", "b/ab", "B",
    "Z/q", "é.txt", "é/x", "\u00ff", "\u4e2d/文件", "😀/x", "😀-", "x/y/z/w", "x/y-z", "x/y.z",
    "x/y0", "sp ace/x", "sp ace.txt", "pct%2F", "~tilde",
]  # fmt: skip


def test_order_is_code_point_order_of_full_names(store: Store) -> None:
    place(store, NAMES)
    expected = sorted(NAMES)
    assert list_all(store)[0] == expected
    for page in (1, 2, 3, 7):
        assert list_all(store, page=page) == (expected, -(-len(expected) // page))


@pytest.mark.parametrize("window", [2, 3, 50_000])
def test_prefixes_delimiters_and_markers_match_the_model(store: Store, window: int) -> None:
    """Every prefix (each possible cut of every name), with and without delimiters, at page
    sizes around the sizes of the directories, also with windows smaller than a directory."""
    place(store, NAMES)
    store._listing = Listing(DirWindows(window=window))
    prefixes = {n[:i] for n in NAMES for i in range(len(n) + 1)} | {"zz", "b/a/"}
    for prefix in sorted(prefixes):
        for delimiter in (None, "/", "-", "a/"):
            want = model(NAMES, prefix, delimiter)
            for page in (1, 2, 5, 1000):
                got, _ = list_all(store, prefix, delimiter, page)
                assert got == want, (prefix, delimiter, page)


def test_prefix_that_no_name_can_have_lists_nothing(store: Store) -> None:
    place(store, ["a/b", "c"])
    for prefix in ("../", "a//", "./a", "a/../", "/"):
        assert list_all(store, prefix)[0] == []


@pytest.mark.parametrize("count", [999, 1000, 1001, 2000])
def test_pages_around_the_page_size(store: Store, count: int) -> None:
    names = [f"d{i % 3}/f{i:05d}" for i in range(count)] + [f"f{i:04d}" for i in range(7)]
    place(store, names)
    got, pages = list_all(store, page=1000)
    assert got == sorted(names) and pages == -(-len(names) // 1000)
    assert list_all(store, "d1/", page=1000)[0] == sorted(n for n in names if n[:3] == "d1/")


def test_marker_resumes_after_adds_and_deletes_between_pages(store: Store) -> None:
    names = [f"n/{i:03d}" for i in range(0, 200, 2)]
    place(store, names)
    first = store.list_blobs(ACCT, CT, "", None, None, 50)
    last = first.items[-1].name
    assert last == "n/098"
    root = ct_dir(store)
    (root / "n" / "001").write_bytes(b"before the marker: not on the next pages")
    (root / "n" / "099").write_bytes(b"after it: listed")
    (root / "n" / "100").unlink()
    (root / "m").write_bytes(b"a new top-level blob before n/")
    (root / "o").write_bytes(b"and one after")
    rest, marker = [], first.next_marker
    while marker:
        got = store.list_blobs(ACCT, CT, "", None, marker, 50)
        rest += [b.name for b in got.items]
        marker = got.next_marker
    assert rest == ["n/099"] + [f"n/{i:03d}" for i in range(102, 200, 2)] + ["o"]


def test_files_placed_by_other_programs_appear_in_a_cached_directory(store: Store) -> None:
    place(store, [f"d/{i:03d}" for i in range(20)])
    windows = store._listing.windows
    assert list_all(store)[0] == [f"d/{i:03d}" for i in range(20)]
    scans = windows.scans
    assert len(list_all(store)[0]) == 20 and windows.scans == scans  # served from the windows
    (ct_dir(store) / "d" / "005x").write_bytes(b"new")
    (ct_dir(store) / "d" / "007").unlink()
    got = list_all(store)[0]
    assert "d/005x" in got and "d/007" not in got and len(got) == 20
    assert windows.scans == scans + 1  # only the changed directory is read again


def test_a_directory_whose_mtime_was_set_back_is_read_again(store: Store) -> None:
    """rsync -a and cp -a set a directory's mtime back after adding files: its ctime moves."""
    place(store, ["d/a", "d/b"])
    assert list_all(store)[0] == ["d/a", "d/b"]
    d = ct_dir(store) / "d"
    before = os.stat(d).st_ctime_ns
    added = []
    for i in range(10_000):  # until the filesystem clock ticks (a few ms)
        (d / f"c{i:04d}").write_bytes(b"x")
        added.append(f"d/c{i:04d}")
        if os.stat(d).st_ctime_ns != before:
            break
    os.utime(d, ns=(OLD, OLD))
    assert os.stat(d).st_mtime_ns == OLD
    assert list_all(store)[0] == ["d/a", "d/b", *added]


def test_a_directory_changed_just_now_is_read_again(store: Store) -> None:
    """Within the racy window an mtime may not move on a change, so no window is kept."""
    place(store, [f"f{i}" for i in range(5)], age=False)
    windows = store._listing.windows
    list_all(store)
    scans = windows.scans
    list_all(store)
    assert windows.scans == scans + 1


def counting(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    counts = {"lstat": 0, "getxattr": 0, "entries": 0}
    real_lstat, real_getxattr, real_scandir = os.lstat, os.getxattr, os.scandir

    def lstat(*a, **k):
        counts["lstat"] += 1
        return real_lstat(*a, **k)

    def getxattr(*a, **k):
        counts["getxattr"] += 1
        return real_getxattr(*a, **k)

    class Scan:
        def __init__(self, path: str) -> None:
            self._it = real_scandir(path)

        def __enter__(self) -> Scan:
            return self

        def __exit__(self, *exc: object) -> None:
            self._it.close()

        def __iter__(self) -> Scan:
            return self

        def __next__(self) -> os.DirEntry:
            entry = next(self._it)
            counts["entries"] += 1
            return entry

    monkeypatch.setattr(listing_mod.os, "lstat", lstat)
    monkeypatch.setattr(listing_mod.os, "getxattr", getxattr)
    monkeypatch.setattr(listing_mod.os, "scandir", Scan)
    return counts


def test_a_page_of_a_20k_blob_container_does_page_sized_work(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    flat = [f"{i:05d}" for i in random.Random(1).sample(range(20_000), 20_000)]
    place(store, flat)
    counts = counting(monkeypatch)
    first = store.list_blobs(ACCT, CT, "", None, None, 1000)
    assert counts["entries"] == 20_000  # the directory is read once, for its first window
    assert counts["lstat"] == 1000 and counts["getxattr"] == 1000  # records: the page's only
    marker, reads = first.next_marker, 0
    for page in range(2, 21):
        counts.update(lstat=0, getxattr=0, entries=0)
        got = store.list_blobs(ACCT, CT, "", None, marker, 1000)
        want = [f"{i:05d}" for i in range((page - 1) * 1000, page * 1000)]
        assert [b.name for b in got.items] == want
        assert counts["lstat"] == 1000 and counts["getxattr"] == 1000
        assert counts["entries"] in (0, 20_000)  # from the window, or the next (larger) one
        reads += counts["entries"] // 20_000
        marker = got.next_marker
    assert marker is None
    assert reads == 1  # 5,120 entries, then 40,960: the rest of the directory


def test_a_page_of_a_nested_container_opens_only_its_directories(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    nested = [f"p{d:02d}/q{e}/{i:04d}" for d in range(40) for e in range(5) for i in range(100)]
    place(store, nested)
    counts = counting(monkeypatch)
    page = store.list_blobs(ACCT, CT, "p17/", None, None, 250)  # straight to p17, 3 of its dirs
    assert [b.name for b in page.items] == sorted(n for n in nested if n[:4] == "p17/")[:250]
    assert counts["entries"] <= 5 + 3 * 100 and counts["lstat"] == 250
    counts.update(lstat=0, getxattr=0, entries=0)
    deep = store.list_blobs(ACCT, CT, "", None, page.next_marker, 250)  # resumes inside p17/q2
    assert deep.items[0].name == "p17/q2/0050"
    # back to p17/q2 (cached), then q3, q4 and the top levels: no directory before the marker
    assert counts["entries"] <= 40 + 5 + 3 * 100 and counts["lstat"] == 250


def test_windows_stay_within_their_key_budget(store: Store) -> None:
    place(store, [f"d{d}/{i:03d}" for d in range(10) for i in range(100)])
    store._listing = Listing(DirWindows(window=40, max_keys=150))
    assert len(list_all(store, page=7)[0]) == 1000
    assert store._listing.windows._keys <= 150


def put(store: Store, name: str, data: bytes) -> BlobProps:
    upload = store.new_upload(ACCT, CT, want_md5=True, limit=1 << 20)
    upload.write(data)
    return store.put_blob(ACCT, CT, name, upload, ContentSettings(), {"k": "v"}, Conditions())


def test_records_of_listed_blobs_are_the_committed_ones(store: Store) -> None:
    put(store, "x/y", b"12345")
    place(store, ["x/z"])
    got = store.list_blobs(ACCT, CT, "x/", None, None, 10).items
    assert [(b.name, b.size, b.metadata) for b in got] == [("x/y", 5, {"k": "v"}), ("x/z", 3, {})]


def test_a_first_sidecar_written_during_a_page_is_read(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages skip sidecar lookups in a container without any; one that appears meanwhile (a
    large record committed during the page) makes the page be listed again with them."""
    big = {"k": "v" * 4000}  # over the xattr budget: the record is a sidecar
    upload = store.new_upload(ACCT, CT, want_md5=True, limit=1 << 20)
    upload.write(b"abc")
    store.put_blob(ACCT, CT, "big", upload, ContentSettings(), big, Conditions())
    answers = iter([False])
    real = store._records.has_sidecars
    monkeypatch.setattr(store._records, "has_sidecars", lambda *a: next(answers, None) or real(*a))
    (got,) = store.list_blobs(ACCT, CT, "", None, None, 10).items
    assert got.metadata == big


@pytest.mark.parametrize("order", ["random", "ascending", "descending"])
def test_smallest_keeps_exactly_the_n_smallest(order: str) -> None:
    keys = [f"k{i:05d}" for i in range(20_000)]
    if order == "random":
        random.Random(3).shuffle(keys)
    elif order == "descending":
        keys.reverse()
    for n in (1, 10, 5_000, 19_999, 20_000, 30_000):
        assert listing_mod.smallest(iter(keys), n) == sorted(keys)[:n]

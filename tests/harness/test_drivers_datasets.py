"""Dataset generation, manifests and verification."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from harness.datasets import DatasetError, dataset_from_dir, generate_dataset, parse_size, plan
from harness.verify import verify_remote_md5, verify_tree

SPEC = {
    "name": "mixed",
    "seed": 3,
    "files": [
        {"count": 30, "size_min": 0, "size_max": 5000, "dir_depth": 2, "prefix": "small"},
        {"count": 3, "size": "1MiB", "prefix": "fixed/"},
        {
            "count": 20,
            "size_mean": "2KiB",
            "size_sigma": 1.0,
            "size_max": "64KiB",
            "prefix": "logn",
        },
        {"count": 1, "size": 9 * 1024 * 1024 + 1, "prefix": "multi-chunk"},
    ],
}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a = generate_dataset(SPEC, tmp_path / "a")
    b = generate_dataset(SPEC, tmp_path / "b")
    c = generate_dataset(SPEC, tmp_path / "c", seed=4)
    assert a.files == b.files
    assert a.count == 54 and a.total_bytes == sum(f.size for f in a.files)
    assert [f.md5 for f in a.files] != [f.md5 for f in c.files]
    assert all((a.root / f.path).stat().st_size == f.size for f in a.files)
    assert {f.path.split("/")[0] for f in a.files} == {"small", "fixed", "logn", "multi-chunk"}
    assert all(f.path.count("/") == 3 for f in a.files if f.path.startswith("small/"))
    assert all(f.size == 1024 * 1024 for f in a.files if f.path.startswith("fixed/"))
    assert all(f.size <= 64 * 1024 for f in a.files if f.path.startswith("logn/"))
    assert len({f.size for f in a.files if f.path.startswith("logn/")}) > 10
    assert verify_tree(a.root, a).objects == a.count  # manifest checksums match the bytes


def test_cache_is_reused_and_manifest_sits_next_to_files(tmp_path: Path) -> None:
    first = generate_dataset(SPEC, tmp_path)
    marker = first.root / first.files[0].path
    mtime = marker.stat().st_mtime_ns
    again = generate_dataset(dict(SPEC), tmp_path)
    assert again.root == first.root and marker.stat().st_mtime_ns == mtime
    assert (first.root.parent / "manifest.json").is_file()
    assert len(list(tmp_path.iterdir())) == 1


def test_free_disk_is_checked_before_writing(tmp_path: Path) -> None:
    huge = {"name": "huge", "files": [{"count": 1000, "size": "1000TiB"}]}
    with pytest.raises(DatasetError, match="GiB free"):
        generate_dataset(huge, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_bad_specs_are_refused() -> None:
    with pytest.raises(DatasetError, match="needs size"):
        plan({"name": "x", "files": [{"count": 1}]})
    with pytest.raises(DatasetError, match="no files"):
        plan({"name": "x", "files": []})
    with pytest.raises(DatasetError, match="cannot read size"):
        parse_size("12 parsecs")
    assert parse_size("1.5 MiB") == 1572864 and parse_size(10) == 10


def test_verify_tree_reports_missing_mismatched_extra(tmp_path: Path) -> None:
    ds = generate_dataset(SPEC, tmp_path / "cache")
    copy = tmp_path / "copy"
    for f in ds.files:
        (copy / f.path).parent.mkdir(parents=True, exist_ok=True)
        (copy / f.path).write_bytes((ds.root / f.path).read_bytes())
    (copy / ds.files[0].path).unlink()
    target = next(f for f in ds.files[1:] if f.size > 10)
    data = bytearray((copy / target.path).read_bytes())
    data[5] ^= 0xFF  # same size, one flipped byte
    (copy / target.path).write_bytes(bytes(data))
    (copy / "stray.bin").write_bytes(b"?")
    result = verify_tree(copy, ds)
    assert result.missing == [ds.files[0].path]
    assert result.mismatched == [target.path]
    assert result.extra == ["stray.bin"]
    assert not result.ok and result.objects == ds.count - 2
    assert dataset_from_dir(copy).count == ds.count


def test_verify_remote_md5(tmp_path: Path) -> None:
    ds = generate_dataset({"name": "m", "files": [{"count": 3, "size": 100}]}, tmp_path)
    listing = [("p/" + f.path, base64.b64encode(bytes.fromhex(f.md5)).decode()) for f in ds.files]
    assert verify_remote_md5(listing, ds, prefix="p/").objects == 3
    listing[0] = (listing[0][0], bytes(16))
    bad = verify_remote_md5([*listing, ("p/other", None)], ds, prefix="p/")
    assert bad.mismatched == [ds.files[0].path] and bad.extra == ["other"]

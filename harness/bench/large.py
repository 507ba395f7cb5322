"""`harness bench large`: what the largest block lists and blobs cost the façade to commit.

Two cases, each on a fresh embedded façade:

- ``50,000 blocks``: 50,000 one-byte blocks with 64-byte IDs (Azure's longest) staged by Put
  Block, then one Put Block List naming all of them (the Azure maximum);
- ``4.5 TiB``: on XFS with reflinks (a sparse loop file; root, mkfs.xfs and losetup needed,
  else the case is skipped with the reason), 1,180 blocks of 4,000 MiB staged by Put Block From
  URL from a sparse 4.5 TiB file on the same façade, then one Put Block List.

For each: the commit's time (the Put Block List request, as the client sees it) and the façade's
RSS (its process tree, sampled with psutil) before and at its peak during the commit, and for
the 4.5 TiB case the disk space the blob took. Memory bounded by the block count, not the
object size, is what the numbers show.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness.http import BlobHttp, Response, block_list_xml
from harness.metrics import Sampler
from harness.signing import generate_service_sas
from harness.targets.reference import ReferenceTarget

MIB = 1024 * 1024
TIB = 1024 * 1024 * MIB
MAX_BLOCK = 4000 * MIB  # Azure's (and the façade's) largest block
MAX_BLOCKS = 50_000  # committed blocks per blob
LARGE_SIZE = 4 * TIB + TIB // 2
IMAGE_BYTES = 2048 * MIB  # the sparse loop file behind the XFS: metadata and a few pages


def long_id(i: int) -> str:
    """A 64-byte block ID, base64 (88 characters): the longest a block list can carry."""
    return base64.b64encode(f"{i:064d}".encode()).decode()


def reflink_xfs_problem() -> str | None:
    """Why an XFS with reflinks on a loop file cannot be made here, or None."""
    if os.geteuid() != 0:
        return "loop devices and mount need root"
    for tool in ("mkfs.xfs", "losetup", "mount", "umount"):
        if shutil.which(tool) is None:
            return f"{tool} is missing (Debian xfsprogs / mount; bootstrap.sh test installs them)"
    return None


@contextlib.contextmanager
def reflink_xfs(image: Path, where: Path) -> Iterator[Path]:
    """Mount a fresh XFS (``-m reflink=1``) made on the sparse file ``image`` at ``where``;
    unmounted and its loop device detached on exit. RuntimeError with the reason on failure."""
    problem = reflink_xfs_problem()
    if problem:
        raise RuntimeError(problem)

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, capture_output=True, text=True, timeout=120)

    image.parent.mkdir(parents=True, exist_ok=True)
    with open(image, "wb") as f:
        f.truncate(IMAGE_BYTES)
    made = run("mkfs.xfs", "-q", "-f", "-m", "reflink=1", str(image))
    if made.returncode:
        raise RuntimeError(f"mkfs.xfs -m reflink=1 failed: {made.stderr.strip()}")
    loop = run("losetup", "--find", "--show", str(image))
    if loop.returncode:
        raise RuntimeError(f"no loop device: {loop.stderr.strip()}")
    device = loop.stdout.strip()
    try:
        where.mkdir(parents=True, exist_ok=True)
        mounted = run("mount", "-t", "xfs", device, str(where))
        if mounted.returncode:
            raise RuntimeError(f"mounting XFS failed: {mounted.stderr.strip()}")
        try:
            yield where
        finally:
            run("umount", str(where))
    finally:
        run("losetup", "-d", device)


def used_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


@dataclass
class CommitResult:
    case: str
    blocks: int
    blob_bytes: int
    stage_s: float | None = None
    commit_s: float | None = None
    rss_before_mib: float | None = None
    rss_peak_mib: float | None = None
    disk_used_mib: float | None = None  # space the blob (and its staged blocks) took
    skipped: str | None = None  # why the case did not run
    errors: list[str] = field(default_factory=list)


def _check(r: Response, what: str, errors: list[str], want: int = 201) -> None:
    if r.status != want:
        errors.append(f"{what}: {r.status} {r.error_code or ''}".strip())


def _measured_commit(
    target: ReferenceTarget, commit: Callable[[], Response], result: CommitResult
) -> None:
    """Time ``commit`` and sample the façade's RSS around it (every 20 ms)."""
    sampler = Sampler(lambda: {"reference": target.server_pids()}, interval=0.02)
    since = time.time()
    with sampler:  # its first sample, taken on entering, is the RSS before the commit
        result.rss_before_mib = sampler.peaks(since, role="server")[1]
        t0 = time.perf_counter()
        answer = commit()
        result.commit_s = time.perf_counter() - t0
        sampler.sample()
    result.rss_peak_mib = sampler.peaks(since, role="server")[1]
    _check(answer, "Put Block List", result.errors)


def _client(target: ReferenceTarget) -> BlobHttp:
    ep = target.endpoint()
    return BlobHttp(ep.blob_url, ep.account, ep.key, timeout_s=600)


def bench_block_list(workdir: Path, blocks: int = MAX_BLOCKS, threads: int = 8) -> CommitResult:
    """Stage ``blocks`` one-byte blocks and commit them in one Put Block List."""
    result = CommitResult(f"{blocks:,} blocks", blocks, blocks)
    target = ReferenceTarget()
    target.start(workdir)
    http = _client(target)
    try:
        _check(http.request("PUT", "bench", query={"restype": "container"}), "container", [])
        ids = [long_id(i) for i in range(blocks)]

        def stage(bid: str) -> int:
            q = {"comp": "block", "blockid": bid}
            return http.request("PUT", "bench", "many", query=q, body=b"b").status

        t0 = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            failed = sum(status != 201 for status in pool.map(stage, ids))
        result.stage_s = time.perf_counter() - t0
        if failed:
            result.errors.append(f"{failed} Put Block(s) failed")
        body = block_list_xml(ids)
        _measured_commit(
            target,
            lambda: http.request("PUT", "bench", "many", query={"comp": "blocklist"}, body=body),
            result,
        )
        head = http.request("HEAD", "bench", "many")
        if head.header("content-length") != str(blocks):
            result.errors.append(f"HEAD Content-Length {head.header('content-length')}")
    finally:
        http.close()
        target.stop()
    return result


def bench_large_blob(workdir: Path, size: int = LARGE_SIZE, threads: int = 4) -> CommitResult:
    """A ``size`` blob from 4,000 MiB blocks copied (reflinked) from a sparse source."""
    count = -(-size // MAX_BLOCK)
    result = CommitResult(f"{size / TIB:g} TiB", count, size)
    problem = reflink_xfs_problem()
    if problem:
        result.skipped = f"no XFS with reflinks: {problem}"
        return result
    with reflink_xfs(workdir / "xfs.img", workdir / "xfs") as mnt:
        target = ReferenceTarget()
        target.start(mnt)
        http = _client(target)
        try:
            _check(http.request("PUT", "bench", query={"restype": "container"}), "container", [])
            # the source: a sparse file placed in the data root, as another program would
            source = mnt / "data" / target.account / "bench" / "source.bin"
            with open(source, "wb") as f:
                f.truncate(size)
            ep = target.endpoint()  # a From-URL source needs its own credentials (a SAS)
            sas = generate_service_sas(
                ep.account,
                ep.key,
                container="bench",
                blob="source.bin",
                permissions="r",
                expiry=datetime.now(UTC) + timedelta(days=1),
            )
            url = f"{ep.blob_url}/bench/source.bin?{sas}"
            ids = [long_id(i) for i in range(count)]
            used_before = used_bytes(mnt)

            def stage(i: int) -> int:
                start = i * MAX_BLOCK
                end = min(start + MAX_BLOCK, size) - 1
                headers = {"x-ms-copy-source": url, "x-ms-source-range": f"bytes={start}-{end}"}
                q = {"comp": "block", "blockid": ids[i]}
                return http.request("PUT", "bench", "big", query=q, headers=headers).status

            t0 = time.perf_counter()
            with ThreadPoolExecutor(threads) as pool:
                failed = sum(status != 201 for status in pool.map(stage, range(count)))
            result.stage_s = time.perf_counter() - t0
            if failed:
                result.errors.append(f"{failed} Put Block From URL(s) failed")
            body = block_list_xml(ids)
            _measured_commit(
                target,
                lambda: http.request("PUT", "bench", "big", query={"comp": "blocklist"}, body=body),
                result,
            )
            head = http.request("HEAD", "bench", "big")
            if head.header("content-length") != str(size):
                result.errors.append(f"HEAD Content-Length {head.header('content-length')}")
            result.disk_used_mib = (used_bytes(mnt) - used_before) / MIB
        finally:
            http.close()
            target.stop()
    return result


def run_large(
    run_dir: Path, blocks: int = MAX_BLOCKS, size: int = LARGE_SIZE
) -> list[CommitResult]:
    """Both cases, each in a directory of ``run_dir``; the results also in ``large.json``."""
    results = [
        bench_block_list(run_dir / "block-list", blocks),
        bench_large_blob(run_dir / "large-blob", size),
    ]
    (run_dir / "large.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    return results

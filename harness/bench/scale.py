"""Scale curves of a local reference façade: listing as the namespace grows, many connections.

Containers are seeded through the file side, as another program would fill the data root: the
container is created over REST, then ``n`` small files are written straight into its directory
(``<data root>/<account>/<container>/``), flat (``f0000000``) or nested (``d0000/f0000000``,
1,000 files per directory). The façade lists and serves files it did not write (ETag and
Last-Modified from the file), so a million blobs take seconds of file creation instead of a
million Put Blobs. A marker file beside the container directory remembers a finished seeding, so
the repeats (and a rerun on a kept data root) reuse it.

Each measured point is one level row (``StepResult.to_row()`` in the step's ``extra["levels"]``):

- ``list-first-page``: ``first_page_reads`` timed List Blobs of the first 1,000 names;
- ``list-all``: the whole container page by page (``NextMarker``); objects = blobs listed, so
  ops/s is blobs/s (a count that differs from the seeded one fails the level);
- ``put-blob-full``: ``put_count`` 1 KiB Put Blobs into the full container, ``concurrency`` in
  flight (their latency with ``n`` blobs beside them);
- ``connections``: ``n`` connections opened at once (one Get Blob each), all held open, then one
  more Get Blob on each (ops/s of the second round); RLIMIT_NOFILE is raised for the client.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import psutil

from harness.bench.client import KIB, BenchClient, PhaseResult, ServerWatch, listening_pids
from harness.http import BlobHttp
from harness.targets.base import Endpoint

PAGE = 1000
PER_DIR = 1000  # files per directory of the nested layout
LAYOUTS = ("flat", "nested")
SEEDED = ".seeded-by-bench"  # marker beside a container seeded through the file side
ROUND_TIMEOUT_S = 300.0  # one round of the connections workload, however many connections


def data_root_of(endpoint: Endpoint) -> Path | None:
    """The data root of the local façade serving ``endpoint`` (its ``--data-root`` flag)."""
    for pid in listening_pids(endpoint.blob_url):
        try:
            proc = psutil.Process(pid)
            # a spawned worker's command line is multiprocessing's: the flag is its parent's
            lineage = [proc, *proc.parents()[:3]]
        except psutil.Error:
            continue
        for member in lineage:
            try:
                argv = member.cmdline()
            except psutil.Error:
                continue
            for i, arg in enumerate(argv):
                if arg == "--data-root" and i + 1 < len(argv):
                    return Path(argv[i + 1])
                if arg.startswith("--data-root="):
                    return Path(arg.split("=", 1)[1])
    return None


def blob_name(i: int, layout: str) -> str:
    return f"d{i // PER_DIR:04d}/f{i:07d}" if layout == "nested" else f"f{i:07d}"


def seed(directory: Path, n: int, layout: str) -> float:
    """``n`` 16-byte files under ``directory`` (the container's directory); seconds taken (0
    when a finished seeding is found)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r}: valid {', '.join(LAYOUTS)}")
    marker = directory.parent / f"{directory.name}{SEEDED}"
    if marker.exists() and marker.read_text() == f"{n} {layout}":
        return 0.0
    t0 = time.perf_counter()
    body = b"seeded-by-bench\n"
    made: set[str] = set()
    for i in range(n):
        name = blob_name(i, layout)
        parent, _, _ = name.rpartition("/")
        if parent and parent not in made:
            (directory / parent).mkdir(parents=True, exist_ok=True)
            made.add(parent)
        fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, body)
        finally:
            os.close(fd)
    marker.write_text(f"{n} {layout}")
    return time.perf_counter() - t0


def container_for(n: int, layout: str) -> str:
    return f"ls-{layout}-{n}"


def first_page(http: BlobHttp, container: str, reads: int) -> PhaseResult:
    """``reads`` List Blobs of the first page; a page that is not full (or not 200) fails."""
    phase = PhaseResult()
    t0 = time.perf_counter()
    for _ in range(reads):
        start = time.perf_counter()
        query = {"restype": "container", "comp": "list", "maxresults": str(PAGE)}
        resp = http.request("GET", container, query=query)
        phase.latencies_ms.append((time.perf_counter() - start) * 1000)
        if resp.status == 200:
            phase.ops += 1
        else:
            phase.errors.append((resp.status, resp.error_code))
    phase.duration_s = time.perf_counter() - t0
    return phase


def list_all(http: BlobHttp, container: str, expected: int) -> PhaseResult:
    """Every page of ``container``; ops counts blobs listed, latencies are per page."""
    phase = PhaseResult()
    marker = ""
    t0 = time.perf_counter()
    for _ in range(expected // PAGE + 2):  # bounded: one page more than needed
        query = {"restype": "container", "comp": "list", "maxresults": str(PAGE)}
        if marker:
            query["marker"] = marker
        start = time.perf_counter()
        resp = http.request("GET", container, query=query)
        if resp.status != 200:
            phase.latencies_ms.append((time.perf_counter() - start) * 1000)
            phase.errors.append((resp.status, resp.error_code))
            break
        root = resp.xml()
        phase.latencies_ms.append((time.perf_counter() - start) * 1000)
        phase.ops += sum(1 for _ in root.iter("Blob"))
        marker = root.findtext("NextMarker") or ""
        if not marker:
            break
    phase.duration_s = time.perf_counter() - t0
    if phase.ops != expected:
        phase.errors.append((200, f"Listed{phase.ops}Of{expected}"))
    return phase


def measure_sync(
    server_pids: Callable[[], list[int]], run: Callable[[], PhaseResult]
) -> PhaseResult:
    """``run`` with the server's CPU and RSS charged to its phase."""
    watch = ServerWatch(server_pids)
    watch.start()
    me = psutil.Process()
    c0 = me.cpu_times()
    phase = run()
    c1 = me.cpu_times()
    watch.stop(phase, phase.duration_s)
    phase.client_cpu_pct = (
        100 * (c1.user + c1.system - c0.user - c0.system) / max(phase.duration_s, 1e-9)
    )
    phase.client_proc_cpu_pct = [phase.client_cpu_pct]
    return phase


def raise_nofile(wanted: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE towards ``wanted`` (up to the hard limit); the
    soft limit now. Servers started afterwards inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


async def connections(
    client: BenchClient, container: str, blob: str, n: int, progress: Callable[[int], None]
) -> tuple[PhaseResult, float]:
    """``n`` connections at once, each one Get Blob of ``blob`` then held; then a second Get
    Blob on every one of them, timed. Returns (second round, seconds to open them all)."""
    raise_nofile(n + 1024)
    connector = aiohttp.TCPConnector(limit=n, limit_per_host=n, force_close=False)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=60, sock_read=120)
    opened = PhaseResult()
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, skip_auto_headers=("Content-Type", "User-Agent")
    ) as s:

        async def one(phase: PhaseResult) -> None:
            await client.request(s, "GET", container, blob, phase)
            progress(1)

        memory = ServerWatch(client.server_pids)  # RSS from before the first connection
        memory.start()
        t0 = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(one(opened) for _ in range(n))), ROUND_TIMEOUT_S)
        open_s = time.perf_counter() - t0
        held = PhaseResult()
        cpu = ServerWatch(client.server_pids)  # CPU of the timed round only
        cpu.start()
        t0 = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(one(held) for _ in range(n))), ROUND_TIMEOUT_S)
        held.duration_s = time.perf_counter() - t0
        cpu.stop(held, held.duration_s)
        memory.stop(opened, open_s + held.duration_s)
    held.server_rss_mib = opened.server_rss_mib
    held.errors = opened.errors + held.errors  # a refused connection is an error of the level
    held.bytes = held.ops * KIB
    return held, open_s

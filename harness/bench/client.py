"""The benchmark client: aiohttp on uvloop, Shared Key signed, one measured phase at a time.

Every phase opens its own connection pool, so each target pays the same connection set-up and no
keep-alive state leaks from one phase (or one target) into the next. A phase returns a
``PhaseResult`` with the wall time, bytes and operations done, per-request latencies, errors
and the CPU that the client and the server's process tree spent during it.

One Python client tops out near 1 GB/s, so the large Put Block and Get Blob workloads can be
split across client processes (``ClientPool``, spawned once per run): each runs its own uvloop
event loop with its share of the in-flight requests over its share of the blocks or ranges, and
the parent merges the shares exactly (sums, raw latency samples, earliest start to latest end).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import psutil
import uvloop
from yarl import URL

from harness.http import BlobRequests, Query, block_id, block_list_xml, client_ssl_context
from harness.targets.base import Endpoint

KIB = 1024
MIB = 1024 * KIB
RSS_EVERY_S = 0.1  # how often a phase samples the server's RSS

Progress = Callable[[int], None]  # advance by N units (bytes or operations)


@dataclass
class PhaseResult:
    duration_s: float = 0.0
    bytes: int = 0
    ops: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[tuple[int, str | None]] = field(default_factory=list)  # (status, error code)
    client_cpu_pct: float = 0.0  # summed over the client's processes (100 = one full core)
    server_cpu_pct: float = 0.0  # summed over the server's processes (200 = two full cores)
    server_cpu_s: float = 0.0  # user + system CPU of the server's process tree in the phase
    server_rss_mib: tuple[float, float] = (0.0, 0.0)  # server tree RSS: (at start, max seen)
    client_procs: int = 1  # client processes the phase was split across
    client_proc_cpu_pct: list[float] = field(default_factory=list)  # each client process's CPU

    @property
    def busiest_client_pct(self) -> float:
        """CPU of the busiest client process: above ~90% that process set the pace."""
        return max(self.client_proc_cpu_pct, default=self.client_cpu_pct)

    @property
    def server_cpu_us_per_op(self) -> float | None:
        """Server CPU per successful request, in µs (None without requests or server pids)."""
        return 1e6 * self.server_cpu_s / self.ops if self.ops and self.server_cpu_s else None


@dataclass
class ChildResult:
    """One client process's share of a phase: raw counts and samples, merged exactly."""

    start: float  # time.monotonic(): CLOCK_MONOTONIC, one clock for every process of the host
    end: float
    bytes: int
    ops: int
    latencies_ms: list[float]
    errors: list[tuple[int, str | None]]
    cpu_s: float  # this process's user + system CPU during its share
    reported: int  # progress units sent to the parent


def merge_children(children: Sequence[ChildResult]) -> PhaseResult:
    """One phase from its processes' shares: sums, raw latency samples concatenated (so the
    percentiles are those of all requests), wall time from the earliest start to the latest end."""
    start = min(c.start for c in children)
    end = max(c.end for c in children)
    phase = PhaseResult(duration_s=end - start, client_procs=len(children))
    for c in children:
        phase.bytes += c.bytes
        phase.ops += c.ops
        phase.latencies_ms.extend(c.latencies_ms)
        phase.errors.extend(c.errors)
        phase.client_proc_cpu_pct.append(100 * c.cpu_s / max(c.end - c.start, 1e-9))
    phase.client_cpu_pct = 100 * sum(c.cpu_s for c in children) / max(phase.duration_s, 1e-9)
    return phase


# Set in each pool process by ``_pool_init``: where the children send their progress.
_PROGRESS_Q: Any = None


def _pool_init(progress_q: Any) -> None:
    global _PROGRESS_Q
    _PROGRESS_Q = progress_q


def _ready(delay: float) -> int:
    """Keeps one pool process busy for ``delay`` so that every process gets started."""
    time.sleep(delay)
    return os.getpid()


class ClientPool:
    """Client processes (spawned once per run, imports done) that phases are split across."""

    def __init__(self, procs: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.procs = procs
        self.queue = ctx.Queue()
        self.executor = ProcessPoolExecutor(
            procs, mp_context=ctx, initializer=_pool_init, initargs=(self.queue,)
        )
        self._token = 0
        # Start every process now: spawn and imports stay out of the measured phases.
        list(self.executor.map(_ready, [0.5] * procs))

    def next_token(self) -> int:
        self._token += 1
        return self._token

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.queue.close()
        self.queue.join_thread()


def _child_phase(
    endpoint: Endpoint,
    kind: str,
    args: dict[str, Any],
    indices: list[int],
    concurrency: int,
    start_at: float,
    token: int,
    content_md5: bool = False,
) -> ChildResult:
    """Runs in a pool process: its own event loop, ``concurrency`` in flight over ``indices``."""
    client = BenchClient(endpoint, list, content_md5=content_md5)
    return uvloop.run(client._child_run(kind, args, indices, concurrency, start_at, token))


def _tree(roots: Iterable[int]) -> list[psutil.Process]:
    """The given processes and all their children (forked server workers), each once."""
    seen: dict[int, psutil.Process] = {}
    for pid in roots:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for proc in procs:
            seen.setdefault(proc.pid, proc)
    return list(seen.values())


def _tree_cpu_seconds(roots: Iterable[int]) -> float:
    """CPU seconds of the given processes and all their children (forked server workers)."""
    total = 0.0
    for proc in _tree(roots):
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def _tree_rss_mib(roots: Iterable[int]) -> float:
    total = 0
    for proc in _tree(roots):
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / MIB


def listening_pids(url: str) -> list[int]:
    """The root processes of the local server listening on ``url``'s loopback port, so the
    bench can charge the server's own CPU and RSS to each phase: from each listening process
    up to the last ancestor that is not this process (or one of its ancestors), so a façade's
    master with all its workers (and a worker not listening yet) is counted. Empty for a port
    no local process listens on (a remote target)."""
    from urllib.parse import urlsplit

    port = urlsplit(url).port
    if port is None:
        return []
    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return []
    listening = {
        c.pid
        for c in conns
        if c.pid and c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
    }
    me = psutil.Process()
    mine = {me.pid, 0, 1, *(p.pid for p in me.parents())}
    roots: set[int] = set()
    for pid in listening:
        try:
            proc = psutil.Process(pid)
            for parent in proc.parents():  # nearest first
                if parent.pid in mine:
                    break
                proc = parent
        except psutil.NoSuchProcess:
            continue
        roots.add(proc.pid)
    return sorted(roots)


class ServerWatch:
    """CPU and RSS of a server's process tree over one phase: CPU as a delta of user + system
    time, RSS sampled every ``RSS_EVERY_S`` in a thread (its start and maximum)."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self.pids = pids
        self._roots: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.cpu0 = 0.0
        self.rss0 = self.rss_max = 0.0

    def start(self) -> None:
        self._roots = self.pids()
        self.cpu0 = _tree_cpu_seconds(self._roots)
        self.rss0 = self.rss_max = _tree_rss_mib(self._roots)
        if self._roots:
            self._thread = threading.Thread(target=self._sample, name="server-rss", daemon=True)
            self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(RSS_EVERY_S):
            self.rss_max = max(self.rss_max, _tree_rss_mib(self._roots))

    def stop(self, phase: PhaseResult, wall: float) -> None:
        """Charge the server's CPU and RSS since ``start`` to ``phase``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        cpu = max(0.0, _tree_cpu_seconds(self._roots) - self.cpu0)
        self.rss_max = max(self.rss_max, _tree_rss_mib(self._roots))
        phase.server_cpu_s = cpu
        phase.server_cpu_pct = 100 * cpu / max(wall, 1e-9)
        phase.server_rss_mib = (self.rss0, self.rss_max)


class BenchClient:
    """Requests against one endpoint; each ``phase`` call measures one workload."""

    def __init__(
        self,
        endpoint: Endpoint,
        server_pids: Callable[[], list[int]],
        pool: ClientPool | None = None,
        content_md5: bool = False,
    ) -> None:
        self.endpoint = endpoint
        self.server_pids = server_pids  # root processes whose trees serve this endpoint
        self.pool = pool  # client processes for phases split with procs > 1
        # Content-MD5 on every upload (hashed once per payload): what SDKs with validation and
        # the independent clients send; Azurite hashes blocks sent without it with a CRC64 in
        # JavaScript, three times slower than the MD5 it checks otherwise.
        self.content_md5 = content_md5
        # URLs, default headers and Shared Key signing: the project's one request shaper
        self.shaper = BlobRequests(endpoint.blob_url, endpoint.account, endpoint.key)

    def session(self, limit: int) -> aiohttp.ClientSession:
        # https verifies against the endpoint's lab CA (system CAs without one); unused for http
        connector = aiohttp.TCPConnector(
            limit=limit,
            limit_per_host=limit,
            use_dns_cache=True,
            ssl=client_ssl_context(self.endpoint.ca_bundle),
        )
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300),
            auto_decompress=False,
            # aiohttp would add Content-Type itself, after signing: we always send our own
            skip_auto_headers=("Content-Type", "User-Agent"),
            read_bufsize=1 * MIB,
        )

    async def request(
        self,
        session: aiohttp.ClientSession,
        method: str,
        container: str,
        blob: str | None = None,
        phase: PhaseResult | None = None,
        *,
        query: Query | None = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, int]:
        """One request; the body is read and discarded. Returns (status, body bytes read)."""
        h = dict(headers or {})
        if body is not None:
            # aiohttp would add its own Content-Type after signing: always send ours
            h.setdefault("Content-Type", "application/octet-stream")
            comp = dict(query or {}).get("comp")
            if self.content_md5 and method == "PUT" and comp in (None, "block"):
                h.setdefault("Content-MD5", _md5(body))
        req = self.shaper.prepare(
            method, container, blob, query=query, headers=h, content_length=len(body or b"")
        )
        start = time.perf_counter()
        read = 0
        try:
            # encoded=True: the URL goes out byte for byte as it was signed
            async with session.request(
                method, URL(req.url, encoded=True), data=body, headers=req.headers
            ) as resp:
                async for chunk in resp.content.iter_any():
                    read += len(chunk)
                status = resp.status
                code = resp.headers.get("x-ms-error-code")
        except (aiohttp.ClientError, TimeoutError) as exc:
            # A reset or timeout under load is a failed operation, not the end of the run.
            status, code = 0, type(exc).__name__
        if phase is not None:
            phase.latencies_ms.append((time.perf_counter() - start) * 1000)
            if not 200 <= status < 300:
                phase.errors.append((status, code))
            else:
                phase.ops += 1
        return status, read

    async def ensure_container(self, container: str) -> None:
        async with self.session(1) as s:
            status, _ = await self.request(s, "PUT", container, query={"restype": "container"})
            if status not in (201, 409):
                raise RuntimeError(
                    f"{self.endpoint.target}: create container {container}: {status}"
                )

    async def delete_blob(self, container: str, blob: str) -> None:
        async with self.session(1) as s:
            await self.request(s, "DELETE", container, blob)

    async def delete_blobs(self, container: str, blobs: list[str], concurrency: int) -> None:
        """Delete ``blobs`` on one pool, ``concurrency`` at a time (unmeasured clean-up)."""
        todo = iter(blobs)
        async with self.session(concurrency) as s:

            async def worker() -> None:
                for blob in todo:
                    await self.request(s, "DELETE", container, blob)

            await asyncio.gather(*(worker() for _ in range(min(concurrency, len(blobs)))))

    async def _measure(
        self, limit: int, jobs: list[Callable[[aiohttp.ClientSession, PhaseResult], Awaitable]]
    ) -> PhaseResult:
        """Run jobs on ``limit`` connections at once and measure the whole phase."""
        phase = PhaseResult()
        me = psutil.Process()
        async with self.session(limit) as s:
            todo = iter(jobs)

            async def worker() -> None:
                for job in todo:
                    await job(s, phase)

            watch = ServerWatch(self.server_pids)
            watch.start()
            c0, w0 = me.cpu_times(), time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(min(limit, len(jobs)))))
            wall = time.perf_counter() - w0
            c1 = me.cpu_times()
            watch.stop(phase, wall)
        phase.duration_s = wall
        phase.client_cpu_pct = 100 * (c1.user + c1.system - c0.user - c0.system) / wall
        phase.client_proc_cpu_pct = [phase.client_cpu_pct]
        return phase

    def _jobs(
        self, kind: str, args: dict[str, Any], indices: Iterable[int], progress: Progress
    ) -> list[Callable[[aiohttp.ClientSession, PhaseResult], Awaitable]]:
        if kind == "put-block":
            return self._block_jobs(**args, indices=indices, progress=progress)
        if kind == "get-blob":
            return self._range_jobs(**args, indices=indices, progress=progress)
        raise ValueError(kind)

    async def _child_run(
        self,
        kind: str,
        args: dict[str, Any],
        indices: list[int],
        concurrency: int,
        start_at: float,
        token: int,
    ) -> ChildResult:
        reported = 0

        def progress(n: int) -> None:
            nonlocal reported
            reported += n
            _PROGRESS_Q.put((token, n))

        phase = PhaseResult()
        jobs = self._jobs(kind, args, indices, progress)
        me = psutil.Process()
        async with self.session(concurrency) as s:
            todo = iter(jobs)

            async def worker() -> None:
                for job in todo:
                    await job(s, phase)

            # Every process starts at the same moment, once its loop and pool exist.
            await asyncio.sleep(max(0.0, start_at - time.monotonic()))
            c0, t0 = me.cpu_times(), time.monotonic()
            await asyncio.gather(*(worker() for _ in range(min(concurrency, len(jobs)))))
            t1, c1 = time.monotonic(), me.cpu_times()
        cpu = c1.user + c1.system - c0.user - c0.system
        return ChildResult(
            t0, t1, phase.bytes, phase.ops, phase.latencies_ms, phase.errors, cpu, reported
        )

    async def _measure_procs(
        self,
        kind: str,
        args: dict[str, Any],
        n_jobs: int,
        concurrency: int,
        procs: int,
        progress: Progress,
    ) -> PhaseResult:
        """The phase split across ``procs`` client processes: job i goes to process i % procs,
        each with its share of ``concurrency`` in flight; the results merged exactly."""
        procs = min(procs, concurrency, n_jobs, self.pool.procs if self.pool else 1)
        if procs <= 1 or self.pool is None:
            return await self._measure(concurrency, self._jobs(kind, args, range(n_jobs), progress))
        pool = self.pool
        token = pool.next_token()
        shares = [list(range(k, n_jobs, procs)) for k in range(procs)]
        limits = [concurrency // procs + (k < concurrency % procs) for k in range(procs)]
        me = psutil.Process()
        watch = ServerWatch(self.server_pids)
        watch.start()
        c0, w0 = me.cpu_times(), time.monotonic()
        start_at = w0 + 0.2  # time for the tasks to reach the processes and open their pools
        futures = [
            asyncio.wrap_future(
                pool.executor.submit(
                    _child_phase,
                    self.endpoint,
                    kind,
                    args,
                    shares[k],
                    limits[k],
                    start_at,
                    token,
                    self.content_md5,
                )
            )
            for k in range(procs)
        ]
        received = 0

        def drain() -> None:
            nonlocal received
            while True:
                try:
                    tok, n = pool.queue.get_nowait()
                except queue.Empty:
                    return
                if tok == token:
                    received += n
                    progress(n)

        pending: set[asyncio.Future] = set(futures)
        while pending:
            _, pending = await asyncio.wait(pending, timeout=0.05)
            drain()
        c1, w1 = me.cpu_times(), time.monotonic()
        children = [f.result() for f in futures]
        expected = sum(c.reported for c in children)
        deadline = time.monotonic() + 1.0
        while received < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            drain()
        phase = merge_children(children)
        # The parent only waits, but it is one of the client's processes too.
        parent_pct = 100 * (c1.user + c1.system - c0.user - c0.system) / (w1 - w0)
        phase.client_cpu_pct += parent_pct
        phase.client_proc_cpu_pct.append(parent_pct)
        watch.stop(phase, phase.duration_s)
        return phase

    def _block_jobs(
        self,
        container: str,
        blob: str,
        size: int,
        block_size: int,
        indices: Iterable[int],
        progress: Progress,
    ) -> list[Callable[[aiohttp.ClientSession, PhaseResult], Awaitable]]:
        data = _payload(block_size)

        def put(i: int) -> Callable[[aiohttp.ClientSession, PhaseResult], Awaitable]:
            body = data if (i + 1) * block_size <= size else data[: size - i * block_size]

            async def job(s: aiohttp.ClientSession, phase: PhaseResult) -> None:
                q = {"comp": "block", "blockid": block_id(i)}
                status, _ = await self.request(s, "PUT", container, blob, phase, query=q, body=body)
                if 200 <= status < 300:
                    phase.bytes += len(body)
                    progress(len(body))

            return job

        return [put(i) for i in indices]

    async def put_blocks(
        self,
        container: str,
        blob: str,
        size: int,
        block_size: int,
        concurrency: int,
        progress: Progress = lambda n: None,
        commit: bool = True,
        procs: int = 1,
    ) -> PhaseResult:
        """Stage ``size`` bytes as Put Blocks, ``concurrency`` at a time (split across ``procs``
        client processes), then commit them."""
        n_blocks = -(-size // block_size)
        args = {"container": container, "blob": blob, "size": size, "block_size": block_size}
        stage = await self._measure_procs("put-block", args, n_blocks, concurrency, procs, progress)
        if not commit:
            return stage
        # The commit belongs to the upload: its time counts, it is not one of the block ops.
        t0 = time.perf_counter()
        commit = PhaseResult()  # its error code, if any, joins the stage's errors
        watch = ServerWatch(self.server_pids)  # the commit's server CPU belongs to the upload
        watch.start()
        async with self.session(1) as s:
            await self.request(
                s,
                "PUT",
                container,
                blob,
                commit,
                query={"comp": "blocklist"},
                body=block_list_xml([block_id(i) for i in range(n_blocks)]),
                headers={"Content-Type": "application/xml"},
            )
        took = time.perf_counter() - t0
        watch.stop(commit, took)
        stage.duration_s += took
        stage.errors += [(st, f"PutBlockList:{code}") for st, code in commit.errors]
        stage.server_cpu_s += commit.server_cpu_s
        stage.server_cpu_pct = 100 * stage.server_cpu_s / max(stage.duration_s, 1e-9)
        rss0, rss_max = stage.server_rss_mib
        stage.server_rss_mib = (rss0, max(rss_max, commit.server_rss_mib[1]))
        return stage

    def _range_jobs(
        self,
        container: str,
        blob: str,
        size: int,
        block_size: int,
        indices: Iterable[int],
        progress: Progress,
    ) -> list[Callable[[aiohttp.ClientSession, PhaseResult], Awaitable]]:
        def get(offset: int) -> Callable[[aiohttp.ClientSession, PhaseResult], Awaitable]:
            end = min(offset + block_size, size) - 1

            async def job(s: aiohttp.ClientSession, phase: PhaseResult) -> None:
                status, read = await self.request(
                    s, "GET", container, blob, phase, headers={"Range": f"bytes={offset}-{end}"}
                )
                if status == 206 and read == end - offset + 1:
                    phase.bytes += read
                    progress(read)
                elif 200 <= status < 300:  # a whole-body 200 or a short read is a failed range read
                    phase.ops -= 1
                    phase.errors.append((status, "ShortOrUnrangedRead"))

            return job

        return [get(i * block_size) for i in indices]

    async def get_ranges(
        self,
        container: str,
        blob: str,
        size: int,
        block_size: int,
        concurrency: int,
        progress: Progress = lambda n: None,
        procs: int = 1,
    ) -> PhaseResult:
        """Read ``size`` bytes as ranged GETs of ``block_size``, ``concurrency`` at a time (split
        across ``procs`` client processes)."""
        n_ranges = -(-size // block_size)
        args = {"container": container, "blob": blob, "size": size, "block_size": block_size}
        return await self._measure_procs("get-blob", args, n_ranges, concurrency, procs, progress)

    async def put_small(
        self,
        container: str,
        names: list[str],
        size: int,
        concurrency: int,
        progress: Progress = lambda n: None,
    ) -> PhaseResult:
        """One Put Blob of ``size`` bytes per name."""
        data = _payload(size)

        def put(name: str) -> Callable[[aiohttp.ClientSession, PhaseResult], Awaitable]:
            async def job(s: aiohttp.ClientSession, phase: PhaseResult) -> None:
                status, _ = await self.request(
                    s,
                    "PUT",
                    container,
                    name,
                    phase,
                    body=data,
                    headers={"x-ms-blob-type": "BlockBlob"},
                )
                if 200 <= status < 300:
                    phase.bytes += size
                progress(1)

            return job

        return await self._measure(concurrency, [put(n) for n in names])

    async def get_small(
        self,
        container: str,
        names: list[str],
        concurrency: int,
        progress: Progress = lambda n: None,
    ) -> PhaseResult:
        """One whole-blob Get Blob per name."""

        def get(name: str) -> Callable[[aiohttp.ClientSession, PhaseResult], Awaitable]:
            async def job(s: aiohttp.ClientSession, phase: PhaseResult) -> None:
                status, read = await self.request(s, "GET", container, name, phase)
                if 200 <= status < 300:
                    phase.bytes += read
                progress(1)

            return job

        return await self._measure(concurrency, [get(n) for n in names])

    async def put_block_burst(
        self,
        container: str,
        blob: str,
        count: int,
        block_size: int,
        progress: Progress = lambda n: None,
    ) -> PhaseResult:
        """``count`` Put Blocks all in flight at once, each on its own connection."""
        result = await self.put_blocks(
            container,
            blob,
            count * block_size,
            block_size,
            count,
            progress=lambda n: progress(1),
            commit=False,
        )
        return result


_PAYLOADS: dict[int, bytes] = {}
# id(payload) -> (payload, base64 MD5): the reference held keeps the id from being reused
_MD5S: dict[int, tuple[bytes, str]] = {}


def _md5(body: bytes) -> str:
    """Base64 MD5 of an upload body, hashed once per body object: the bench's bodies are a few
    payloads (and one last-block slice) sent again and again, so no client CPU per request."""
    if id(body) not in _MD5S:
        _MD5S[id(body)] = (body, base64.b64encode(hashlib.md5(body).digest()).decode())
    return _MD5S[id(body)][1]


def _payload(size: int) -> bytes:
    """Random bytes, made once per size: the client spends its CPU on requests, not on data."""
    if size not in _PAYLOADS:
        import os

        _PAYLOADS[size] = os.urandom(size)
    return _PAYLOADS[size]

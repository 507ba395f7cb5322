"""The benchmark client: aiohttp on uvloop, Shared Key signed, one measured phase at a time.

Every phase opens its own connection pool, so each target pays the same connection set-up and no
keep-alive state leaks from one phase (or one target) into the next. A phase returns a
``PhaseResult`` with the wall time, bytes and operations done, per-request latencies, errors
and the CPU that the client and the server's process tree spent during it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import aiohttp
import psutil
from yarl import URL

from harness.http import BlobRequests, Query, block_id, block_list_xml
from harness.targets.base import Endpoint

KIB = 1024
MIB = 1024 * KIB

Progress = Callable[[int], None]  # advance by N units (bytes or operations)


@dataclass
class PhaseResult:
    duration_s: float = 0.0
    bytes: int = 0
    ops: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[tuple[int, str | None]] = field(default_factory=list)  # (status, error code)
    client_cpu_pct: float = 0.0  # of one core
    server_cpu_pct: float = 0.0  # summed over the server's processes (200 = two full cores)


def _tree_cpu_seconds(roots: Iterable[int]) -> float:
    """CPU seconds of the given processes and all their children (forked server workers)."""
    total = 0.0
    for pid in roots:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for proc in procs:
            try:
                t = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system
    return total


class BenchClient:
    """Requests against one endpoint; each ``phase`` call measures one workload."""

    def __init__(self, endpoint: Endpoint, server_pids: Callable[[], list[int]]) -> None:
        self.endpoint = endpoint
        self.server_pids = server_pids  # root processes whose trees serve this endpoint
        # URLs, default headers and Shared Key signing: the project's one request shaper
        self.shaper = BlobRequests(endpoint.blob_url, endpoint.account, endpoint.key)

    @staticmethod
    def session(limit: int) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, use_dns_cache=True)
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

            c0, w0 = me.cpu_times(), time.perf_counter()
            s0 = _tree_cpu_seconds(self.server_pids())
            await asyncio.gather(*(worker() for _ in range(min(limit, len(jobs)))))
            wall = time.perf_counter() - w0
            c1 = me.cpu_times()
            s1 = _tree_cpu_seconds(self.server_pids())
        phase.duration_s = wall
        phase.client_cpu_pct = 100 * (c1.user + c1.system - c0.user - c0.system) / wall
        phase.server_cpu_pct = 100 * max(0.0, s1 - s0) / wall
        return phase

    async def put_blocks(
        self,
        container: str,
        blob: str,
        size: int,
        block_size: int,
        concurrency: int,
        progress: Progress = lambda n: None,
        commit: bool = True,
    ) -> PhaseResult:
        """Stage ``size`` bytes as Put Blocks, ``concurrency`` at a time, then commit them."""
        data = _payload(block_size)
        n_blocks = -(-size // block_size)
        ids = [block_id(i) for i in range(n_blocks)]

        def put(i: int) -> Callable[[aiohttp.ClientSession, PhaseResult], Awaitable]:
            body = data if (i + 1) * block_size <= size else data[: size - i * block_size]

            async def job(s: aiohttp.ClientSession, phase: PhaseResult) -> None:
                q = {"comp": "block", "blockid": ids[i]}
                status, _ = await self.request(s, "PUT", container, blob, phase, query=q, body=body)
                if 200 <= status < 300:
                    phase.bytes += len(body)
                    progress(len(body))

            return job

        jobs = [put(i) for i in range(n_blocks)]
        if not commit:
            return await self._measure(concurrency, jobs)
        stage = await self._measure(concurrency, jobs)
        # The commit belongs to the upload: its time counts, it is not one of the block ops.
        t0 = time.perf_counter()
        async with self.session(1) as s:
            status, _ = await self.request(
                s,
                "PUT",
                container,
                blob,
                query={"comp": "blocklist"},
                body=block_list_xml(ids),
                headers={"Content-Type": "application/xml"},
            )
        stage.duration_s += time.perf_counter() - t0
        if not 200 <= status < 300:
            stage.errors.append((status, "PutBlockListFailed"))
        return stage

    async def get_ranges(
        self,
        container: str,
        blob: str,
        size: int,
        block_size: int,
        concurrency: int,
        progress: Progress = lambda n: None,
    ) -> PhaseResult:
        """Read ``size`` bytes as ranged GETs of ``block_size``, ``concurrency`` at a time."""

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

        return await self._measure(concurrency, [get(o) for o in range(0, size, block_size)])

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


def _payload(size: int) -> bytes:
    """Random bytes, made once per size: the client spends its CPU on requests, not on data."""
    if size not in _PAYLOADS:
        import os

        _PAYLOADS[size] = os.urandom(size)
    return _PAYLOADS[size]

"""`rest-bench`: raw Blob REST workloads from the benchmark client (aiohttp on uvloop).

No tool between the lab and the server: each step (operation ``load``) runs one workload,
``options.workload``, as one measured phase of ``harness.bench.client.BenchClient`` (requests
shaped and signed by ``harness.http``); its result rows name the workload as their operation:

- ``put-block``: ``size`` bytes as Put Blocks of ``block_size``, ``concurrency`` in flight,
  then the Put Block List of blob ``blob``;
- ``get-blob``: that blob read back as ranged Get Blobs of ``block_size``, ``concurrency`` in
  flight;
- ``put-block-burst``: ``count`` Put Blocks of ``object_size`` all in flight at once, one
  connection each;
- ``put-small``: ``count`` Put Blobs of ``object_size``, ``concurrency`` in flight;
- ``get-small``: Get Blobs of the names ``put-small`` wrote in the same repeat (same prefix).

Options (a step's ``options``): ``size``, ``block_size`` (default the step's block_size_mib),
``object_size``, ``count`` and ``blob`` as above; ``procs``, the client processes the
``put-block`` / ``get-blob`` phases are split across (one Python client tops out near 1 GB/s;
the pool is spawned before the measured phase and the shares are merged exactly, see
``harness.bench.client``). A static-file target (nginx) is only read from, by ``get-blob``.

Anchor and scale workloads (``harness.bench.fio``, ``harness.bench.scale``), on a local
reference façade (found by its listening port, its data root by its ``--data-root`` flag):

- ``disk-write`` / ``disk-read``: fio's sequential write (durable at the end) and cold read of
  ``size`` in ``block_size`` on the data root's filesystem, ``concurrency`` fio jobs;
- ``listing``: for each of ``sizes`` blobs and ``layouts`` (flat, nested), seeded through the
  file side: first-page latency, full-listing blobs/s, Put Blob latency in the full container;
- ``connections``: for each of ``levels`` connections, all opened at once and held, one more
  Get Blob on every one.
Those two report one level row per measured point (``extra["levels"]``).

Every row carries the server's side of its phase, from the process tree listening on the
endpoint's port: ``extra.server_cpu_us_per_op`` (user + system CPU per successful request),
``server_cpu_pct``, and the RSS at the start and the maximum sampled (``server_rss_mib_start``,
``server_rss_mib_max``, ``server_rss_delta_mib``). Uploads carry ``Content-MD5``
(``options.content_md5``, default true: the same requests for every target).

``options.best_of: {TARGET: [c1, c2, ...]}`` measures that target (an anchor) at each of those
concurrencies (fio: jobs) and keeps its best, recorded in ``extra.at_best`` (the levels tried,
their values, the best), so that no ratio is taken against an anchor below its best.
``options.via_proxy: true`` marks a step that ``harness bench`` sends through the
contract-recording proxy (its run hook re-points the step's endpoint; the lab's own overhead,
measured against the same workload without it); the server's pids are still the target's.

Before its first step on a container of an endpoint the driver creates the container and makes
a few small round trips, unmeasured (connection set-up, caches, the server's first requests).
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

from harness.bench.client import KIB, MIB, BenchClient, ClientPool, PhaseResult, listening_pids
from harness.datasets import parse_size
from harness.drivers.base import Driver, StepContext
from harness.metrics import latency_summary
from harness.results import StepResult, count_errors
from harness.targets.base import Endpoint
from harness.tools import Tool

CLIENT_BOUND_PCT = 90.0  # above this a client process, not the server, may set the pace
WARMUP_OPS = 50
DEFAULTS: dict[str, dict[str, Any]] = {  # per workload: count and object size
    "put-block-burst": {"count": 1000, "object_size": 64 * KIB},
    "put-small": {"count": 2000, "object_size": 1 * KIB},
    "get-small": {"count": 2000, "object_size": 1 * KIB},
}
WORKLOADS = (
    "put-block", "get-blob", "put-block-burst", "put-small", "get-small",
    "disk-write", "disk-read", "listing", "connections",
)  # fmt: skip
READS = ("get-blob",)  # the workloads a static-file target answers
LOCAL = ("disk-write", "disk-read", "listing")  # need the façade's data root on this host
BULK = ("put-block", "get-blob", "disk-write", "disk-read")  # judged by MiB/s, the rest by ops/s


def _size(value: Any, default: int) -> int:
    return default if value is None else parse_size(value)


class RestBenchDriver(Driver):
    name = "rest-bench"
    operations = ("load",)
    tool = Tool("rest-bench", distributions=("aiohttp", "uvloop"))
    recorded = False  # the lab's own raw requests, straight to the target: no proxy hop measured

    def __init__(self) -> None:
        self._warm: set[tuple[str, str]] = set()  # (account URL, container) warmed up
        self._pool: ClientPool | None = None
        # fio's runs of the current step by jobs: command line, directory, filesystem
        self._fio: dict[int, dict[str, Any]] = {}

    def prepare(self, ctx: StepContext) -> None:
        workload = ctx.options.get("workload")
        if workload not in WORKLOADS:
            raise ValueError(f"options.workload {workload!r}: valid {', '.join(WORKLOADS)}")
        static = bool(ctx.endpoint.extra.get("static"))
        if static and workload not in READS:
            raise ValueError(f"{ctx.endpoint.target} serves plain files: only {', '.join(READS)}")
        best_of = ctx.options.get("best_of") or {}
        if not isinstance(best_of, dict) or not all(
            isinstance(v, list) and v and all(isinstance(c, int) and c > 0 for c in v)
            for v in best_of.values()
        ):
            raise ValueError("options.best_of: a mapping of target -> [concurrency, ...]")
        if ctx.options.get("via_proxy") and not ctx.endpoint.origin_url:
            raise ValueError(
                "options.via_proxy: the recording proxy is put in front by `harness bench` "
                "(its run hook); `harness run` sends this step straight to the target"
            )
        if workload in ("disk-write", "disk-read"):
            from harness.bench.fio import fio_path

            fio_path()  # installed on first use, or a FioMissing naming the package
        if workload in LOCAL and data_root_of(ctx.endpoint) is None:
            raise ValueError(
                f"{workload} needs a local reference façade (its data root): "
                f"{ctx.endpoint.target} at {ctx.endpoint.display_url} is not one"
            )
        if static or (ctx.endpoint.blob_url, ctx.container) in self._warm:
            return
        client = BenchClient(ctx.endpoint, list)
        names = [f"warmup/{i}" for i in range(WARMUP_OPS)]

        async def warm_up() -> None:
            await client.ensure_container(ctx.container)
            await client.put_small(ctx.container, names, 1 * KIB, 8)
            await client.get_small(ctx.container, names, 8)

        uvloop.run(warm_up())
        self._warm.add((ctx.endpoint.blob_url, ctx.container))

    def versions(self) -> dict[str, str]:
        return {
            "python": platform.python_version(),
            "aiohttp": aiohttp.__version__,
            "uvloop": uvloop.__version__,
        }

    def pids(self) -> list[int]:
        # The pool's processes too: the runner samples their CPU and stops them on a timeout
        # (ProcessPoolExecutor names its workers only in ``_processes``).
        pool = self._pool
        children = list(pool.executor._processes or {}) if pool is not None else []
        return [os.getpid(), *children]

    def run(self, ctx: StepContext) -> StepResult:
        workload = str(ctx.options.get("workload"))
        opts = {**DEFAULTS.get(workload, {}), **ctx.options}
        if workload in ("listing", "connections"):
            return self._levels(ctx, workload, opts)
        procs = int(opts.get("procs", 1))
        large = workload in ("put-block", "get-blob")
        levels = (opts.get("best_of") or {}).get(ctx.endpoint.target) or [ctx.concurrency]
        tried: dict[int, tuple[PhaseResult, int]] = {}
        endpoint = ctx.endpoint
        try:
            if large and procs > 1:
                # Spawned (imports done) before the measured phases, closed after them.
                self._pool = ClientPool(procs)
            for level in levels:
                tried[level] = self._run_phase(ctx, endpoint, workload, opts, procs, level)
        finally:
            pool, self._pool = self._pool, None
            if pool is not None:
                pool.close()
        best = max(tried, key=lambda c: _kpi(workload, tried[c][0]))
        phase, concurrency = tried[best]
        result = to_step_result(ctx, workload, phase, concurrency, self.name)
        result.extra["via_proxy"] = bool(opts.get("via_proxy"))
        if workload in ("disk-write", "disk-read"):
            result.extra["fio"] = self._fio.pop(best, {})
            self._fio.clear()
        if len(levels) > 1:
            result.extra["at_best"] = {
                "kpi": "throughput_mib_s" if workload in BULK else "ops_s",
                "tried": {str(c): round(_kpi(workload, p), 3) for c, (p, _) in tried.items()},
                "best": best,
            }
        return result

    def _run_phase(
        self,
        ctx: StepContext,
        endpoint: Endpoint,
        workload: str,
        opts: dict[str, Any],
        procs: int,
        concurrency: int,
    ) -> tuple[PhaseResult, int]:
        if workload in ("disk-write", "disk-read"):
            return self._disk(ctx, workload, opts, concurrency), concurrency
        return uvloop.run(self._phase(ctx, endpoint, workload, opts, procs, concurrency))

    def _disk(
        self, ctx: StepContext, workload: str, opts: dict[str, Any], jobs: int
    ) -> PhaseResult:
        """fio in the façade's data root (its filesystem), ``jobs`` jobs."""
        from harness.bench.fio import run_fio, same_filesystem

        data_root = data_root_of(ctx.endpoint)
        assert data_root is not None  # checked in prepare
        # a dot directory no account or container can name; it goes with the data root
        directory = data_root / ".fio-anchor"
        size = _size(opts.get("size"), 0)
        block_size = _size(opts.get("block_size"), ctx.block_size_mib * MIB)
        if size <= 0:
            raise ValueError(f"{workload} needs options.size (bytes or e.g. '1GiB')")
        rw = "write" if workload == "disk-write" else "read"
        if rw == "write":  # new files, as the façade writes: overwriting allocated ones is faster
            for f in directory.glob("anchor.*"):
                f.unlink(missing_ok=True)
        fio = run_fio(directory, rw, size, block_size, jobs, ctx.timeout_s)
        phase = PhaseResult(duration_s=fio.duration_s, bytes=fio.bytes)
        phase.ops = fio.bytes // block_size
        if fio.latency_ms_p50 is not None:
            phase.latencies_ms = [fio.latency_ms_p50]
        self._fio[jobs] = {
            "argv": fio.argv,
            "directory": str(directory),
            "same_fs_as_data_root": same_filesystem(directory, data_root),
        }
        ctx.progress(fio.bytes, size)
        return phase

    async def _phase(
        self,
        ctx: StepContext,
        endpoint: Endpoint,
        op: str,
        opts: dict[str, Any],
        procs: int,
        concurrency: int,
    ) -> tuple[PhaseResult, int]:
        client = BenchClient(
            endpoint,
            lambda: listening_pids(ctx.endpoint.display_url),  # the target, not a proxy
            self._pool,
            content_md5=bool(opts.get("content_md5", True)),
        )
        block_size = _size(opts.get("block_size"), ctx.block_size_mib * MIB)
        count, object_size = int(opts.get("count", 0)), _size(opts.get("object_size"), KIB)
        size = _size(opts.get("size"), 0)
        done = 0
        total = size if op in ("put-block", "get-blob") else count

        def progress(n: int) -> None:
            nonlocal done
            done += n
            ctx.progress(done, total)

        tag = f"{'w' if ctx.warmup else 'r'}{ctx.repeat}"
        blob = ctx.prefix + str(opts.get("blob", "large"))
        names = [f"{ctx.prefix}{tag}/{i:06d}" for i in range(count)]
        c = ctx.container
        if op in ("put-block", "get-blob") and size <= 0:
            raise ValueError(f"{op} needs options.size (bytes or e.g. '1GiB')")
        if op == "put-block":
            args = (c, blob, size, block_size, concurrency, progress)
            return await client.put_blocks(*args, procs=procs), concurrency
        if op == "get-blob":
            args = (c, blob, size, block_size, concurrency, progress)
            return await client.get_ranges(*args, procs=procs), concurrency
        if op == "put-block-burst":
            burst = f"{ctx.prefix}burst-{tag}"
            return await client.put_block_burst(c, burst, count, object_size, progress), count
        if op == "put-small":
            phase = await client.put_small(c, names, object_size, concurrency, progress)
            return phase, concurrency
        if op == "get-small":
            return await client.get_small(c, names, concurrency, progress), concurrency
        raise ValueError(f"rest-bench has no workload {op!r}")

    def _levels(self, ctx: StepContext, workload: str, opts: dict[str, Any]) -> StepResult:
        """A scale workload: one level row per measured point, in one summary row."""
        rows: list[StepResult] = []
        if workload == "listing":
            sizes = [int(v) for v in opts.get("sizes", [1000])]  # blob counts
            layouts = [str(v) for v in opts.get("layouts", ["flat"])]
            points = [(n, layout) for n in sizes for layout in layouts]
            for i, (n, layout) in enumerate(points):
                rows += self._listing_level(ctx, opts, i, n, layout)
                ctx.progress(i + 1, len(points))
        else:
            counts = [int(v) for v in opts.get("levels", [1000])]
            for i, n in enumerate(counts):
                rows.append(self._connections_level(ctx, i, n))
                ctx.progress(i + 1, len(counts))
        summary = ctx.result(
            driver=self.name,
            operation=workload,
            started_at=min((r.started_at for r in rows), default=time.time()),
            ok=all(r.ok for r in rows),
            duration_s=sum(r.duration_s for r in rows),
            objects=sum(r.objects for r in rows),
            failed=sum(r.failed for r in rows),
            error="; ".join(
                f"{r.operation} level {r.extra['level']}: {r.error}" for r in rows if r.error
            )
            or None,
        )
        summary.extra["levels"] = [r.to_row() for r in rows]
        summary.extra["client_bound"] = any(r.extra.get("client_bound") for r in rows)
        rss = [r.extra.get("server_rss_delta_mib") or 0.0 for r in rows]
        summary.extra["server_rss_delta_mib"] = max(rss, default=0.0)
        return summary

    def _listing_level(
        self, ctx: StepContext, opts: dict[str, Any], level: int, n: int, layout: str
    ) -> list[StepResult]:
        from harness.bench import scale
        from harness.http import BlobHttp

        endpoint = ctx.endpoint
        container = scale.container_for(n, layout)
        client = BenchClient(endpoint, lambda: listening_pids(endpoint.blob_url))
        uvloop.run(client.ensure_container(container))
        data_root = data_root_of(endpoint)
        assert data_root is not None
        seeded_s = scale.seed(data_root / endpoint.account / container, n, layout)
        pids = client.server_pids
        http = BlobHttp(
            endpoint.blob_url, endpoint.account, endpoint.key, ca_bundle=endpoint.ca_bundle
        )
        reads = int(opts.get("first_page_reads", 5))
        put_count = int(opts.get("put_count", 200))
        tag = f"{'w' if ctx.warmup else 'r'}{ctx.repeat}"
        names = [f"zz-put-{tag}/{i:06d}" for i in range(put_count)]  # after the seeded names
        try:
            first = scale.measure_sync(pids, lambda: scale.first_page(http, container, reads))
            full = scale.measure_sync(pids, lambda: scale.list_all(http, container, n))
        finally:
            http.close()
        put = uvloop.run(client.put_small(container, names, KIB, ctx.concurrency))
        # the next repeat lists exactly the seeded blobs again (unmeasured)
        uvloop.run(client.delete_blobs(container, names, ctx.concurrency))
        facts = {"level": level, "blobs": n, "layout": layout, "seeded_s": round(seeded_s, 3)}
        out = []
        for op, phase, conc in (
            ("list-first-page", first, 1),
            ("list-all", full, 1),
            ("put-blob-full", put, ctx.concurrency),
        ):
            row = to_step_result(ctx, op, phase, conc, self.name)
            row.extra.update(facts)
            out.append(row)
        return out

    def _connections_level(self, ctx: StepContext, level: int, n: int) -> StepResult:
        from harness.bench import scale

        endpoint = ctx.endpoint
        client = BenchClient(endpoint, lambda: listening_pids(endpoint.blob_url))
        blob = f"{ctx.prefix}conn-target"

        async def go() -> tuple[PhaseResult, float]:
            await client.ensure_container(ctx.container)
            await client.put_small(ctx.container, [blob], KIB, 1)
            return await scale.connections(client, ctx.container, blob, n, lambda k: None)

        phase, open_s = uvloop.run(go())
        row = to_step_result(ctx, "connections", phase, n, self.name)
        row.extra.update({"level": level, "connections": n, "open_all_s": round(open_s, 3)})
        return row


def to_step_result(
    ctx: StepContext,
    workload: str,
    phase: PhaseResult,
    concurrency: int,
    driver: str = "rest-bench",
) -> StepResult:
    """One measured phase as the one results schema, the workload as its operation."""
    by_status, by_code = count_errors(phase.errors)
    rss0, rss_max = phase.server_rss_mib
    return ctx.result(
        driver=driver,
        operation=workload,
        started_at=time.time() - phase.duration_s,
        ok=not phase.errors,
        duration_s=phase.duration_s,
        bytes=phase.bytes,
        objects=phase.ops,
        failed=len(phase.errors),
        concurrency=concurrency,
        latency_clock="client",
        **latency_summary(phase.latencies_ms),
        errors_by_status=by_status,
        errors_by_code=by_code,
        error=f"{len(phase.errors)} failed requests" if phase.errors else None,
        client_cpu_pct_max=round(phase.client_cpu_pct, 1),
        extra={
            # Any client process above the threshold may have set the pace of the whole phase.
            "client_bound": phase.busiest_client_pct > CLIENT_BOUND_PCT,
            "client_procs": phase.client_procs,
            # the server's side of the phase: its CPU per request and its memory
            "server_cpu_us_per_op": _round(phase.server_cpu_us_per_op),
            "server_cpu_pct": round(phase.server_cpu_pct, 1),
            "server_rss_mib_start": round(rss0, 1),
            "server_rss_mib_max": round(rss_max, 1),
            "server_rss_delta_mib": round(max(0.0, rss_max - rss0), 1),
        },
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _kpi(workload: str, phase: PhaseResult) -> float:
    """What "at its best" means for a workload: MiB/s for bulk, requests/s for the rest."""
    if phase.duration_s <= 0 or phase.errors:
        return 0.0
    return (phase.bytes / MIB if workload in BULK else phase.ops) / phase.duration_s


def data_root_of(endpoint: Endpoint) -> Path | None:
    """The local façade's data root (``harness.bench.scale``, loaded when a step needs it)."""
    from harness.bench.scale import data_root_of as find

    return find(endpoint)
